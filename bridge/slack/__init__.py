"""Slack: the client, cards, delivery of ticket events into threads, and actions from Slack."""

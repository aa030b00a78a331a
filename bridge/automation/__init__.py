"""Automation playbooks run on new tickets: classify, verify the sender, check HR, act on the LMS."""

"""Odoo external API: transports and ticket model profiles."""

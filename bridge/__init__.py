"""bridge: support inbox (IMAP) → Odoo helpdesk tickets → acknowledgements (SMTP)."""

"""OAuth2 for the mailboxes: token flows, the token kept in state, the SASL strings IMAP and SMTP send."""

"""Email in and out: IMAP watcher, parsing, loop guard, threading, composing, SMTP."""

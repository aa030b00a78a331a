"""`bridge report`: tickets, categories, recurring issues, people, automation and SLA over a period."""

"""SLA tracking: business calendar (and, with the SLA issue, policies, clocks and the monitor)."""

"""What automation did to each ticket, from the bridge's own job journal (state/jobs)."""

from __future__ import annotations

from typing import Any

from bridge.store import Table

AUTO_RESOLVED, ESCALATED, SKIPPED = "auto-resolved", "escalated", "skipped"


def outcome_of(results: dict[str, Any]) -> str:
    """The login playbook's verdict on a ticket as its first job recorded it (bridge/automation/
    playbook.py): solved without a person, handed to one, or looked at and left alone (a dry run,
    or mail the guard only records); "" for tickets that were not for automation."""
    login = results.get("login") or {}
    if login.get("login"):
        if login.get("dry_run"):
            return SKIPPED
        return ESCALATED if login.get("outcome") == "escalated" else AUTO_RESOLVED
    return SKIPPED if login.get("skipped") else ""


def automation_outcomes(jobs: Table) -> dict[int, str]:
    """Ticket id → outcome, over the jobs that created a ticket (replies never run the playbook).
    The journal keeps ``state.retention_days`` of jobs: older tickets show no outcome."""
    found: dict[int, str] = {}
    for _, job in jobs.items():
        results = job.get("results") or {}
        ticket = results.get("ticket") or {}
        if ticket.get("new") and isinstance(ticket.get("ticket"), int):
            outcome = outcome_of(results)
            if outcome:
                found[ticket["ticket"]] = outcome
    return found

"""Which SLA policy a ticket falls under, and which priority a new ticket gets: ordered rules,
first match wins, each criterion empty = any."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bridge.ascii import ascii_lower
from bridge.config import PriorityRule, SlaPolicy, duration_seconds


@dataclass(frozen=True)
class Targets:
    """A policy's targets in seconds of working time (0: no such clock)."""

    policy: str
    first_response: float
    next_response: float
    resolution: float
    around_the_clock: bool


def _domain(address: str) -> str:
    return ascii_lower(address.rpartition("@")[2].strip())


def _any(wanted: Iterable[str], have: Iterable[str]) -> bool:
    wanted = {ascii_lower(w) for w in wanted}
    return not wanted or bool(wanted & {ascii_lower(h) for h in have})


def match_policy(policies: Iterable[SlaPolicy], *, priority: str, tags: Iterable[str], team: str,
                 customer_email: str) -> Targets | None:
    """The targets of the first policy whose criteria all hold, or None."""
    tags = list(tags)
    for policy in policies:
        if policy.priorities and priority not in policy.priorities:
            continue
        if not _any(policy.tags, tags) or not _any(policy.teams, [team]):
            continue
        if not _any(policy.customer_domains, [_domain(customer_email)]):
            continue
        return Targets(policy.name, duration_seconds(policy.first_response), duration_seconds(policy.next_response),
                       duration_seconds(policy.resolution), policy.around_the_clock)
    return None


def priority_for(rules: Iterable[PriorityRule], *, customer_email: str, mailbox: str, category: str, subject: str,
                 subject_urgency: bool, partner_tags: Iterable[str] = (), folder: str = "") -> str | None:
    """The priority key of the first rule that matches a new ticket, or None (Odoo's default).
    Subject words count only with ``subject_urgency`` on: a customer must not be able to make
    every ticket urgent by writing URGENT unless the team wants that. A rule's mailboxes match
    the mailbox's name or its IMAP ``folder``."""
    folded = ascii_lower(subject)
    for rule in rules:
        if not _any(rule.customer_domains, [_domain(customer_email)]) or not _any(rule.mailboxes, [mailbox, folder]):
            continue
        if rule.categories and category not in rule.categories:
            continue
        if not _any(rule.partner_tags, partner_tags):
            continue
        if rule.subject_words and not (subject_urgency and any(ascii_lower(w) in folded for w in rule.subject_words)):
            continue
        return rule.priority
    return None

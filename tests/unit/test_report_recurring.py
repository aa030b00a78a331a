"""Recurring-issue grouping on sets whose groups are known: reply prefixes, ticket numbers, dates,
word forms and Vietnamese subjects; categories kept apart; the prefix filter finds what a full
comparison finds."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from bridge.reports.reads import ReportTicket
from bridge.reports.recurring import group_tickets, jaccard, recurring, words

START = datetime(2026, 11, 2, 8, tzinfo=UTC)


def ticket(n: int, subject: str, category: str = "Login", customer: str = "", body: str = "") -> ReportTicket:
    return ReportTicket(id=n, subject=subject, body=body, customer=customer or f"c{n}@x.example", category=category,
                        team="", agent="", priority="0", created=START + timedelta(hours=n),
                        closed_at=None, first_response=None, reopened=False, automation="", sla=())


KNOWN = {
    "portal": ["Cannot log in to the portal", "RE: Can't login to portal [HD-1042]", "Fwd: cannot log in to portal",
               "cannot log in to the portal #5521", "Re: Re: Cannot log in to portal 2026-11-03"],
    "vpn": ["VPN disconnects every hour", "VPN keeps disconnecting every hour", "vpn disconnected every hour again"],
    "vi": ["Không đăng nhập được vào hệ thống", "RE: không đăng nhập được hệ thống",
           "Không đăng nhập được vào hệ thống LMS"],
    "alone": ["Printer on floor 3 prints blank pages", "Invoice for October missing"],
}


def test_the_known_groups_are_found_whatever_the_prefixes_numbers_and_word_forms():
    tickets, truth, n = [], {}, 0
    for name, subjects in KNOWN.items():
        for subject in subjects:
            n += 1
            tickets.append(ticket(n, subject, customer=f"{name}{n % 2}@x.example"))
            truth[n] = name
    groups = group_tickets(tickets, 0.5)
    found = sorted(sorted(t.id for t in g.tickets) for g in groups)
    expected = sorted(sorted(i for i, name in truth.items() if name == group) for group in ("portal", "vpn", "vi"))
    expected += [[i] for i, name in truth.items() if name == "alone"]
    assert found == sorted(expected)
    top = recurring(tickets, 0.5, 5)
    assert [(g.title, len(g.tickets), g.customers) for g in top] == [
        ("Cannot log in to the portal", 5, 2), ("Không đăng nhập được vào hệ thống", 3, 2),  # seen last
        ("VPN disconnects every hour", 3, 2)]
    assert top[0].first_seen == START + timedelta(hours=1) and top[0].last_seen == START + timedelta(hours=5)


def test_the_same_words_in_two_categories_are_two_issues_and_top_is_honoured():
    tickets = [ticket(1, "Password expired", "Login"), ticket(2, "password expired", "Login"),
               ticket(3, "Password expired", "Email"), ticket(4, "Password expired!", "Email"),
               ticket(5, "Password expired", "Email")]
    assert [(g.category, [t.id for t in g.tickets]) for g in recurring(tickets, 0.5, 5)] == [
        ("Email", [3, 4, 5]), ("Login", [1, 2])]
    assert len(recurring(tickets, 0.5, 1)) == 1


def test_a_vague_subject_borrows_the_start_of_the_body():
    a = ticket(1, "Help", body="The scanner on floor two jams on every page")
    b = ticket(2, "Problem!!", body="scanner on floor two jams on every page since Monday")
    c = ticket(3, "Help", body="My keyboard is missing keys")
    assert [sorted(t.id for t in g.tickets) for g in recurring([a, b, c], 0.5, 5)] == [[1, 2]]
    assert words("Re: [HD-7] Password reset 12/11/2026 for bob@x.example") == frozenset({"password", "reset"}) | \
        words("password", "reset")


def test_prefix_filtering_finds_the_same_groups_as_comparing_with_every_group():
    rng = random.Random(13)
    vocabulary = "login portal vpn printer toner invoice email outlook password reset account locked slow " \
                 "network wifi laptop screen broken update failed install licence teams meeting".split()
    tickets = [ticket(n, " ".join(rng.sample(vocabulary, rng.randint(2, 6))), rng.choice(["A", "B"]))
               for n in range(400)]
    for threshold in (0.34, 0.5, 0.7):
        fast = [[t.id for t in g.tickets] for g in group_tickets(tickets, threshold)]
        assert sorted(fast) == sorted(naive(tickets, threshold))


def naive(tickets: list[ReportTicket], threshold: float) -> list[list[int]]:
    """The same greedy rule, each ticket compared with every group of its category."""
    groups: list[tuple[str, frozenset[str], list[int]]] = []
    for t in sorted(tickets, key=lambda t: (t.created, t.id)):
        own = words(t.subject, t.body)
        scored = [(jaccard(own, g[1]), -i, i) for i, g in enumerate(groups) if g[0] == t.category]
        best = max(scored, default=None)
        if best and best[0] >= threshold:
            groups[best[2]][2].append(t.id)
        elif own:
            groups.append((t.category, own, [t.id]))
    return [g[2] for g in groups]

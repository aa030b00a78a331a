"""Recurring issues: tickets of one category whose subjects share most of their words, grouped.

Subjects are normalised (reply prefixes, ticket numbers, dates, addresses and digits stripped,
stop words dropped, plurals and -ing/-ed forms folded) into sets of words; a ticket joins the
group whose first ticket's set overlaps its own by at least the threshold (Jaccard), else it
starts a group. A subject of fewer than three words borrows the words of the body's start.
Candidates are found by prefix filtering (two sets with Jaccard ≥ t share a word among the
rarest ``|A| - ⌈t·|A|⌉ + 1`` of each), so grouping stays near linear in the tickets.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from bridge.reports.reads import ReportTicket

_PREFIX = re.compile(r"^\s*(?:(?:re|fw|fwd|aw|wg|tr|sv|vs)\s*(?:\[\d+\])?\s*:\s*)+", re.IGNORECASE)
_NOISE = re.compile(
    r"\[[^\]]*\]"  # [HD-123], [Ticket #42]
    r"|\S+@\S+"  # addresses
    r"|\b\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}\b"  # dates
    r"|#\s*\w+"  # #1234
    r"|\b[a-z]{1,4}-\d+\b"  # HD-123
    r"|\d+", re.IGNORECASE)
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")
STOP = frozenset("""
a an the and or but of to in on at for from with by is are was were be been am it its this that
these those my our your his her their me we you he she they i us them do does did not no can could
will would should please pls hi hello dear help issue problem urgent still again any some about
after before when since as so just get got have has had ticket request support re fw fwd
""".split())
_CONTRACTIONS = {"can't": "cannot", "cant": "cannot", "won't": "not", "don't": "not", "doesn't": "not",
                 "isn't": "not", "didn't": "not", "couldn't": "cannot", "unable": "cannot"}
MIN_WORDS = 3


def stem(word: str) -> str:
    """A light fold of English endings: enough that "disconnects" and "disconnecting" meet."""
    for ending in ("ing", "ed", "es", "s"):
        if len(word) > len(ending) + 3 and word.endswith(ending):
            return word[: -len(ending)]
    return word


def words(subject: str, body: str = "") -> frozenset[str]:
    """The normalised word set a ticket is compared by."""
    def of(text: str) -> list[str]:
        text = _NOISE.sub(" ", _PREFIX.sub("", text.lower().replace("log in", "login").replace("sign in", "signin")))
        found = (_CONTRACTIONS.get(w, w) for w in _WORD.findall(text.replace("’", "'")))
        return [stem(w) for w in found if w not in STOP and len(w) > 1]

    own = of(subject)
    return frozenset(own if len(set(own)) >= MIN_WORDS else own + of(body)[:12])


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


@dataclass
class Group:
    """One recurring issue: its tickets, in the order they were grouped (oldest first)."""

    category: str
    words: frozenset[str]
    tickets: list[ReportTicket] = field(default_factory=list)

    @property
    def title(self) -> str:
        return self.tickets[0].subject

    @property
    def customers(self) -> int:
        return len({t.customer for t in self.tickets})

    @property
    def first_seen(self) -> datetime:
        return self.tickets[0].created

    @property
    def last_seen(self) -> datetime:
        return max(t.created for t in self.tickets)


def group_tickets(tickets: Iterable[ReportTicket], threshold: float) -> list[Group]:
    """All groups (of one ticket too), biggest first, then the most recently seen."""
    ordered = sorted(tickets, key=lambda t: (t.created, t.id))
    sets = [words(t.subject, t.body) for t in ordered]
    frequency = Counter(w for s in sets for w in s)
    groups: list[Group] = []
    index: dict[tuple[str, str], list[int]] = defaultdict(list)  # (category, word) → groups

    def prefix(s: frozenset[str]) -> list[str]:
        rare = sorted(s, key=lambda w: (frequency[w], w))
        return rare[: len(rare) - math.ceil(threshold * len(rare)) + 1]

    for ticket, own in zip(ordered, sets):
        best, score = None, threshold
        seen: set[int] = set()
        for word in prefix(own):
            for g in index.get((ticket.category, word), ()):
                if g not in seen:
                    seen.add(g)
                    similarity = jaccard(own, groups[g].words)
                    if similarity > score or (similarity == score and (best is None or g < best)):
                        best, score = g, similarity  # the most similar group; of equals, the oldest
        if best is None and own:
            best = len(groups)
            groups.append(Group(ticket.category, own))
            for word in prefix(own):
                index[(ticket.category, word)].append(best)
        if best is not None:
            groups[best].tickets.append(ticket)
    return sorted(groups, key=lambda g: (-len(g.tickets), -g.last_seen.timestamp(), g.first_seen.timestamp()))


def recurring(tickets: Iterable[ReportTicket], threshold: float, top: int) -> list[Group]:
    """The ``top`` biggest groups of two or more tickets."""
    return [g for g in group_tickets(tickets, threshold) if len(g.tickets) >= 2][:top]

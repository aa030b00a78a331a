"""What real delivery reports say (the corpus's bounces), and address suppression."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.mail.bounces import Suppressions, read_bounce
from bridge.mail.parse import parse_email

BOUNCES = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "flanker" / "bounce"

# file → (recipient, status, hard): read by hand from each report
EXPECTED = {
    "zed.eml": ("asdfasdfasdfasdfasdfasdfewrqertrtyrthsfgdfgadfqeadvxzvz@gmail.com", "5.1.1", True),
    "office365.eml": ("noname@example.com", "5.1.10", True),
    "gmail-invalid-address.eml": ("awfawfawfawfawfaw@someserverhere.com", "5.1.0", True),
    "gmail-no-dns.eml": ("user@example.comm", "", True),  # "failed permanently", no status
    "mailbox-full.eml": ("user@aol.com", "5.2.2", True),
    "no-mx.eml": ("user@example.com", "4.4.4", False),
    "delayed.eml": ("foo@example.com", "4.0.0", False),
    "delayed-broken.eml": ("demo@example.com", "4.2.2", False),
    "broken-mime.eml": ("", "", False),  # says only "Delivery failed 10 attempts"
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_reports_are_read_for_recipient_status_and_finality(name: str) -> None:
    path = BOUNCES / name
    if not path.is_file():
        pytest.fail(f"email corpus missing at {path}", pytrace=False)
    bounce = read_bounce(parse_email(path.read_bytes()))
    assert (bounce.recipient, bounce.status, bounce.hard) == EXPECTED[name]


def test_every_corpus_bounce_is_covered() -> None:
    assert {p.name for p in BOUNCES.glob("*.eml")} == set(EXPECTED)


class _Table(dict):
    def put(self, key, value, *, durable=True):
        self[key] = value


def test_a_suppression_runs_until_its_end_and_ignores_case() -> None:
    rest = Suppressions(_Table())
    rest.suppress("Alice@Customer.example", 7, "5.1.1 user unknown", now=1000.0)
    assert rest.active("alice@customer.example", now=1000.0 + 6 * 86400)["reason"] == "5.1.1 user unknown"
    assert rest.active("alice@customer.example", now=1000.0 + 7 * 86400) is None
    assert rest.active("bob@customer.example", now=1000.0) is None

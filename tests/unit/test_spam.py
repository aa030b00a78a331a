"""Reading the receiving server's spam verdict and a trusted server's SPF/DMARC failure."""

from __future__ import annotations

import pytest

from bridge.config import GuardConfig, SpamConfig
from bridge.mail.guard import GuardContext, classify
from bridge.mail.parse import parse_email
from bridge.mail.spam import authentication_failure, spam_evidence
from bridge.models import GuardAction


def email(*headers: str, body: str = "Cheap watches"):
    raw = "\r\n".join([*headers, "From: Seller <seller@spam.example>", "To: support@example.com",
                       "Subject: Offer", "Message-ID: <s1@spam.example>", "", body]).encode()
    return parse_email(raw)


@pytest.mark.parametrize("header", [
    "X-Spam-Flag: YES",
    "X-Spam-Status: Yes, score=12.3 required=5.0 tests=BAYES_99",
    "X-Rspamd-Action: add header",
    "X-Rspamd-Action: reject",
    "X-Spamd-Result: default: True [15.20 / 15.00]",
    "X-Spamd-Result: default: False [16.0 / 15.0]",
    "X-MS-Exchange-Organization-SCL: 6",
    "X-Forefront-Antispam-Report: CIP:203.0.113.9;CTRY:;LANG:en;SCL:9;SRV:;IPV:NLI;SFV:SPM;H:mx;PTR:;CAT:SPM;",
])
def test_spam_verdicts_are_read(header: str) -> None:
    assert spam_evidence(email(header))


@pytest.mark.parametrize("header", [
    "X-Spam-Flag: NO",
    "X-Spam-Status: No, score=0.1 required=5.0",
    "X-Rspamd-Action: no action",
    "X-Rspamd-Action: greylist",
    "X-Spamd-Result: default: False [2.10 / 15.00]",
    "X-MS-Exchange-Organization-SCL: 1",
    "X-MS-Exchange-Organization-SCL: -1",
    "X-Forefront-Antispam-Report: CIP:198.51.100.1;SFV:NSPM;SCL:1",
])
def test_clean_verdicts_are_not_spam(header: str) -> None:
    assert spam_evidence(email(header)) == ""


def test_only_the_topmost_verdict_counts() -> None:
    """Our server's header is on top; one the sender wrote further down is not believed."""
    assert spam_evidence(email("X-Spam-Flag: NO", "X-Spam-Flag: YES")) == ""
    assert spam_evidence(email("X-Spam-Flag: YES", "X-Spam-Flag: NO"))


def test_scl_threshold_is_configurable() -> None:
    assert spam_evidence(email("X-MS-Exchange-Organization-SCL: 5"), scl_threshold=5)
    assert spam_evidence(email("X-MS-Exchange-Organization-SCL: 5"), scl_threshold=7) == ""


def test_authentication_failure_only_from_a_trusted_server() -> None:
    failing = email("Authentication-Results: mx.example.com; spf=fail smtp.mailfrom=spam.example; "
                    "dmarc=fail header.from=spam.example")
    assert "dmarc=fail" in authentication_failure(failing, ("mx.example.com",))
    assert authentication_failure(failing, ("other.example",)) == ""
    assert authentication_failure(failing, ()) == ""
    passing = email("Authentication-Results: mx.example.com; spf=pass smtp.mailfrom=ok.example; dmarc=pass")
    assert authentication_failure(passing, ("mx.example.com",)) == ""


CTX = GuardContext(own_addresses=frozenset({"support@example.com"}), own_domain="example.com",
                   loop_token="support@example.com", is_our_message_id=lambda mid: False)


def test_the_guard_records_spam_without_reply_or_moves_it() -> None:
    spam = email("X-Spam-Flag: YES")
    verdict = classify(spam, GuardConfig(), CTX)
    assert verdict.action is GuardAction.RECORD_ONLY and verdict.spam and "X-Spam-Flag" in verdict.reason
    moved = classify(spam, GuardConfig(spam=SpamConfig(action="folder", folder="Junk")), CTX)
    assert moved.action is GuardAction.DROP and moved.folder == "Junk"
    off = classify(spam, GuardConfig(spam=SpamConfig(enabled=False)), CTX)
    assert off.action is GuardAction.PROCESS


def test_the_guard_answers_no_mail_failing_dmarc_at_our_server() -> None:
    failing = email("Authentication-Results: mx.example.com; dmarc=fail header.from=spam.example")
    verdict = classify(failing, GuardConfig(), CTX, ("mx.example.com",))
    assert verdict.action is GuardAction.RECORD_ONLY and "dmarc=fail" in verdict.reason
    allowed = classify(failing, GuardConfig(spam=SpamConfig(no_reply_on_auth_failure=False)), CTX, ("mx.example.com",))
    assert allowed.action is GuardAction.PROCESS

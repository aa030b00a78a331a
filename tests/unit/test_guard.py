"""The loop/auto-reply guard: every rule, its precedence, and the corpus's real bounces."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bridge.config import GuardConfig
from bridge.mail.guard import GuardContext, address_matches, classify, is_auto_reply, is_bounce
from bridge.mail.parse import parse_email
from bridge.mail.thread_ids import make_message_id
from bridge.models import GuardAction, InboundEmail

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
OUR_ACK = "<ack-1@helpdesk.example.com>"  # one of ours, known to the app's store
CTX = GuardContext(
    own_addresses=frozenset({"support@example.com"}),
    own_domain="helpdesk.example.com",
    loop_token="support@example.com",
    is_our_message_id=lambda message_id: message_id == OUR_ACK,
)
CFG = GuardConfig()


def email(
    *headers: str, body: str = "Hello", ctype: str = "text/plain; charset=utf-8", parts: str = ""
) -> InboundEmail:
    """A parsed email; "Name: -" removes a default header, "Name: v" replaces or adds one."""
    fields = {
        "From": "Alice <alice@customer.example>",
        "To": "support@example.com",
        "Subject": "Printer broken",
        "Message-ID": "<m1@customer.example>",
        "Content-Type": ctype,
    }
    extra = []
    for header in headers:
        name, _, value = header.partition(":")
        if name in fields:
            fields[name] = value.strip()
        else:
            extra.append(header)
    head = "\r\n".join([f"{k}: {v}" for k, v in fields.items() if v != "-"] + extra)
    return parse_email(f"{head}\r\n\r\n{body}{parts}".encode())


def verdict(mail: InboundEmail, cfg: GuardConfig = CFG) -> tuple[GuardAction, str]:
    result = classify(mail, cfg, CTX)
    return result.action, result.reason


def report(*parts: tuple[str, str], subject: str = "Undelivered Mail Returned to Sender", **kw: str) -> InboundEmail:
    body = "".join(f"--r\r\nContent-Type: {ctype}\r\n\r\n{content}\r\n" for ctype, content in parts) + "--r--\r\n"
    return email(
        "From: MAILER-DAEMON@mx.customer.example (Mail Delivery System)",
        f"Subject: {subject}",
        *[f"{k.replace('_', '-')}: {v}" for k, v in kw.items()],
        ctype='multipart/report; report-type=delivery-status; boundary="r"',
        body="",
        parts=body,
    )


# --- address_matches ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "address", "expected"),
    [
        ("noreply@*", "NoReply@Shop.example", True),
        ("noreply@*", "xnoreply@shop.example", False),
        ("*-noreply@*", "billing-noreply@x.example", True),
        ("bounce*@*", "bounces+123@mail.example", True),
        ("*@spam.example", "a@spam.example", True),
        ("*@spam.example", "a@spam.example.org", False),
        ("exact@x.example", "exact@x.example", True),
        ("exact@x.example", "exact@x.example2", False),
        ("*", "", False),
        ("a*b*c", "aXXbYYc", True),
        ("a*b*c", "aXXbYY", False),
        ("*@kunde.example", "x@\u212aunde.example", False),  # KELVIN SIGN is not "k"
        ("*@\u212aunde.example", "x@kunde.example", False),
        ("*@KUNDE.example", "X@kunde.EXAMPLE", True),
    ],
)
def test_address_matches(pattern: str, address: str, expected: bool) -> None:
    assert address_matches(pattern, address) is expected


def test_address_matches_has_no_catastrophic_backtracking() -> None:
    started = time.perf_counter()
    assert not address_matches("*a*a*a*a*a*a*a*a*b", "a" * 300)
    assert time.perf_counter() - started < 0.5


def test_loop_token_is_compared_in_ascii_only() -> None:
    ctx = GuardContext(frozenset({"helpdesk@kunde.example"}), "helpdesk.example.com", "helpdesk@kunde.example",
                       lambda message_id: False)
    action, _ = verdict_in(email("X-Loop: HELPDESK@KUNDE.EXAMPLE"), ctx)
    assert action is GuardAction.DROP
    action, _ = verdict_in(email("X-Loop: helpdesk@\u212aunde.example"), ctx)
    assert action is not GuardAction.DROP


def verdict_in(mail: InboundEmail, ctx: GuardContext) -> tuple[GuardAction, str]:
    result = classify(mail, CFG, ctx)
    return result.action, result.reason


# --- DROP: exact loops --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "evidence"),
    [
        (("X-Loop: Support@Example.com",), "X-Loop: Support@Example.com is our loop token"),
        (("X-Bridge-Loop: 1",), "X-Bridge-Loop: 1"),
        (("Message-ID: " + OUR_ACK,), f"Message-ID {OUR_ACK} is one of ours"),
        (("From: Support <SUPPORT@example.com>",), "From support@example.com is our own address"),
    ],
)
def test_exact_loops_are_dropped(headers: tuple[str, ...], evidence: str) -> None:
    action, reason = verdict(email(*headers))
    assert action is GuardAction.DROP and reason.startswith("mail loop: ") and evidence in reason


def test_our_token_format_counts_as_ours_even_after_a_secret_change() -> None:
    old = make_message_id(42, "helpdesk.example.com", b"rotated-away-secret")
    action, reason = verdict(email(f"Message-ID: {old}"))
    assert action is GuardAction.DROP and old in reason
    foreign = make_message_id(42, "elsewhere.example", b"x")
    assert verdict(email(f"Message-ID: {foreign}"))[0] is GuardAction.PROCESS


def test_a_loop_beats_everything_else() -> None:
    mail = email("X-Loop: support@example.com", "Auto-Submitted: auto-replied", "From: MAILER-DAEMON@x.example")
    assert verdict(mail)[0] is GuardAction.DROP and "mail loop" in verdict(mail)[1]


# --- BOUNCE: bounces of our own replies ------------------------------------------------------------


def test_bounce_referring_to_our_reply_by_in_reply_to() -> None:
    mail = report(("text/plain", "failed"), In_Reply_To=OUR_ACK)
    assert verdict(mail) == (GuardAction.BOUNCE, f"bounce of our reply {OUR_ACK}")


def test_bounce_referring_to_our_reply_by_attached_original() -> None:
    original = f"From: support@example.com\r\nMessage-ID: {OUR_ACK}\r\nSubject: Re: x\r\n\r\nack"
    mail = report(("text/plain", "failed"), ("message/delivery-status", "Status: 5.1.1"), ("message/rfc822", original))
    assert verdict(mail) == (GuardAction.BOUNCE, f"bounce of our reply {OUR_ACK}")


def test_bounce_referring_to_our_reply_by_returned_headers() -> None:
    headers = f"From: support@example.com\r\nMessage-Id:\r\n {OUR_ACK}\r\n"
    mail = report(("text/plain", "failed"), ("text/rfc822-headers", headers))
    assert verdict(mail) == (GuardAction.BOUNCE, f"bounce of our reply {OUR_ACK}")


def test_bounce_referring_to_our_reply_in_its_body_text() -> None:
    mail = email(
        "From: postmaster@customer.example",
        "Subject: Undeliverable: Re: Printer broken",
        body=f"Delivery failed.\r\n\r\n--- Original message ---\r\nMessage-ID: {OUR_ACK}\r\nSubject: Re: x\r\n",
    )
    assert verdict(mail) == (GuardAction.BOUNCE, f"bounce of our reply {OUR_ACK}")


def test_bounce_referring_to_our_reply_by_exchange_original_id_header() -> None:
    mail = email("Subject: Undeliverable: Re: x", f"X-Microsoft-Original-Message-ID: {OUR_ACK[1:-1]}")
    assert verdict(mail) == (GuardAction.BOUNCE, f"bounce of our reply {OUR_ACK}")


def test_a_non_bounce_quoting_our_id_is_not_dropped() -> None:
    mail = email(f"In-Reply-To: {OUR_ACK}", body=f"Message-ID: {OUR_ACK}")
    assert verdict(mail)[0] is GuardAction.PROCESS


# --- DROP: excluded senders ---------------------------------------------------------------------


def test_excluded_sender_is_dropped_before_auto_reply_checks() -> None:
    cfg = GuardConfig(exclude_senders=("*@spam.example",))
    mail = email("From: x@SPAM.example", "Auto-Submitted: auto-generated")
    assert verdict(mail, cfg) == (GuardAction.DROP, "sender excluded by guard.exclude_senders (*@spam.example)")


def test_bounce_of_ours_beats_the_exclusion_list() -> None:
    cfg = GuardConfig(exclude_senders=("mailer-daemon@*",))
    mail = report(("text/plain", "failed"), In_Reply_To=OUR_ACK)
    assert verdict(mail, cfg)[1] == f"bounce of our reply {OUR_ACK}"


# --- RECORD_ONLY --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mail", "evidence"),
    [
        (lambda: report(("text/plain", "failed")), "From is mailer-daemon@mx.customer.example"),
        (lambda: email("From: Mail Delivery System <MAILER-DAEMON>"), "From is"),
        (lambda: email("X-Failed-Recipients: gone@x.example"), "X-Failed-Recipients: gone@x.example"),
        (lambda: email("Subject: Delivery Status Notification (Failure)"), "subject"),
        (lambda: email("Subject: Undeliverable: hello"), "subject"),
        (lambda: email("Subject: Mail delivery failed: returning message to sender"), "subject"),
        (
            lambda: email(ctype='multipart/report; report-type="delivery-status"; boundary=r', parts="--r--"),
            "multipart/report; report-type=delivery-status",
        ),
        (
            lambda: email(ctype="multipart/mixed; boundary=r", body="", parts=(
                "--r\r\nContent-Type: message/delivery-status\r\n\r\nAction: failed\r\n--r--")),
            "message/delivery-status part",
        ),
        (lambda: email("Return-Path: <>"), "null Return-Path <>"),
    ],
)
def test_other_bounces_are_recorded_without_reply(mail, evidence: str) -> None:  # type: ignore[no-untyped-def]
    parsed = mail()
    assert is_bounce(parsed)
    action, reason = verdict(parsed)
    assert action is GuardAction.RECORD_ONLY and reason.startswith("bounce: ") and evidence in reason


@pytest.mark.parametrize(
    ("header", "evidence"),
    [
        ("Auto-Submitted: auto-replied", "Auto-Submitted: auto-replied"),
        ("Auto-Submitted: auto-generated; owner-email=bob@x.example", "Auto-Submitted: auto-generated"),
        ("Precedence: bulk", "Precedence: bulk"),
        ("Precedence: JUNK", "Precedence: JUNK"),
        ("X-Precedence: auto_reply", "X-Precedence: auto_reply"),
        ("List-Id: Announcements <news.example.com>", "List-Id: Announcements"),
        ("List-Unsubscribe: <mailto:leave@example.com>", "List-Unsubscribe"),
        ("X-Auto-Response-Suppress: DR, RN, NRN", "X-Auto-Response-Suppress: DR, RN, NRN"),
        ("X-Auto-Response-Suppress: OOF, AutoReply", "X-Auto-Response-Suppress"),
        ("X-Autoreply: yes", "X-Autoreply: yes"),
        ("X-Autorespond: yes", "X-Autorespond"),
        ("X-Autoresponder: 1", "X-Autoresponder"),
        ("X-Auto-Reply-From: bob@x.example", "X-Auto-Reply-From"),
        ("X-Mail-Autoreply: yes", "X-Mail-Autoreply"),
        ("X-Autogenerated: Reply", "X-Autogenerated"),
        ("X-Loop: someone-else", "X-Loop: someone-else"),
        ("X-MS-Exchange-Inbox-Rules-Loop: bob@x.example", "X-MS-Exchange-Inbox-Rules-Loop"),
        ("Feedback-Type: abuse", "ARF feedback report"),
    ],
)
def test_auto_replies_are_recorded_without_reply(header: str, evidence: str) -> None:
    mail = email(header)
    assert evidence in is_auto_reply(mail)
    action, reason = verdict(mail)
    assert action is GuardAction.RECORD_ONLY and reason.startswith("auto-reply: ") and evidence in reason


@pytest.mark.parametrize(
    "header",
    ["Auto-Submitted: no", "Precedence: first-class", "X-Auto-Response-Suppress: RN, NRN", "X-Precedence: normal"],
)
def test_headers_that_do_not_mean_automatic(header: str) -> None:
    assert is_auto_reply(email(header)) == ""
    assert verdict(email(header)) == (GuardAction.PROCESS, "")


def test_exchange_out_of_office() -> None:
    mail = email(
        "From: Bob Tran <bob@customer.example>",
        "Subject: Automatic reply: Printer broken",
        "X-Auto-Response-Suppress: All",
        "X-MS-Exchange-Inbox-Rules-Loop: bob@customer.example",
        "X-MS-Exchange-Generated-Message-Source: Mailbox Rules Agent",
        f"In-Reply-To: {OUR_ACK}",
        "Return-Path: <>",
        body="I am out of the office until Monday.",
    )
    assert not is_bounce(mail)  # null Return-Path on an auto-reply is RFC 3834, not an NDR
    assert verdict(mail) == (GuardAction.RECORD_ONLY, "auto-reply: X-Auto-Response-Suppress: All")


def test_mailing_list_mail() -> None:
    mail = email(
        "From: Weekly News <news@lists.example.org>",
        "List-Id: Weekly News <weekly.lists.example.org>",
        "List-Unsubscribe: <https://lists.example.org/u/123>",
        "Precedence: list",
    )
    assert verdict(mail) == (GuardAction.RECORD_ONLY, "auto-reply: Precedence: list")


def test_no_reply_senders_and_empty_from() -> None:
    assert verdict(email("From: Shop <No-Reply@shop.example>")) == (
        GuardAction.RECORD_ONLY,
        "sender matches guard.no_reply_senders (no-reply@*)",
    )
    assert verdict(email("From: -"))[0] is GuardAction.RECORD_ONLY
    assert "From is empty" in verdict(email("From: Somebody without address"))[1]


def test_null_return_path_on_an_auto_reply_is_an_auto_reply() -> None:
    mail = email("Return-Path: <>", "Auto-Submitted: auto-replied")
    assert verdict(mail) == (GuardAction.RECORD_ONLY, "auto-reply: Auto-Submitted: auto-replied")


# --- PROCESS ------------------------------------------------------------------------------------


def test_ordinary_mail_is_processed() -> None:
    assert verdict(email("Return-Path: <alice@customer.example>")) == (GuardAction.PROCESS, "")


def test_hostile_subject_is_irrelevant_to_the_guard() -> None:
    mail = email('From: "<!channel> Eve" <eve@customer.example>', "Subject: <!channel> <script>alert(1)</script>")
    assert verdict(mail) == (GuardAction.PROCESS, "")


# --- the corpus ---------------------------------------------------------------------------------


def _corpus(folder: str) -> list[Path]:
    path = CORPUS / folder
    if not path.is_dir():
        pytest.fail(f"email corpus missing at {path}", pytrace=False)
    return sorted(path.glob("*.eml"))


def test_corpus_bounces_are_bounces() -> None:
    for path in _corpus("flanker/bounce"):
        mail = parse_email(path.read_bytes())
        assert is_bounce(mail), path.name
        action, reason = verdict(mail)
        assert action is GuardAction.RECORD_ONLY and reason.startswith("bounce: "), (path.name, reason)


@pytest.mark.parametrize(
    ("name", "original"),
    [
        ("gmail-invalid-address.eml", "<CAKsfaBUUGqVZiaMrmH3TRPfq1odQPtM7Ey5YW1SgyJJRHtAjgw@mail.gmail.com>"),
        ("mailbox-full.eml", "<4E326A95.3010907@example.com>"),
        ("no-mx.eml", "<19E44CA63F984902B7D654F8FF40F89D@bo>"),
        ("office365.eml", "<20171013111011.20866.254C2F3A4D7AA526@ninomail.com>"),
        ("zed.eml", "<20090708054735.GC7578@example.com>"),
    ],
)
def test_corpus_bounces_of_our_mail_are_dropped(name: str, original: str) -> None:
    ctx = GuardContext(frozenset(), "helpdesk.example.com", "support@example.com", lambda mid: mid == original)
    mail = parse_email((CORPUS / "flanker" / "bounce" / name).read_bytes())
    assert classify(mail, CFG, ctx).reason == f"bounce of our reply {original}"


def test_corpus_complaints_and_receipts_are_recorded_only() -> None:
    for path in [*_corpus("flanker/complaints"), CORPUS / "flanker" / "disposition-notification.eml"]:
        action, reason = verdict(parse_email(path.read_bytes()))
        assert action is GuardAction.RECORD_ONLY, (path.name, reason)

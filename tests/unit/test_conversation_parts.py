"""Pure parts of the Odoo → customer side: the watcher's stamps, the attachment budget, and an
agent's answer composed with files and Cc's."""

from __future__ import annotations

from email import message_from_string, policy

from bridge.mail.compose import Composer, MessageKind
from bridge.mail.parse import parse_email
from bridge.models import Attachment
from bridge.pipeline.assign import pick
from bridge.pipeline.conversation import within_budget
from bridge.pipeline.odoo_watch import earlier

INBOUND = (b"From: Alice <alice@customer.example>\r\nTo: support@example.com\r\nSubject: VPN\r\n"
           b"Message-ID: <m1@customer.example>\r\n\r\nHelp\r\n")


def _composer() -> Composer:
    return Composer("", from_address="support@example.com", from_name="Support", domain="example.com",
                    secret=b"k" * 32, tag_prefix="HD-")


def test_earlier_moves_an_odoo_stamp_back_across_midnight_and_ignores_fractions() -> None:
    assert earlier("2026-12-04 00:01:00", 120) == "2026-12-03 23:59:00"
    assert earlier("2026-12-04 00:01:00.123456", 0) == "2026-12-04 00:01:00"


def test_within_budget_keeps_files_in_order_until_the_budget_and_lists_the_rest() -> None:
    files = [Attachment(name, "application/octet-stream", b"x" * size)
             for name, size in (("a", 4), ("big", 10), ("b", 3), ("c", 4))]
    kept, left = within_budget(files, 8)
    assert [f.filename for f in kept] == ["a", "b"] and [f.filename for f in left] == ["big", "c"]
    assert within_budget(files, 0) == ([], files)


def test_an_answer_carries_its_files_and_only_plain_cc_addresses() -> None:
    mail = _composer().reply(
        parse_email(INBOUND), 7, template="agent_reply", kind=MessageKind.AGENT_REPLY,
        values={"reply_text": "Here it is.", "agent_name": "Agent"},
        attachments=[Attachment("Báo cáo.pdf", "application/pdf", b"%PDF"),
                     Attachment("odd", "text/html\r\nX-Injected: 1", b"<b>")],
        cc=["bob@customer.example", "not an address", "ALICE@customer.example", "bob@customer.example"])
    assert mail.recipients == ["alice@customer.example", "bob@customer.example"]
    parsed = message_from_string(mail.raw, policy=policy.default)
    assert parsed["Cc"] == "bob@customer.example" and parsed["X-Injected"] is None
    assert parsed["Auto-Submitted"] is None
    files = list(parsed.iter_attachments())
    assert [(f.get_filename(), f.get_content_type(), f.get_content()) for f in files] == [
        ("Báo cáo.pdf", "application/pdf", b"%PDF"), ("odd", "application/octet-stream", b"<b>")]
    assert "Here it is." in parsed.get_body(("plain",)).get_content()


def test_the_closing_notice_is_automatic_and_says_how_to_reopen() -> None:
    mail = _composer().reply(parse_email(INBOUND), 7, template="closed", kind=MessageKind.CLOSING_NOTICE,
                             values={"reopen_days": 14})
    parsed = message_from_string(mail.raw, policy=policy.default)
    assert parsed["Auto-Submitted"] == "auto-replied" and parsed["X-Bridge-Kind"] == "closing_notice"
    assert "within 14 days" in mail.text and "How did we do" not in mail.text


def test_pick_spreads_ties_from_the_turn_and_round_robin_ignores_loads() -> None:
    assert pick([(1, 3), (2, 1), (3, 1)], 0, "least_loaded") == 1
    assert pick([(1, 3), (2, 1), (3, 1)], 2, "least_loaded") == 2
    assert pick([(1, 0), (2, 0)], 5, "round_robin") == 1


def test_rating_tokens_verify_only_as_signed() -> None:
    from bridge.ratings import links, token, verify

    secret = b"s" * 32
    value = token(secret, 42, 2, "g")
    assert verify(secret, value) == (42, 2, "g")
    assert verify(b"other" * 8, value) is None
    assert verify(secret, value.replace("42-2-g", "42-2-b")) is None
    assert verify(secret, value.replace("42-2", "43-2")) is None
    assert verify(secret, value + "x") is None and verify(secret, "../../etc") is None
    urls = links("https://support.example.com/", secret, 42, 2)
    assert urls["rating_good_url"] == f"https://support.example.com/rate/{value}"

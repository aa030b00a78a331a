"""End to end: the login-problem automation on new tickets.

An email saying "I can't log in" becomes a ticket as usual; then the bridge verifies the sender
(Authentication-Results from our own server), asks HR and the LMS, decides, acts on the LMS once
(idempotency key), writes an internal note, moves the ticket to Solved / In Progress with the
auto-resolved / escalated tag, and answers the user once with a login_* template instead of the
generic acknowledgement. Anything doubtful (spoofing, HR or LMS trouble, the per-account limit)
escalates to a human without touching the LMS.

The HR and LMS stand-ins run in this process (``hr``/``lms`` fixtures); the bridge runs in a
thread (``bridge_factory``) except for the crash test, which SIGKILLs a real process.
"""

from __future__ import annotations

import collections
import html
import logging
import re
import signal
import threading
import time

import pytest

from bridge.automation.classify import detect_language
from bridge.sandbox.hr import HrSandbox
from bridge.sandbox.lms import LmsSandbox
from tests.integration.harness import bridge_settings, email_bytes, wait_until, write_config
from tests.integration.test_crash import Process
from tests.integration.test_flow import done, notes

pytestmark = pytest.mark.integration

DOMAIN = "customer.example"
AUTHSERV = "mx.example.com"

EN_SUBJECT = "I can't log in"
EN_BODY = ("Hi, since this morning I can't log in to the learning portal; it says my account "
           "is not available. Could you help? Thanks")
VI_SUBJECT = "Không đăng nhập được"
VI_BODY = ("Chào anh chị, em không đăng nhập được vào hệ thống học trực tuyến từ sáng nay. "
           "Nhờ anh chị giúp em với. Em cảm ơn, Trần Thị Hà")

ESCALATION_LOGGER = "bridge.escalations"


# --------------------------------------------------------------------------- fixtures and helpers


def auth_results(domain: str = DOMAIN, authserv: str = AUTHSERV, dmarc: str = "pass",
                 header_from: str | None = None) -> str:
    header_from = header_from or domain
    return (f"{authserv}; dkim=pass header.d={domain}; spf=pass smtp.mailfrom={domain}; "
            f"dmarc={dmarc} header.from={header_from}")


def login_email(sender: str, subject: str = EN_SUBJECT, body: str = EN_BODY, *, authenticated: bool = True,
                authserv: str = AUTHSERV, dmarc: str = "pass", header_from: str | None = None,
                headers: dict[str, str] | None = None) -> tuple[bytes, str]:
    """A login email from `sender` ("Name <addr>" or addr); returns (raw, Message-ID).

    `authenticated` adds the Authentication-Results header our MX would stamp: by `authserv`,
    DMARC `dmarc` for `header_from` (default: the From domain).
    """
    address = re.search(r"[^<\s]+@[^>\s]+", sender).group(0)
    extra = dict(headers or {})
    if authenticated:
        extra["Authentication-Results"] = auth_results(address.rpartition("@")[2], authserv, dmarc, header_from)
    return email_bytes(sender=sender, subject=subject, body=body, headers=extra)


def automation_settings(hr: HrSandbox, lms: LmsSandbox, **extra) -> dict:
    """The `automation` config section pointing at the stand-ins; `extra` replaces top-level keys."""
    settings = {
        "enabled": True,
        "dry_run": False,
        "dry_run_reply": "suppress",
        "classifier": {},
        "sender": {"require": "dmarc", "organisation_domains": [DOMAIN], "trusted_authserv_ids": [AUTHSERV]},
        "hr": {"url": hr.url, "auth_value": "Bearer hr-token"},
        "lms": {"url": lms.url, "auth_value": "Bearer lms-token"},
        "decision": {},
        "action_limit": {"count": 3, "per_seconds": 86400},
        "resolved_stage": "Solved",
        "escalated_stage": "In Progress",
        "resolved_tag": "auto-resolved",
        "escalated_tag": "escalated",
    }
    settings.update(extra)
    return settings


def start_bridge(bridge_factory, hr, lms, **extra):
    return bridge_factory(automation=automation_settings(hr, lms, **extra))


def ticket_of(odoo, mid: str) -> dict | None:
    """The ticket the email with Message-ID `mid` was posted on."""
    for message in odoo.records("mail.message"):
        if message.get("message_id") == mid and message.get("model") == "helpdesk.ticket":
            found = [t for t in odoo.records("helpdesk.ticket") if t["id"] == message["res_id"]]
            return found[0] if found else None
    return None


def _id(value):
    return value[0] if isinstance(value, (list, tuple)) else value


def stage_name(odoo, ticket: dict) -> str:
    stages = {s["id"]: s["name"] for s in odoo.records("helpdesk.stage")}
    return stages.get(_id(ticket.get("stage_id")), repr(ticket.get("stage_id")))


def tag_names(odoo, ticket: dict) -> set[str]:
    tags = {t["id"]: t["name"] for t in odoo.records("helpdesk.tag")}
    return {tags.get(_id(tag), repr(tag)) for tag in ticket.get("tag_ids") or []}


def login_notes(odoo, ticket_id: int) -> list[str]:
    """Bodies (HTML-unescaped) of the ticket's internal notes written by the login automation."""
    bodies = [html.unescape(n.get("body") or "") for n in notes(odoo, ticket_id)]
    return [body for body in bodies if "login automation" in body.lower()]


def replies(sink, mid: str) -> list:
    return [m.message for m in sink.messages if m.message["In-Reply-To"] == mid]


def text_of(message) -> str:
    part = message.get_body(preferencelist=("plain",))
    return part.get_content() if part is not None else ""


def lms_actions_for(lms: LmsSandbox, *addresses: str) -> list[dict]:
    wanted = {a.casefold() for a in addresses}
    return [a for a in lms.actions if a["email"].casefold() in wanted or a.get("to", "").casefold() in wanted]


def lms_posts(lms: LmsSandbox) -> list[dict]:
    return [c for c in lms.calls if c["method"] == "POST"]


def finish(settled, mailbox, odoo, sink, uid: int, mid: str, *, reply: bool = True, note: bool = True,
           timeout=20.0):
    """Wait for the email's whole flow, then, once `settled()` says the bridge has nothing left to
    send, check it got exactly one reply (or none).

    Returns (ticket, reply message or None, login note bodies).
    """
    wait_until(lambda: done(mailbox, uid), timeout=timeout, what=f"email {mid} marked done")
    ticket = wait_until(lambda: ticket_of(odoo, mid), timeout=timeout, what=f"the ticket of {mid}")
    if note:
        wait_until(lambda: login_notes(odoo, ticket["id"]), timeout=timeout,
                   what=f"a 'Login automation' note on ticket {ticket['id']}")
    if reply:
        sink.wait_for(1, timeout=timeout, predicate=lambda m: m.message["In-Reply-To"] == mid)
    wait_until(settled, timeout=timeout, what="the outbox empty")
    got = replies(sink, mid)
    if reply:
        assert len(got) == 1, f"expected exactly one reply to {mid}, got {[m['Subject'] for m in got]}"
    else:
        assert got == [], f"expected no reply to {mid}, got {[m['Subject'] for m in got]}"
    ticket = ticket_of(odoo, mid)  # re-read: stage and tags may have been written after creation
    return ticket, (got[0] if got else None), login_notes(odoo, ticket["id"])


def stopped(process: Process):
    """The settled signal of a bridge process: stopped by SIGTERM, which flushes its outbox first."""
    def settled() -> bool:
        process.stop()
        return process.proc.poll() is not None
    return settled


def assert_resolved(odoo, ticket, reply, bodies, decision: str, template: str):
    assert len(bodies) == 1, f"expected one login note, got {bodies}"
    assert decision in bodies[0], bodies[0]
    assert stage_name(odoo, ticket) == "Solved"
    assert "auto-resolved" in tag_names(odoo, ticket) and "escalated" not in tag_names(odoo, ticket)
    assert reply["X-Bridge-Template"] == template
    assert f"[#HD-{ticket['id']}]" in str(reply["Subject"])


def assert_escalated(odoo, ticket, reply, bodies, caplog, reason_pattern: str | None = None, *, answered=True):
    """Escalated: note says so (with the reason), In Progress + escalated tag, login_escalated reply
    (none when not ``answered``), and a WARNING from bridge.escalations naming the ticket (and the reason)."""
    assert len(bodies) == 1, f"expected one login note, got {bodies}"
    assert "escalate" in bodies[0], bodies[0]
    if reason_pattern:
        assert re.search(reason_pattern, bodies[0], re.I), f"{reason_pattern!r} not in note: {bodies[0]}"
    assert stage_name(odoo, ticket) == "In Progress"
    assert "escalated" in tag_names(odoo, ticket) and "auto-resolved" not in tag_names(odoo, ticket)
    if answered:
        assert reply is not None and reply["X-Bridge-Template"] == "login_escalated"
        assert f"[#HD-{ticket['id']}]" in str(reply["Subject"])
    else:
        assert reply is None
    lines = [r.getMessage() for r in caplog.records
             if r.name == ESCALATION_LOGGER and r.levelno == logging.WARNING
             and re.search(rf"(?<!\d){ticket['id']}(?!\d)", r.getMessage())]
    assert lines, (f"no WARNING from {ESCALATION_LOGGER} naming ticket {ticket['id']}; got "
                   f"{[(r.name, r.levelname, r.getMessage()) for r in caplog.records if r.levelno >= logging.WARNING]}")
    if reason_pattern:
        assert any(re.search(reason_pattern, line, re.I) for line in lines), lines


@pytest.fixture
def logs(caplog):
    caplog.set_level(logging.INFO)
    return caplog


# --------------------------------------------------------------------------- decisions


def test_deactivated_account_of_active_employee_is_reactivated(bridge_factory, mailbox, odoo, sink, hr, lms, logs):
    bridge = start_bridge(bridge_factory, hr, lms)
    raw, mid = login_email("Alice Martin <alice@customer.example>")
    uid = mailbox.append(raw)
    ticket, reply, bodies = finish(bridge.settled, mailbox, odoo, sink, uid, mid)

    [action] = lms.actions
    assert action["action"] == "reactivate" and action["email"].casefold() == "alice@customer.example"
    assert action["key"], "the action carries an idempotency key"
    assert_resolved(odoo, ticket, reply, bodies, "reactivate", "login_reactivated")
    assert reply["To"].addresses[0].addr_spec == "alice@customer.example"
    assert reply["Auto-Submitted"] == "auto-replied"
    assert detect_language(str(reply["Subject"]), text_of(reply)) == "en", text_of(reply)
    assert not any(r.name == ESCALATION_LOGGER for r in logs.records)


def test_vietnamese_email_of_active_account_gets_reset_and_vietnamese_reply(
        bridge_factory, mailbox, odoo, sink, hr, lms, logs):
    bridge = start_bridge(bridge_factory, hr, lms)
    raw, mid = login_email("Trần Thị Hà <ha.tran@customer.example>", subject=VI_SUBJECT, body=VI_BODY)
    uid = mailbox.append(raw)
    ticket, reply, bodies = finish(bridge.settled, mailbox, odoo, sink, uid, mid)

    [action] = lms.actions
    assert action["action"] == "password-reset"
    assert action["to"].casefold() == "ha.tran@customer.example"
    assert_resolved(odoo, ticket, reply, bodies, "send_reset", "login_reset")
    text = text_of(reply)
    assert detect_language(str(reply["Subject"]), text) == "vi", f"reply is not Vietnamese:\n{text}"
    assert reply["To"].addresses[0].addr_spec == "ha.tran@customer.example"


def test_reset_from_alias_goes_to_the_address_on_record(bridge_factory, mailbox, odoo, sink, hr, lms, logs):
    bridge = start_bridge(bridge_factory, hr, lms)
    raw, mid = login_email("Lê Thị Lan <lan@customer.example>")
    uid = mailbox.append(raw)
    ticket, reply, bodies = finish(bridge.settled, mailbox, odoo, sink, uid, mid)

    [action] = lms.actions
    assert action["action"] == "password-reset"
    assert action["to"] == "lan.le@customer.example"
    assert_resolved(odoo, ticket, reply, bodies, "send_reset", "login_reset")


ESCALATIONS = [
    # sender, expected reason (DecisionTable defaults)
    pytest.param("Nguyễn Văn Minh <minh.nguyen@customer.example>", r"no rule applies", id="minh-no-lms-account"),
    pytest.param("Bob Keller <bob@customer.example>", r"employee is not active in HR", id="bob-terminated"),
    pytest.param("Dave Okafor <dave@customer.example>", r"employee is not active in HR", id="dave-left-suspended"),
    pytest.param("Erik Olsen <erik@customer.example>", r"no rule applies", id="erik-unknown-statuses"),
    pytest.param("Carol <carol@customer.example>", r"sender unknown to HR", id="carol-not-in-hr"),
]


@pytest.mark.parametrize("sender,reason", ESCALATIONS)
def test_doubtful_cases_are_escalated_without_touching_the_lms(
        bridge_factory, mailbox, odoo, sink, hr, lms, logs, sender, reason):
    bridge = start_bridge(bridge_factory, hr, lms)
    raw, mid = login_email(sender)
    uid = mailbox.append(raw)
    ticket, reply, bodies = finish(bridge.settled, mailbox, odoo, sink, uid, mid)

    assert lms.actions == [] and lms_posts(lms) == []
    assert_escalated(odoo, ticket, reply, bodies, logs, reason)


def test_non_login_email_gets_the_usual_acknowledgement(bridge_factory, mailbox, odoo, sink, hr, lms, logs):
    bridge = start_bridge(bridge_factory, hr, lms)
    raw, mid = email_bytes(sender="Alice Martin <alice@customer.example>", subject="Printer broken",
                           body="It prints blank pages.", headers={"Authentication-Results": auth_results()})
    uid = mailbox.append(raw)
    ticket, reply, bodies = finish(bridge.settled, mailbox, odoo, sink, uid, mid, note=False)

    assert bodies == []
    assert reply["X-Bridge-Template"] in (None, "ack"), reply["X-Bridge-Template"]
    assert f"[#HD-{ticket['id']}]" in str(reply["Subject"])
    assert lms.calls == [] and hr.calls == []
    assert stage_name(odoo, ticket) == "New"
    assert not tag_names(odoo, ticket) & {"auto-resolved", "escalated"}


VPN_SUBJECT = "VPN"
VPN_BODY = ("Hi, since this morning I can't connect to the VPN from home, it says my password is wrong. "
            "The LMS works fine. Thanks")


def test_another_systems_access_problem_is_escalated_and_never_touches_the_lms(
        bridge_factory, mailbox, odoo, sink, hr, lms, logs):
    bridge = start_bridge(bridge_factory, hr, lms)
    raw, mid = login_email("Alice Martin <alice@customer.example>", subject=VPN_SUBJECT, body=VPN_BODY)
    uid = mailbox.append(raw)
    ticket, reply, bodies = finish(bridge.settled, mailbox, odoo, sink, uid, mid)

    assert lms.calls == [] and hr.calls == [], "another system's problem is not looked up on the LMS"
    assert_escalated(odoo, ticket, reply, bodies, logs, r"access problem with vpn, not the LMS")
    assert "other system: vpn" in bodies[0], bodies[0]
    assert any("(other_access)" in r.getMessage() for r in logs.records if r.name == ESCALATION_LOGGER)


def test_another_systems_access_problem_can_be_left_to_the_acknowledgement(
        bridge_factory, mailbox, odoo, sink, hr, lms, logs):
    bridge = start_bridge(bridge_factory, hr, lms, intent={"other_system_outcome": "skip"})
    raw, mid = login_email("Alice Martin <alice@customer.example>", subject=VPN_SUBJECT, body=VPN_BODY)
    uid = mailbox.append(raw)
    ticket, reply, bodies = finish(bridge.settled, mailbox, odoo, sink, uid, mid, note=False)

    assert bodies == [] and lms.calls == [] and hr.calls == []
    assert reply["X-Bridge-Template"] in (None, "ack"), reply["X-Bridge-Template"]


def test_an_unsure_login_request_asks_a_person_with_the_score(bridge_factory, mailbox, odoo, sink, hr, lms, logs):
    """Below the act threshold the facts are still gathered, but a person decides (Approve / Deny
    in Slack): nothing is done on the LMS and the note says why, with the classifier's score."""
    bridge = start_bridge(bridge_factory, hr, lms, intent={"act_threshold": 1.0, "ask_threshold": 0.05})
    raw, mid = login_email("Alice Martin <alice@customer.example>")
    uid = mailbox.append(raw)
    ticket, reply, bodies = finish(bridge.settled, mailbox, odoo, sink, uid, mid)

    assert lms.actions == [], "an unsure request never acts"
    assert_escalated(odoo, ticket, reply, bodies, logs, r"not sure this is a login request")
    assert re.search(r"Classifier</th><td>ask, score 0\.\d\d", bodies[0]), bodies[0]
    assert any("(login_unsure)" in r.getMessage() for r in logs.records if r.name == ESCALATION_LOGGER)


def test_follow_up_on_a_login_ticket_is_not_automated_again(bridge_factory, mailbox, odoo, sink, hr, lms, logs):
    bridge = start_bridge(bridge_factory, hr, lms)
    raw, mid = login_email("alice@customer.example")
    uid = mailbox.append(raw)
    ticket, reply, _ = finish(bridge.settled, mailbox, odoo, sink, uid, mid)
    calls_before = len(lms.calls)

    follow, follow_mid = login_email("alice@customer.example", subject=f"Re: {EN_SUBJECT} [#HD-{ticket['id']}]",
                                     body="I still can't log in, can you check again?",
                                     headers={"In-Reply-To": reply["Message-ID"],
                                              "References": f"{mid} {reply['Message-ID']}"})
    follow_uid = mailbox.append(follow)
    wait_until(lambda: done(mailbox, follow_uid), what="follow-up done")
    wait_until(bridge.settled, what="the outbox empty")
    assert len(odoo.records("helpdesk.ticket")) == 1
    assert replies(sink, follow_mid) == []
    assert len(lms.actions) == 1 and len(lms.calls) == calls_before
    assert len(login_notes(odoo, ticket["id"])) == 1


# --------------------------------------------------------------------------- sender verification


SPOOFS = [  # (spoof, reason in the note, answered): a DMARC failure at our own MX gets no reply (backscatter)
    pytest.param(dict(sender="alice@customer.example", authenticated=False),
                 r"Authentication-Results|authenticat", True, id="no-header"),
    pytest.param(dict(sender="alice@customer.example", authserv="mx.attacker.example"),
                 r"Authentication-Results|trusted", True, id="untrusted-authserv-id"),
    pytest.param(dict(sender="alice@customer.example", dmarc="fail"), r"DMARC", False, id="dmarc-fail"),
    pytest.param(dict(sender="alice@customer.example", header_from="attacker.example"),
                 r"DMARC", True, id="dmarc-pass-for-another-domain"),
    pytest.param(dict(sender="alice@customer-example.net"), r"organisation domain|domain", True, id="other-domain"),
]


@pytest.mark.parametrize("spoof,reason,answered", SPOOFS)
def test_unverified_sender_is_escalated_and_the_lms_untouched(
        bridge_factory, mailbox, odoo, sink, hr, lms, logs, spoof, reason, answered):
    bridge = start_bridge(bridge_factory, hr, lms)
    spoof = dict(spoof)
    raw, mid = login_email(spoof.pop("sender"), **spoof)
    uid = mailbox.append(raw)
    ticket, reply, bodies = finish(bridge.settled, mailbox, odoo, sink, uid, mid, reply=answered)

    assert lms.calls == [], f"the LMS was contacted: {lms.calls}"
    assert lms.actions == []
    assert_escalated(odoo, ticket, reply, bodies, logs, reason, answered=answered)


# --------------------------------------------------------------------------- HR and LMS trouble


@pytest.mark.parametrize("trouble", ["down", "http500"])
def test_hr_unavailable_escalates(bridge_factory, mailbox, odoo, sink, hr, lms, logs, trouble):
    if trouble == "down":
        hr.set_down(True)
    else:
        hr.fail_next(500, count=100)
    bridge = start_bridge(bridge_factory, hr, lms)
    raw, mid = login_email("alice@customer.example")
    uid = mailbox.append(raw)
    ticket, reply, bodies = finish(bridge.settled, mailbox, odoo, sink, uid, mid)

    assert lms.actions == [] and lms_posts(lms) == []
    assert_escalated(odoo, ticket, reply, bodies, logs, r"\bHR\b")
    assert len(hr.calls) <= 3, f"HR was retried in a loop: {len(hr.calls)} calls"


@pytest.mark.parametrize("garbage", ["<html>not json</html>", '{"unexpected": true}', "[]"],
                         ids=["not-json", "wrong-shape", "json-list"])
def test_hr_answering_garbage_escalates(bridge_factory, mailbox, odoo, sink, hr, lms, logs, garbage):
    hr.fail_next(200, count=100, body=garbage)
    bridge = start_bridge(bridge_factory, hr, lms)
    raw, mid = login_email("alice@customer.example")
    uid = mailbox.append(raw)
    ticket, reply, bodies = finish(bridge.settled, mailbox, odoo, sink, uid, mid)

    assert lms.actions == [] and lms_posts(lms) == []
    assert_escalated(odoo, ticket, reply, bodies, logs, r"\bHR\b")


def test_lms_down_escalates(bridge_factory, mailbox, odoo, sink, hr, lms, logs):
    lms.set_down(True)
    bridge = start_bridge(bridge_factory, hr, lms)
    raw, mid = login_email("alice@customer.example")
    uid = mailbox.append(raw)
    ticket, reply, bodies = finish(bridge.settled, mailbox, odoo, sink, uid, mid)

    assert lms.actions == []
    assert_escalated(odoo, ticket, reply, bodies, logs, r"\bLMS\b")
    assert len(lms.calls) <= 3, f"the LMS was retried in a loop: {len(lms.calls)} calls"


class PostFailingLms(LmsSandbox):
    """The LMS stand-in whose first `failures` action POSTs answer `status` and do nothing (lookups work)."""

    def __init__(self, failures: int, status: int = 500) -> None:
        super().__init__()
        self.failures, self.status, self.failed = failures, status, 0

    def route(self, method, parts, headers):
        if method == "POST" and self.failed < self.failures:
            self.failed += 1
            return self.status, {"error": f"injected {self.status} on the action"}
        return super().route(method, parts, headers)


def test_lms_failing_on_the_action_escalates(bridge_factory, mailbox, odoo, sink, hr, logs):
    with PostFailingLms(100) as lms:
        bridge = start_bridge(bridge_factory, hr, lms)
        raw, mid = login_email("alice@customer.example")
        uid = mailbox.append(raw)
        ticket, reply, bodies = finish(bridge.settled, mailbox, odoo, sink, uid, mid)

        assert lms.failed >= 1, "the action was never attempted"
        assert lms.actions == []
        assert_escalated(odoo, ticket, reply, bodies, logs, r"\bLMS\b")


def test_one_lms_failure_is_retried_with_the_same_key(bridge_factory, mailbox, odoo, sink, hr, logs):
    """A single 500 on the action is retried at once; the idempotency key makes that safe."""
    with PostFailingLms(1) as lms:
        bridge = start_bridge(bridge_factory, hr, lms)
        raw, mid = login_email("alice@customer.example")
        uid = mailbox.append(raw)
        ticket, reply, bodies = finish(bridge.settled, mailbox, odoo, sink, uid, mid)

        assert lms.failed == 1
        assert len(lms.actions) == 1
        assert reply["X-Bridge-Template"] == "login_reactivated"
        assert stage_name(odoo, ticket) == "Solved"


def test_lms_answer_lost_after_acting_never_acts_twice(bridge_factory, mailbox, odoo, sink, hr, lms, logs):
    lms.lose_next_answer()
    bridge = start_bridge(bridge_factory, hr, lms)
    raw, mid = login_email("alice@customer.example")
    uid = mailbox.append(raw)
    ticket, reply, bodies = finish(bridge.settled, mailbox, odoo, sink, uid, mid)

    assert len(lms.actions) == 1, lms.actions
    assert len(bodies) == 1
    assert stage_name(odoo, ticket) in ("Solved", "In Progress")
    assert reply["X-Bridge-Template"] in ("login_reactivated", "login_escalated")


# --------------------------------------------------------------------------- limits and dry run


def test_fourth_action_on_one_account_within_a_day_is_escalated(bridge_factory, mailbox, odoo, sink, hr, lms, logs):
    bridge = start_bridge(bridge_factory, hr, lms)
    tickets = []
    for n in range(4):
        raw, mid = login_email("Alice Martin <alice@customer.example>", subject=f"{EN_SUBJECT} ({n + 1})")
        uid = mailbox.append(raw)
        tickets.append(finish(bridge.settled, mailbox, odoo, sink, uid, mid))

    alice = lms_actions_for(lms, "alice@customer.example")
    assert 1 <= len(alice) <= 3, alice
    assert alice[0]["action"] == "reactivate"
    assert len({a["key"] for a in alice}) == len(alice), "each ticket acts under its own key"
    # after the reactivation the account is active, so the next two become reset links
    expected = [("reactivate", "login_reactivated"), ("send_reset", "login_reset"), ("send_reset", "login_reset")]
    for (ticket, reply, bodies), (decision, template) in zip(tickets[:3], expected):
        assert_resolved(odoo, ticket, reply, bodies, decision, template)
    ticket, reply, bodies = tickets[3]
    assert_escalated(odoo, ticket, reply, bodies, logs, r"limit")


@pytest.mark.parametrize("reply_mode", ["suppress", "test"])
def test_dry_run_writes_the_note_but_never_acts(bridge_factory, mailbox, odoo, sink, hr, lms, logs, reply_mode):
    bridge = start_bridge(bridge_factory, hr, lms, dry_run=True, dry_run_reply=reply_mode)
    raw, mid = login_email("alice@customer.example")
    uid = mailbox.append(raw)
    ticket, reply, bodies = finish(bridge.settled, mailbox, odoo, sink, uid, mid, reply=reply_mode == "test")

    assert lms.actions == [] and lms_posts(lms) == []
    assert len(bodies) == 1 and re.search(r"dry[ -]run", bodies[0], re.I), bodies
    assert "reactivate" in bodies[0], bodies[0]
    if reply_mode == "suppress":
        assert sink.messages == [], [m.message["Subject"] for m in sink.messages]
    else:
        assert str(reply["Subject"]).startswith("[TEST] "), reply["Subject"]
        assert reply["X-Bridge-Template"] == "login_reactivated"


# --------------------------------------------------------------------------- crash between LMS and Odoo


@pytest.mark.parametrize("method", ["message_post", "write"])
def test_kill_between_lms_action_and_ticket_update_acts_once(mailbox, odoo, sink, hr, lms, tmp_path, method):
    """SIGKILL the bridge right after the first helpdesk.ticket `method` that follows the LMS action.

    The LMS stand-in has no kill hook, so a watcher arms the Odoo stand-in's kill_after as soon as
    the LMS records the action; the Odoo latency keeps the next call in flight long enough.
    """
    odoo.latency = 0.25
    settings = bridge_settings(mailbox, odoo, sink, tmp_path / "state", automation=automation_settings(hr, lms))
    process = Process(write_config(tmp_path / "config.yaml", settings), tmp_path / "bridge.log")
    try:
        raw, mid = login_email("Alice Martin <alice@customer.example>")
        uid = mailbox.append(raw)
        pid = process.start()
        armed = threading.Event()

        def arm():
            deadline = time.monotonic() + 30
            while not lms.actions and time.monotonic() < deadline:
                time.sleep(0.002)
            if lms.actions:
                odoo.kill_after("helpdesk.ticket", method, pid=pid, sig=signal.SIGKILL)
                armed.set()

        watcher = threading.Thread(target=arm, daemon=True)
        watcher.start()
        watcher.join(35)
        assert armed.is_set(), "the LMS never acted:\n" + process.log_path.read_text()[-3000:]
        process.wait_killed(timeout=20)
        odoo.latency = 0.0
        process.start()
        ticket, reply, bodies = finish(stopped(process), mailbox, odoo, sink, uid, mid, timeout=30)
    finally:
        process.stop()
    log = process.log_path.read_text()
    assert len(lms_actions_for(lms, "alice@customer.example")) == 1, (lms.actions, log[-3000:])
    assert len(lms.actions) == 1
    posted = [(m["id"], m.get("message_type"), (m.get("body") or "")[:90]) for m in odoo.records("mail.message")
              if m.get("res_id") == ticket["id"]]
    assert len(bodies) == 1, f"{len(bodies)} login notes; messages on the ticket: {posted}\nlog:\n{log[-3000:]}"
    twice = [b[:120] for b, n in collections.Counter(n.get("body") or "" for n in notes(odoo, ticket["id"])).items()
             if n > 1]
    assert not twice, f"notes posted twice after the restart: {twice}; messages on the ticket: {posted}"
    assert "reactivate" in bodies[0]
    assert stage_name(odoo, ticket) == "Solved"
    assert "auto-resolved" in tag_names(odoo, ticket)
    assert reply["X-Bridge-Template"] == "login_reactivated"
    assert len(odoo.records("helpdesk.ticket")) == 1


def test_odoo_outage_while_recording_retries_without_doubling(bridge_factory, mailbox, odoo, sink, hr, lms, logs):
    """The stage write fails once (Odoo busy): the job is retried, the login stage runs again from
    its journaled decision, and the ticket still gets one note, one escalation notice, one reply."""
    odoo.fail_next("helpdesk.ticket", "write", error="transient", count=1)
    bridge = start_bridge(bridge_factory, hr, lms)
    raw, mid = login_email("bob@customer.example")
    uid = mailbox.append(raw)
    ticket, reply, bodies = finish(bridge.settled, mailbox, odoo, sink, uid, mid)

    assert_escalated(odoo, ticket, reply, bodies, logs, r"not active in HR")
    escalations = [r for r in logs.records if r.name == ESCALATION_LOGGER
                   and re.search(rf"ticket {ticket['id']}\b", r.getMessage())]
    assert len(escalations) == 1, [r.getMessage() for r in escalations]
    assert len(replies(sink, mid)) == 1
    assert odoo.call_count("helpdesk.ticket", "write") >= 3, "the failed stage write was not retried"
    assert len(hr.calls) == 1, "the retry must reuse the journaled decision, not ask HR again"

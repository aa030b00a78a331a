"""End to end with Slack: the card and its thread, escaping, delivery through Slack's failures,
and actions from Slack (Take, Resolve, Approve/Deny, reply from the thread) over the signed HTTP
endpoint and over Socket Mode.

Everything goes through the real adapters: slack-sdk's WebClient and SocketModeClient against
the Slack stand-in (bridge/sandbox/slack.py), Dovecot, the Odoo, HR and LMS stand-ins, the SMTP sink.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from bridge.checks import run_checks
from bridge.errors import ConfigurationError
from bridge.sandbox.slack import SlackSandbox
from bridge.sandbox.slack_signing import (
    block_action,
    interactivity_body,
    post_signed,
    sign,
)
from tests.integration.harness import email_bytes, free_port, make_config, wait_until
from tests.integration.test_flow import done
from tests.integration.test_login import (
    automation_settings,
    login_email,
    replies,
    ticket_of,
)

pytestmark = pytest.mark.integration

CHANNEL = "C0SUPPORT"
APPROVER = "U0APPROVER"  # the Slack stand-in's people: see the slack fixture in conftest.py
STRANGER = "U0STRANGER"
OPS_GROUP = "S0OPS"
HOSTILE = "<!channel> urgent <@U123> <https://evil|click>"
WEBHOOK_TOKEN = "webhook-token-0123456789"


def slack_settings(slack: SlackSandbox, **extra: Any) -> dict[str, Any]:
    settings = {
        "enabled": True, "base_url": slack.url, "bot_token": slack.bot_token, "channel": CHANNEL,
        "mentions": {"login_escalated": f"subteam:{OPS_GROUP}", "reply_failed": "here"},
        "approvers": [APPROVER], "timeout_seconds": 2, "max_retries": 2, "pace_seconds": 0,
    }
    settings.update(extra)
    return settings


def start(bridge_factory, slack, hr=None, lms=None, *, actions: str = "off", **extra):
    overrides: dict[str, Any] = {"slack": slack_settings(slack, actions=actions, **extra)}
    if actions == "http":
        overrides["slack"]["signing_secret"] = slack.signing_secret
        overrides["http"] = {"port": 0, "webhook_token": WEBHOOK_TOKEN}
    if actions == "socket":
        overrides["slack"]["app_token"] = slack.app_token
    if hr is not None:
        overrides["automation"] = automation_settings(hr, lms)
    return bridge_factory(**overrides)


def start_http(bridge_factory, slack, hr=None, lms=None, *, automation: dict | None = None, **extra):
    """A bridge whose Slack actions come over its HTTP endpoint; returns (bridge, base url).
    ``automation`` replaces top-level keys of the automation settings."""
    port = free_port()
    overrides: dict[str, Any] = {
        "slack": slack_settings(slack, actions="http", signing_secret=slack.signing_secret, **extra),
        "http": {"port": port, "webhook_token": WEBHOOK_TOKEN},
    }
    if hr is not None:
        overrides["automation"] = automation_settings(hr, lms, **(automation or {}))
    return bridge_factory(**overrides), f"http://127.0.0.1:{port}"


def strings(value: Any, *, mrkdwn_only: bool = False) -> list[str]:
    """Every string in a message's text/blocks; ``mrkdwn_only`` leaves out plain_text objects
    (header, button labels), which Slack shows literally and never parses for mentions or links."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        if mrkdwn_only and value.get("type") == "plain_text":
            return []
        return [s for v in value.values() for s in strings(v, mrkdwn_only=mrkdwn_only)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v, mrkdwn_only=mrkdwn_only)]
    return []


def cards(slack: SlackSandbox) -> list[dict]:
    return [m for m in slack.top_level(CHANNEL) if m.get("subtype") != "thread_broadcast"]


def thread_replies(slack: SlackSandbox, ts: str) -> list[dict]:
    return slack.thread(CHANNEL, ts)[1:]


def mailed(mailbox, odoo, sink, raw: bytes, mid: str, *, reply: bool = True) -> dict:
    uid = mailbox.append(raw)
    wait_until(lambda: done(mailbox, uid), what="email processed")
    ticket = wait_until(lambda: ticket_of(odoo, mid), what="ticket")
    if reply:
        wait_until(lambda: replies(sink, mid), what="reply sent")
    return ticket


def click(base: str, slack: SlackSandbox, *, user: str, action_id: str, ticket: int, message_ts: str,
          timestamp: int | None = None, secret: str | None = None) -> tuple[int, bytes]:
    payload = block_action(user_id=user, action_id=action_id, value=str(ticket), channel=CHANNEL,
                           message_ts=message_ts)
    body = interactivity_body(payload)
    return post_signed(f"{base}/slack/actions", body, sign(secret or slack.signing_secret, body, timestamp))


def test_new_ticket_gets_one_card_and_follow_ups_go_to_its_thread(bridge_factory, mailbox, odoo, sink, slack):
    start(bridge_factory, slack)
    raw, mid = email_bytes(sender="Alice Nguyen <alice@customer.example>", subject="Printer broken",
                           body="It prints blank pages.")
    ticket = mailed(mailbox, odoo, sink, raw, mid)
    [card] = wait_until(lambda: cards(slack), what="card posted")
    assert card["blocks"][0]["text"]["text"] == "Printer broken"
    shown = " ".join(strings(card["blocks"]))
    assert "alice@customer.example" in shown and f"HD-{ticket['id']}" in shown
    assert "model=helpdesk.ticket" in shown and "Take" in shown

    reply = replies(sink, mid)[0]
    follow, _ = email_bytes(sender="Alice Nguyen <alice@customer.example>", subject="Re: Printer broken",
                            body="Still blank, and now it beeps.\n\n> It prints blank pages.",
                            headers={"In-Reply-To": reply["Message-ID"], "References": f"{mid} {reply['Message-ID']}"})
    uid = mailbox.append(follow)
    wait_until(lambda: done(mailbox, uid), what="follow-up processed")
    [posted] = wait_until(lambda: thread_replies(slack, card["ts"]), what="thread reply")
    assert "Still blank, and now it beeps." in posted["text"] + " ".join(strings(posted.get("blocks", [])))
    assert "It prints blank pages" not in " ".join(strings(posted.get("blocks", [])))
    assert len(cards(slack)) == 1  # never a second card
    assert posted["metadata"]["event_type"] == "bridge_effect"


def test_hostile_text_arrives_inert_in_every_field(bridge_factory, mailbox, odoo, sink, slack):
    start(bridge_factory, slack)
    raw, mid = email_bytes(sender=f'"{HOSTILE}" <mallory@customer.example>', subject=HOSTILE, body=HOSTILE)
    mailed(mailbox, odoo, sink, raw, mid)
    [card] = wait_until(lambda: cards(slack), what="card posted")
    follow, _ = email_bytes(sender=f'"{HOSTILE}" <mallory@customer.example>', subject=f"Re: {HOSTILE}",
                            body=HOSTILE, headers={"In-Reply-To": mid, "References": mid})
    uid = mailbox.append(follow)
    wait_until(lambda: done(mailbox, uid), what="follow-up processed")
    wait_until(lambda: thread_replies(slack, card["ts"]), what="thread reply")
    for call in slack.calls("chat.postMessage") + slack.calls("chat.update"):
        for text in strings({k: v for k, v in call.items() if k in ("text", "blocks")}, mrkdwn_only=True):
            for span in re.findall(r"<[^>]*>", text):
                assert span.startswith("<http://127.0.0.1"), f"live markup {span!r} in {text!r}"
            assert "<!channel>" not in text and "<@U123>" not in text


def test_needs_human_policy_posts_only_escalations(bridge_factory, mailbox, odoo, sink, slack, hr, lms):
    start(bridge_factory, slack, hr, lms, post="needs_human")
    raw, mid = email_bytes(subject="Printer broken")
    mailed(mailbox, odoo, sink, raw, mid)
    spoofed, spoofed_mid = login_email("Bob <bob@customer.example>", authenticated=False)
    ticket = mailed(mailbox, odoo, sink, spoofed, spoofed_mid)
    [card] = wait_until(lambda: cards(slack), what="card for the escalated ticket")
    assert f"HD-{ticket['id']}" in " ".join(strings(card["blocks"]))
    [escalation] = wait_until(lambda: thread_replies(slack, card["ts"]), what="escalation in the thread")
    assert escalation["text"].startswith(f"<!subteam^{OPS_GROUP}>")
    assert "<!channel>" not in escalation["text"] and "<!here>" not in escalation["text"]
    assert len(cards(slack)) == 1


def test_rate_limit_storm_delivers_everything_once_in_order(bridge_factory, mailbox, odoo, sink, slack):
    slack.rate_limit_per_channel(0.3)
    slack.ratelimit_next(3, retry_after=1, method="chat.postMessage")
    start(bridge_factory, slack)
    raw, mid = email_bytes(subject="Storm")
    mailed(mailbox, odoo, sink, raw, mid)
    [card] = wait_until(lambda: cards(slack), timeout=20, what="card posted")
    reply = replies(sink, mid)[0]
    uids = []
    for n in range(5):
        follow, _ = email_bytes(subject="Re: Storm", body=f"update number {n}",
                                headers={"In-Reply-To": reply["Message-ID"], "References": reply["Message-ID"]})
        uids.append(mailbox.append(follow))
        wait_until(lambda: done(mailbox, uids[-1]), what="follow-up processed")
    posted = wait_until(lambda: (r := thread_replies(slack, card["ts"])) and len(r) >= 5 and r, timeout=30,
                        what="all thread replies")
    texts = [" ".join(strings(r.get("blocks", []))) for r in posted]
    assert [next(int(d) for d in re.findall(r"update number (\d)", t)) for t in texts] == [0, 1, 2, 3, 4]
    assert len(posted) == 5 and len(cards(slack)) == 1
    assert any(c.outcome == "ratelimited" for c in slack.requests)


def test_slack_down_then_back_loses_nothing(bridge_factory, mailbox, odoo, sink, slack):
    bridge = start(bridge_factory, slack)
    slack.down()
    raw, mid = email_bytes(subject="While Slack was down")
    mailed(mailbox, odoo, sink, raw, mid)
    wait_until(lambda: not bridge.app.readiness()["services"]["slack"]["up"], what="slack seen down")
    slack.up()
    [card] = wait_until(lambda: cards(slack), timeout=20, what="card posted after the outage")
    assert card["blocks"][0]["text"]["text"] == "While Slack was down"
    wait_until(lambda: bridge.app.readiness()["services"]["slack"]["up"], what="slack seen up")


def test_slow_answer_after_accept_is_not_posted_twice(bridge_factory, mailbox, odoo, sink, slack):
    slack.slow_next(1, seconds=3.5, method="chat.postMessage")
    start(bridge_factory, slack)
    raw, mid = email_bytes(subject="Slow Slack")
    mailed(mailbox, odoo, sink, raw, mid)
    wait_until(lambda: cards(slack), what="card posted")
    wait_until(lambda: len(slack.calls("conversations.history")) >= 1, timeout=20, what="the retry looked first")
    assert len(cards(slack)) == 1
    assert len(slack.calls("chat.postMessage")) == 1


def test_routes_pick_the_channel_by_category(bridge_factory, mailbox, odoo, sink, slack, hr, lms):
    start(bridge_factory, slack, hr, lms, routes=[{"category": "login", "channel": "C0OPS"}])
    raw, mid = email_bytes(subject="Printer broken")
    mailed(mailbox, odoo, sink, raw, mid)
    login, login_mid = login_email("Alice Martin <alice@customer.example>", authenticated=False)
    mailed(mailbox, odoo, sink, login, login_mid)
    wait_until(lambda: slack.top_level("C0OPS") and cards(slack), what="one card in each channel")
    assert "Printer broken" in " ".join(strings(cards(slack)[0]["blocks"]))
    [login_card] = slack.top_level("C0OPS")
    assert "log in" in " ".join(strings(login_card["blocks"]))


def test_with_categories_routes_pick_the_channel_by_the_tickets_category(bridge_factory, mailbox, odoo, sink, slack):
    bridge_factory(slack=slack_settings(slack, routes=[{"category": "billing", "channel": "C0OPS"}]),
                   categories={"enabled": True})
    invoice, invoice_mid = email_bytes(subject="Invoice 2026-114 was charged twice",
                                       body="We were billed twice for the same invoice; please refund one.")
    mailed(mailbox, odoo, sink, invoice, invoice_mid)
    printer, printer_mid = email_bytes(subject="Printer broken", sender="Bob <bob@customer.example>")
    mailed(mailbox, odoo, sink, printer, printer_mid)
    wait_until(lambda: slack.top_level("C0OPS") and cards(slack), what="one card in each channel")
    [billing_card] = slack.top_level("C0OPS")
    assert "charged twice" in " ".join(strings(billing_card["blocks"]))
    assert "*Category*\nBilling" in strings(billing_card["blocks"])  # the card says which
    assert "Printer broken" in " ".join(strings(cards(slack)[0]["blocks"]))


def test_a_route_naming_an_unknown_category_is_refused(mailbox, odoo, sink, slack, tmp_path):
    with pytest.raises(ConfigurationError, match="slack.routes: unknown categories billing"):
        make_config(mailbox, odoo, sink, tmp_path / "state",
                    slack=slack_settings(slack, routes=[{"category": "billing", "channel": "C0OPS"}]))


def test_bridge_check_reports_slack(mailbox, odoo, sink, slack, tmp_path):
    cfg = make_config(mailbox, odoo, sink, tmp_path / "state", slack=slack_settings(slack))
    [(_, passed, line)] = [r for r in asyncio.run(run_checks(cfg)) if r[0] == "slack"]
    assert passed and CHANNEL in line
    slack.leave_channel(CHANNEL)
    [(_, passed, line)] = [r for r in asyncio.run(run_checks(cfg)) if r[0] == "slack"]
    assert not passed and "not a member" in line
    bad = make_config(mailbox, odoo, sink, tmp_path / "state", slack=slack_settings(slack, bot_token="xoxb-wrong"))
    [(_, passed, line)] = [r for r in asyncio.run(run_checks(bad)) if r[0] == "slack"]
    assert not passed and "refused" in line and "xoxb-wrong" not in line


def test_a_reply_that_is_dead_lettered_asks_for_a_person_in_the_thread(bridge_factory, mailbox, odoo, sink, slack):
    sink.set_down(True)
    try:
        bridge_factory(slack=slack_settings(slack, post="needs_human"), pipeline={
            "retry_base_seconds": 0.05, "retry_max_seconds": 0.2, "outbox_max_attempts": 2})
        raw, mid = email_bytes(subject="Printer broken")
        uid = mailbox.append(raw)
        wait_until(lambda: done(mailbox, uid), what="email processed")
        [card] = wait_until(lambda: cards(slack), timeout=20, what="card once the reply is dead-lettered")
        [message] = wait_until(lambda: thread_replies(slack, card["ts"]), what="the failure in the thread")
        assert message["text"].startswith("<!here>")
        assert "customer.example" in message["text"]
    finally:
        sink.set_down(False)

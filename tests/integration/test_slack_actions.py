"""Actions from Slack end to end: Approve/Deny on an escalated login request, Take, Resolve and a
reply from the thread, over the signed HTTP endpoint and over Socket Mode; refused when the
signature is bad or stale or the person may not act."""

from __future__ import annotations

import os
import signal
import time

import pytest

from bridge.sandbox.slack_signing import (
    block_action,
    event_body,
    post_signed,
    sign,
)
from tests.integration.harness import bridge_settings, email_bytes, wait_until, write_config
from tests.integration.test_crash import Process
from tests.integration.test_flow import notes
from tests.integration.test_login import automation_settings, login_email, stage_name
from tests.integration.test_slack_flow import (
    APPROVER,
    CHANNEL,
    STRANGER,
    cards,
    click,
    free_port,
    mailed,
    slack_settings,
    start,
    start_http,
    strings,
    thread_replies,
)

pytestmark = pytest.mark.integration


def escalated(bridge_factory, mailbox, odoo, sink, slack, hr, lms, *, sender="Alice Martin <alice@customer.example>",
              socket: bool = False):
    """A login request from an unverified sender: escalated, with Approve/Deny in its thread."""
    if socket:
        bridge, base = start(bridge_factory, slack, hr, lms, actions="socket"), ""
        assert slack.wait_for_socket_client(10), "the bridge opened no Socket Mode connection"
    else:
        bridge, base = start_http(bridge_factory, slack, hr, lms)
    raw, mid = login_email(sender, authenticated=False)
    ticket = mailed(mailbox, odoo, sink, raw, mid)
    [card] = wait_until(lambda: cards(slack), what="card posted")
    [message] = wait_until(lambda: thread_replies(slack, card["ts"]), what="escalation posted")
    wait_until(lambda: (bridge.app.ctx.tickets.get(ticket["id"]).slack.get("escalation") or {}).get("ts"),
               what="escalation ts recorded")
    return bridge, base, ticket, card, message, mid


def decision_mails(sink, template: str) -> list:
    return [m.message for m in sink.messages if m.message["X-Bridge-Template"] == template]


def note_texts(odoo, ticket_id: int) -> list[str]:
    return [n["body"] for n in notes(odoo, ticket_id)]


def test_approve_reactivates_once_mails_the_customer_and_names_the_approver(
        bridge_factory, mailbox, odoo, sink, slack, hr, lms):
    _, base, ticket, card, message, _ = escalated(bridge_factory, mailbox, odoo, sink, slack, hr, lms)
    buttons = [e["action_id"] for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert buttons == ["login.approve", "login.deny"]
    assert lms.actions == []

    status, _ = click(base, slack, user=APPROVER, action_id="login.approve", ticket=ticket["id"],
                      message_ts=message["ts"])
    assert status == 200
    [mail] = wait_until(lambda: decision_mails(sink, "login_reactivated"), what="reactivation mail")
    assert mail["To"].addresses[0].addr_spec == "alice@customer.example"
    assert f"[#HD-{ticket['id']}]" in str(mail["Subject"])
    [action] = lms.actions
    assert action["action"] == "reactivate"
    wait_until(lambda: any("approved in Slack" in t and "Agent Smith" in t for t in note_texts(odoo, ticket["id"])),
               what="note naming the approver")
    updated = wait_until(lambda: (m := slack.find(CHANNEL, message["ts"])) and m.get("edited") and m,
                         what="buttons replaced")
    assert not any(b["type"] == "actions" for b in updated["blocks"])
    assert f"<@{APPROVER}>" in " ".join(strings(updated["blocks"]))
    assert stage_name(odoo, ticket_row(odoo, ticket["id"])) == "Solved"

    # A second click (another approver, or the same one again) changes nothing.
    status, _ = click(base, slack, user=APPROVER, action_id="login.deny", ticket=ticket["id"],
                      message_ts=message["ts"])
    assert status == 200
    wait_until(lambda: any("Already approved" in e["text"] for e in slack.ephemerals), what="already decided")
    assert decision_mails(sink, "login_denied") == [] and len(lms.actions) == 1


def test_an_unsure_login_request_is_decided_in_one_click(bridge_factory, mailbox, odoo, sink, slack, hr, lms):
    """A verified sender, but the classifier is not sure: the escalation offers Approve, and one
    click runs the LMS action the facts point to."""
    _, base = start_http(bridge_factory, slack, hr, lms, automation={"intent": {"act_threshold": 1.0}})
    raw, mid = login_email("Alice Martin <alice@customer.example>")
    ticket = mailed(mailbox, odoo, sink, raw, mid)
    [card] = wait_until(lambda: cards(slack), what="card posted")
    [message] = wait_until(lambda: thread_replies(slack, card["ts"]), what="escalation posted")
    assert "not sure this is a login request" in " ".join(strings(message["blocks"]))
    buttons = [e["action_id"] for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert buttons == ["login.approve", "login.deny"] and lms.actions == []

    status, _ = click(base, slack, user=APPROVER, action_id="login.approve", ticket=ticket["id"],
                      message_ts=message["ts"])
    assert status == 200
    wait_until(lambda: decision_mails(sink, "login_reactivated"), what="reactivation mail")
    assert [a["action"] for a in lms.actions] == ["reactivate"]


def test_another_systems_access_problem_offers_no_approve(bridge_factory, mailbox, odoo, sink, slack, hr, lms):
    start_http(bridge_factory, slack, hr, lms)
    raw, mid = login_email("Alice Martin <alice@customer.example>", subject="VPN",
                           body="I can't connect to the VPN, it says my password is wrong. The LMS is fine.")
    mailed(mailbox, odoo, sink, raw, mid)
    [card] = wait_until(lambda: cards(slack), what="card posted")
    [message] = wait_until(lambda: thread_replies(slack, card["ts"]), what="escalation posted")
    assert "not the LMS" in " ".join(strings(message["blocks"]))
    assert not any(b["type"] == "actions" for b in message["blocks"]), "nothing to approve on the LMS"
    assert lms.calls == []


def test_deny_sends_the_denial_and_touches_nothing(bridge_factory, mailbox, odoo, sink, slack, hr, lms):
    _, base, ticket, _, message, _ = escalated(bridge_factory, mailbox, odoo, sink, slack, hr, lms)
    status, _ = click(base, slack, user=APPROVER, action_id="login.deny", ticket=ticket["id"], message_ts=message["ts"])
    assert status == 200
    [mail] = wait_until(lambda: decision_mails(sink, "login_denied"), what="denial mail")
    assert mail["To"].addresses[0].addr_spec == "alice@customer.example"
    wait_until(lambda: any("denied in Slack" in t for t in note_texts(odoo, ticket["id"])), what="note")
    wait_until(lambda: slack.find(CHANNEL, message["ts"]).get("edited"), what="buttons replaced")
    assert lms.actions == []


@pytest.mark.parametrize("trouble", ["stranger", "bad signature", "stale timestamp"])
def test_refused_clicks_change_nothing(bridge_factory, mailbox, odoo, sink, slack, hr, lms, trouble):
    _, base, ticket, _, message, _ = escalated(bridge_factory, mailbox, odoo, sink, slack, hr, lms)
    mails_before = len(sink.messages)
    kwargs = {"user": APPROVER, "action_id": "login.approve", "ticket": ticket["id"], "message_ts": message["ts"]}
    if trouble == "stranger":
        kwargs["user"] = STRANGER
    elif trouble == "bad signature":
        kwargs["secret"] = "not-the-signing-secret"
    else:
        kwargs["timestamp"] = int(time.time()) - 301
    status, _ = click(base, slack, **kwargs)
    if trouble == "stranger":
        assert status == 200
        [refusal] = wait_until(lambda: slack.ephemerals, what="ephemeral refusal")
        assert refusal["user"] == STRANGER and "approvers" in refusal["text"]
    else:
        assert status == 401
        # A click that is accepted is performed at once; a valid one sent now proves the refused one left no job.
        click(base, slack, user=STRANGER, action_id="login.approve", ticket=ticket["id"], message_ts=message["ts"])
        wait_until(lambda: slack.ephemerals, what="the later valid click answered")
    assert lms.actions == [] and len(sink.messages) == mails_before
    assert not slack.find(CHANNEL, message["ts"]).get("edited")


def test_reply_from_the_thread_reaches_the_customer(bridge_factory, mailbox, odoo, sink, slack, hr, lms):
    odoo.add_user("agent@example.com", "Agent Smith")
    _, base, ticket, card, message, mid = escalated(bridge_factory, mailbox, odoo, sink, slack, hr, lms)
    event = slack.user_posts(CHANNEL, APPROVER, "reply: Your account works again, please try now.",
                             thread_ts=card["ts"])
    body = event_body(event, team_id=slack.team_id)
    status, _ = post_signed(f"{base}/slack/events", body, sign(slack.signing_secret, body))
    assert status == 200
    [mail] = wait_until(lambda: decision_mails(sink, "agent_reply"), what="agent reply mailed")
    assert "Your account works again, please try now." in mail.get_body(("plain",)).get_content()
    assert f"[#HD-{ticket['id']}]" in str(mail["Subject"]) and mail["Auto-Submitted"] is None
    assert mail["In-Reply-To"]
    wait_until(lambda: any("Emailed to the customer" in t for t in note_texts(odoo, ticket["id"])), what="note")
    wait_until(lambda: (slack.find(CHANNEL, event["ts"]).get("reactions") or [{}])[0].get("name")
               == "white_check_mark", what="✓ reaction")

    # The same event delivered again (Slack retries) sends nothing more.
    post_signed(f"{base}/slack/events", body, sign(slack.signing_secret, body))
    other = slack.user_posts(CHANNEL, STRANGER, "reply: I am not allowed", thread_ts=card["ts"])
    body = event_body(other, team_id=slack.team_id)
    post_signed(f"{base}/slack/events", body, sign(slack.signing_secret, body))
    wait_until(lambda: slack.ephemerals, what="refusal for the stranger")
    assert len(decision_mails(sink, "agent_reply")) == 1


def test_take_over_socket_mode_assigns_the_ticket_and_updates_the_card(
        bridge_factory, mailbox, odoo, sink, slack, hr, lms):
    agent = odoo.add_user("agent@example.com", "Agent Smith")
    _, _, ticket, card, _, _ = escalated(bridge_factory, mailbox, odoo, sink, slack, hr, lms, socket=True)
    payload = block_action(user_id=APPROVER, action_id="ticket.take", value=str(ticket["id"]), channel=CHANNEL,
                           message_ts=card["ts"])
    envelope = slack.send_socket_event("interactive", payload)
    assert slack.wait_for_ack(envelope, 10)
    wait_until(lambda: _m2o(ticket_row(odoo, ticket["id"])["user_id"]) == agent, what="ticket assigned")
    updated = wait_until(lambda: (m := slack.find(CHANNEL, card["ts"])) and "Agent Smith" in
                         " ".join(strings(m["blocks"])) and m, what="card shows the assignee")
    assert "ticket.take" not in " ".join(strings(updated["blocks"]))
    wait_until(lambda: any("Agent Smith" in " ".join(strings(r.get("blocks", [])))
                           for r in thread_replies(slack, card["ts"])), what="assignment in the thread")

    unknown = block_action(user_id=STRANGER, action_id="ticket.take", value=str(ticket["id"]), channel=CHANNEL,
                           message_ts=card["ts"])
    assert slack.wait_for_ack(slack.send_socket_event("interactive", unknown), 10)
    [explained] = wait_until(lambda: slack.ephemerals, what="explanation for a person without an Odoo user")
    assert explained["user"] == STRANGER and "Odoo user" in explained["text"]


def _m2o(value):
    return value[0] if isinstance(value, (list, tuple)) else value


def ticket_row(odoo, ticket_id: int) -> dict:
    return [t for t in odoo.records("helpdesk.ticket") if t["id"] == ticket_id][0]


def test_a_crash_right_after_acknowledging_a_click_loses_nothing(mailbox, odoo, sink, slack, hr, lms, tmp_path):
    """The click is on disk before Slack gets its 200: a bridge SIGKILLed before performing it
    performs it once after the restart."""
    port = free_port()
    settings = bridge_settings(mailbox, odoo, sink, tmp_path / "state", automation=automation_settings(hr, lms),
                               http={"port": port, "webhook_token": "webhook-token-0123456789"},
                               slack=slack_settings(slack, actions="http", signing_secret=slack.signing_secret))
    process = Process(write_config(tmp_path / "config.yaml", settings), tmp_path / "bridge.log")
    process.start()
    try:
        raw, mid = login_email("Alice Martin <alice@customer.example>", authenticated=False)
        ticket = mailed(mailbox, odoo, sink, raw, mid)
        [card] = wait_until(lambda: cards(slack), what="card posted")
        [message] = wait_until(lambda: [r for r in thread_replies(slack, card["ts"]) if r.get("blocks")],
                               what="escalation posted")
        slack.slow_next(1, seconds=30, method="users.info")  # performing the click stalls at its first call
        status, _ = click(f"http://127.0.0.1:{port}", slack, user=APPROVER, action_id="login.approve",
                          ticket=ticket["id"], message_ts=message["ts"])
        assert status == 200
        wait_until(lambda: any(c.method == "users.info" for c in slack.requests), what="the click being performed")
        os.kill(process.proc.pid, signal.SIGKILL)
        process.wait_killed()
        assert lms.actions == []
        process.start()
        [mail] = wait_until(lambda: decision_mails(sink, "login_reactivated"), timeout=30, what="reactivation mail")
        assert len(lms.actions) == 1 and mail["To"].addresses[0].addr_spec == "alice@customer.example"
    finally:
        process.stop()


def test_resolve_moves_the_ticket_and_the_card_follows(bridge_factory, mailbox, odoo, sink, slack, hr, lms):
    odoo.add_user("agent@example.com", "Agent Smith")
    _, base, ticket, card, _, _ = escalated(bridge_factory, mailbox, odoo, sink, slack, hr, lms)
    status, _ = click(base, slack, user=APPROVER, action_id="ticket.resolve", ticket=ticket["id"],
                      message_ts=card["ts"])
    assert status == 200
    wait_until(lambda: stage_name(odoo, ticket_row(odoo, ticket["id"])) == "Solved", what="ticket solved")
    updated = wait_until(lambda: (m := slack.find(CHANNEL, card["ts"])) and "Solved" in
                         " ".join(strings(m["blocks"])) and m, what="card shows the stage")
    actions = [e.get("action_id") for b in updated["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert "ticket.take" not in actions and "ticket.resolve" not in actions
    assert all("blocks" in call for call in slack.calls("chat.update")), "a text-only update keeps the old card"
    wait_until(lambda: any("Resolved from Slack" in t and "Agent Smith" in t for t in note_texts(odoo, ticket["id"])),
               what="note naming who resolved")
    assert len(cards(slack)) == 1


def test_other_thread_messages_become_notes_when_configured(bridge_factory, mailbox, odoo, sink, slack):
    _, base = start_http(bridge_factory, slack, copy_thread_messages=True)
    raw, mid = email_bytes(subject="Printer broken")
    ticket = mailed(mailbox, odoo, sink, raw, mid)
    [card] = wait_until(lambda: cards(slack), what="card posted")
    for user, text in ((STRANGER, "Checked the toner <b>bold</b>, it is fine"), (APPROVER, "on it")):
        event = slack.user_posts(CHANNEL, user, text, thread_ts=card["ts"])
        body = event_body(event, team_id=slack.team_id)
        assert post_signed(f"{base}/slack/events", body, sign(slack.signing_secret, body))[0] == 200
    texts = wait_until(lambda: (t := [x for x in note_texts(odoo, ticket["id"]) if "From Slack" in x])
                       and len(t) == 2 and t, what="two notes")
    assert any("Checked the toner &lt;b&gt;bold&lt;/b&gt;" in t and "Some Stranger" in t for t in texts)
    assert len(sink.messages) == 1  # only the acknowledgement: a note is never mailed


def test_approve_that_the_lms_refuses_tells_the_approver_and_leaves_the_request_open(
        bridge_factory, mailbox, odoo, sink, slack, hr, lms):
    _, base, ticket, _, message, _ = escalated(bridge_factory, mailbox, odoo, sink, slack, hr, lms)
    lms.fail_next(status=409, count=1)  # the account look-up is refused: nothing can be done
    click(base, slack, user=APPROVER, action_id="login.approve", ticket=ticket["id"], message_ts=message["ts"])
    [told] = wait_until(lambda: slack.ephemerals, what="the approver is told")
    assert told["user"] == APPROVER and "Not approved" in told["text"]
    assert decision_mails(sink, "login_reactivated") == [] and lms.actions == []
    click(base, slack, user=APPROVER, action_id="login.approve", ticket=ticket["id"], message_ts=message["ts"])
    wait_until(lambda: decision_mails(sink, "login_reactivated"), what="a later approval goes through")

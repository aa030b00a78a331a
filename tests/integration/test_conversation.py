"""Odoo → customer, end to end: agents act in the Odoo stand-in over its real API (their own
login), and the customer's mailbox (the SMTP sink) and the Slack thread show the result."""

from __future__ import annotations

import base64
import json
import urllib.request
import xmlrpc.client
from collections.abc import Iterator
from typing import Any

import pytest

from bridge.sandbox.odoo import OdooSandbox
from tests.integration.harness import BridgeThread, email_bytes, make_config, wait_until
from tests.integration.test_flow import done

pytestmark = pytest.mark.integration

AGENT = "agent.smith@example.com"
WEBHOOK_TOKEN = "webhook-token-0123456789"
WATCH = {"enabled": True, "poll_seconds": 0.2, "lookback_seconds": 5}


class Agent:
    """An internal Odoo user working on tickets through the external API, as the web client would."""

    def __init__(self, odoo: OdooSandbox, model: str = "helpdesk.ticket", login: str = AGENT,
                 name: str = "Agent Smith") -> None:
        self.uid = odoo.add_user(login, name)
        self.odoo, self.model, self.password = odoo, model, "secret"
        self.proxy = xmlrpc.client.ServerProxy(odoo.url + "/xmlrpc/2/object", allow_none=True)

    def call(self, model: str, method: str, args: list, kwargs: dict | None = None) -> Any:
        return self.proxy.execute_kw(self.odoo.db, self.uid, self.password, model, method, args, kwargs or {})

    def comment(self, ticket: int, html: str, *, files: tuple[tuple[str, bytes], ...] = (), note: bool = False) -> int:
        """Post in the chatter: a public reply ("Send message") or an internal note ("Log note")."""
        ids = [self.call("ir.attachment", "create", [{"name": name, "datas": base64.b64encode(data).decode(),
                                                       "res_model": self.model, "res_id": ticket}])
               for name, data in files]
        kwargs = {"body": html, "message_type": "comment", "attachment_ids": ids,
                  "subtype_xmlid": "mail.mt_note" if note else "mail.mt_comment"}
        if self.odoo.version >= 17:
            kwargs["body_is_html"] = True
        return self.call(self.model, "message_post", [[ticket]], kwargs)

    def stage(self, ticket: int, name: str) -> None:
        stage_model = {"helpdesk.ticket": "helpdesk.stage" if self.odoo.ticket_flavour == "enterprise"
                       else "helpdesk.ticket.stage", "project.task": "project.task.type"}[self.model]
        [stage] = self.call(stage_model, "search", [[("name", "=", name)]])
        self.call(self.model, "write", [[ticket], {"stage_id": stage}])

    def assign(self, ticket: int) -> None:
        value = [(4, self.uid, 0)] if self.model == "project.task" else self.uid
        self.call(self.model, "write", [[ticket], {"user_ids" if self.model == "project.task" else "user_id": value}])


def opened(bridge, mailbox, odoo, sink, model: str = "helpdesk.ticket", **email: Any) -> tuple[int, Any]:
    """The customer writes; returns the ticket and the acknowledgement they got."""
    raw, mid = email_bytes(**email)
    uid = mailbox.append(raw)
    wait_until(lambda: done(mailbox, uid), what="email processed")
    [ack] = sink.wait_for(1, predicate=lambda m: m.message.get("In-Reply-To") == mid)
    [message] = odoo.records("mail.message", [("message_id", "=", mid)])
    return message["res_id"], ack.message


def agent_mails(sink) -> list[Any]:
    return [m for m in sink.messages if m.message.get("X-Bridge-Kind") == "agent_reply"]


def test_an_agent_comment_reaches_the_customer_once_threaded_with_its_file(bridge_factory, mailbox, odoo, sink):
    bridge = bridge_factory(conversation=WATCH)
    ticket, ack = opened(bridge, mailbox, odoo, sink, sender="Carol <carol@customer.example>", subject="VPN drops")
    agent = Agent(odoo)
    comment = agent.comment(ticket, "<p>Please install the new client.</p><p>Regards</p>",
                            files=(("setup guide.pdf", b"%PDF-1.4 guide"),))

    [sent] = wait_until(lambda: agent_mails(sink), what="the agent's answer emailed")
    mail = sent.message
    assert sent.rcpt_tos == ["carol@customer.example"] and mail["To"] == "carol@customer.example"
    assert "support@example.com" in mail["From"]
    assert mail["Subject"] == f"Re: VPN drops [#HD-{ticket}]"
    assert mail["In-Reply-To"] == ack["Message-ID"]  # the newest message of the thread
    assert ack["In-Reply-To"] in mail["References"]
    assert mail["Auto-Submitted"] is None  # a person wrote it
    text = mail.get_body(("plain",)).get_content()
    assert "Please install the new client." in text and "Agent Smith" in text
    [file] = list(mail.iter_attachments())
    assert file.get_filename() == "setup guide.pdf" and file.get_content() == b"%PDF-1.4 guide"
    # The Message-ID goes back on the comment: the customer's answer threads there in Odoo too.
    wait_until(lambda: odoo.records("mail.message", [("id", "=", comment)])[0]["message_id"] == mail["Message-ID"],
               what="Message-ID written back")

    # An internal note is never emailed; the public comment after it is (the positive signal).
    agent.comment(ticket, "<p>internal: customer is on the old VPN profile</p>", note=True)
    agent.comment(ticket, "<p>Did it work?</p>")
    wait_until(lambda: len(agent_mails(sink)) == 2, what="the second public comment")
    bodies = [m.message.get_body(("plain",)).get_content() for m in agent_mails(sink)]
    assert not any("internal:" in body for body in bodies)
    assert not any("internal:" in m.raw.decode("utf-8", "replace") for m in sink.messages)

    # The customer's answer to the agent's email continues the same ticket.
    raw, mid = email_bytes(sender="Carol <carol@customer.example>", subject=f"Re: {mail['Subject']}",
                           headers={"In-Reply-To": mail["Message-ID"], "References": mail["Message-ID"]})
    uid = mailbox.append(raw)
    wait_until(lambda: done(mailbox, uid), what="answer processed")
    [answer] = odoo.records("mail.message", [("message_id", "=", mid)])
    assert answer["res_id"] == ticket
    assert len(odoo.records("helpdesk.ticket")) == 1


def test_with_cc_on_the_answer_also_reaches_the_first_emails_cc(bridge_factory, mailbox, odoo, sink):
    bridge = bridge_factory(conversation={**WATCH, "cc": True})
    ticket, _ = opened(bridge, mailbox, odoo, sink, headers={"Cc": "Bob <bob@customer.example>, support@example.com"})
    Agent(odoo).comment(ticket, "<p>For both of you</p>")
    [sent] = wait_until(lambda: agent_mails(sink), what="the answer")
    assert sent.rcpt_tos == ["alice@customer.example", "bob@customer.example"]  # never our own address
    assert sent.message["Cc"] == "bob@customer.example"


def test_customer_messages_and_the_bridges_own_posts_are_not_echoed(bridge_factory, mailbox, odoo, sink):
    bridge = bridge_factory(conversation=WATCH)
    ticket, _ = opened(bridge, mailbox, odoo, sink)
    portal = OdooSandbox.add_user(odoo, "alice@customer.example", "Alice", share=True)
    proxy = xmlrpc.client.ServerProxy(odoo.url + "/xmlrpc/2/object", allow_none=True)
    proxy.execute_kw(odoo.db, portal, "secret", "helpdesk.ticket", "message_post", [[ticket]],
                     {"body": "portal comment", "message_type": "comment", "subtype_xmlid": "mail.mt_comment"})
    Agent(odoo).comment(ticket, "<p>The answer</p>")
    wait_until(lambda: agent_mails(sink), what="the agent's answer")
    polls = bridge.app.odoo_watch.polls
    wait_until(lambda: bridge.app.odoo_watch.polls >= polls + 3, what="three more polls")
    [only] = agent_mails(sink)
    assert "The answer" in only.message.get_body(("plain",)).get_content()
    assert len(sink.messages) == 2  # the acknowledgement and the agent's answer, nothing else


def test_a_restart_while_the_answer_is_queued_sends_it_once(mailbox, odoo, sink, tmp_path):
    cfg = make_config(mailbox, odoo, sink, tmp_path / "state", conversation=WATCH)
    with BridgeThread(cfg) as bridge:
        ticket, _ = opened(bridge, mailbox, odoo, sink)
        sink.set_down(True)
        Agent(odoo).comment(ticket, "<p>Queued while mail is down</p>")
        wait_until(lambda: bridge.app.store.outbox.get(f"agent-reply:{_last_comment(odoo)}"), what="answer queued")
    sink.set_down(False)
    with BridgeThread(cfg) as bridge:
        [sent] = wait_until(lambda: agent_mails(sink), timeout=20, what="the queued answer after the restart")
        polls = bridge.app.odoo_watch.polls
        wait_until(lambda: bridge.app.odoo_watch.polls >= polls + 3, what="the window re-read")
    assert len(agent_mails(sink)) == 1
    assert "Queued while mail is down" in sent.message.get_body(("plain",)).get_content()


def _last_comment(odoo: OdooSandbox) -> int:
    return max(m["id"] for m in odoo.records("mail.message", [("message_type", "=", "comment")]))


def test_solved_in_odoo_sends_the_closing_email_once(bridge_factory, mailbox, odoo, sink):
    bridge = bridge_factory(conversation={**WATCH, "reopen_stage": "In Progress", "reopen_within_days": 7})
    ticket, _ = opened(bridge, mailbox, odoo, sink)
    agent = Agent(odoo)
    agent.stage(ticket, "Solved")
    [closing] = wait_until(lambda: [m for m in sink.messages if m.message["X-Bridge-Kind"] == "closing_notice"],
                           what="closing email")
    assert closing.message["Auto-Submitted"] == "auto-replied"
    assert f"[#HD-{ticket}]" in closing.message["Subject"]
    assert "within 7 days" in closing.message.get_body(("plain",)).get_content()
    agent.call("helpdesk.ticket", "write", [[ticket], {"priority": "2"}])  # another change while closed
    agent.comment(ticket, "<p>Closing remark</p>")
    wait_until(lambda: agent_mails(sink), what="the comment after the other change")
    assert [m.message["X-Bridge-Kind"] for m in sink.messages].count("closing_notice") == 1


def test_send_odoo_leaves_the_email_to_odoo(bridge_factory, mailbox, odoo, sink):
    bridge = bridge_factory(conversation={**WATCH, "send": "odoo"})
    ticket, _ = opened(bridge, mailbox, odoo, sink)
    agent = Agent(odoo)
    agent.comment(ticket, "<p>Odoo mails this one itself</p>")
    agent.stage(ticket, "Solved")
    record = wait_until(lambda: (r := bridge.app.ctx.tickets.get(ticket)) and r.odoo.get("closed") and r,
                        what="the closure seen")
    assert record.odoo["closures"] == 1
    assert len(sink.messages) == 1  # only the acknowledgement


def test_the_webhook_makes_the_watcher_look_at_once(bridge_factory, mailbox, odoo, sink):
    from tests.integration.harness import free_port

    port = free_port()
    bridge = bridge_factory(conversation={**WATCH, "poll_seconds": 3600},
                            http={"port": port, "webhook_token": WEBHOOK_TOKEN})
    ticket, _ = opened(bridge, mailbox, odoo, sink)
    wait_until(lambda: bridge.app.odoo_watch.polls >= 1 or bridge.app.store.meta.get("odoo_watch"),
               what="the first poll")
    Agent(odoo).comment(ticket, "<p>Right away</p>")

    def post(token: str) -> int:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/webhook/odoo", data=json.dumps({"id": 1}).encode(),
                                         headers={"X-Bridge-Token": token, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                return answer.status
        except urllib.error.HTTPError as exc:
            return exc.code

    assert post("wrong-token-0123456789") == 401
    assert post(WEBHOOK_TOKEN) == 202
    wait_until(lambda: agent_mails(sink), timeout=5, what="the answer after the webhook")


PROFILE_SETTINGS = {
    "helpdesk": ("enterprise", "helpdesk.ticket", {"team": "Customer Care"}, "Solved"),
    "helpdesk_mgmt": ("oca", "helpdesk.ticket", {"team": "Customer Care"}, "Done"),
    "project_task": ("enterprise", "project.task", {"project": "Support"}, "Done"),
}


@pytest.fixture(scope="module")
def sandboxes() -> Iterator[dict[tuple[int, str], OdooSandbox]]:
    started: dict[tuple[int, str], OdooSandbox] = {}
    yield started
    for sandbox in started.values():
        sandbox.stop()


@pytest.mark.parametrize("profile,version", [("helpdesk", 16), ("helpdesk_mgmt", 17), ("project_task", 18),
                                             ("helpdesk", 19)])
def test_each_profile_and_version_emails_comments_and_closes(profile, version, sandboxes, mailbox, sink, tmp_path):
    flavour, model, settings, solved = PROFILE_SETTINGS[profile]
    if (version, flavour) not in sandboxes:
        sandboxes[version, flavour] = OdooSandbox(version=version, ticket_flavour=flavour)
        sandboxes[version, flavour].start()
    odoo = sandboxes[version, flavour]
    odoo.reset()
    odoo_settings = {"transport": "xmlrpc" if version == 16 else "jsonrpc", "profile": profile, "team": "", **settings}
    cfg = make_config(mailbox, odoo, sink, tmp_path / "state", conversation=WATCH,
                      **{f"odoo__{key}": value for key, value in odoo_settings.items()})
    with BridgeThread(cfg) as bridge:
        ticket, _ = opened(bridge, mailbox, odoo, sink, model=model)
        agent = Agent(odoo, model)
        agent.assign(ticket)
        agent.comment(ticket, "<p>Fixed on our side</p>", files=(("log.txt", b"ok"),))
        [sent] = wait_until(lambda: agent_mails(sink), what="answer")
        assert [f.get_filename() for f in sent.message.iter_attachments()] == ["log.txt"]
        agent.stage(ticket, solved)
        wait_until(lambda: any(m.message["X-Bridge-Kind"] == "closing_notice" for m in sink.messages),
                   what="closing email")
        record = bridge.app.ctx.tickets.get(ticket)
        assert record.odoo["assignee_id"] == agent.uid and record.odoo["closed"]


def test_slack_thread_and_card_follow_what_agents_do_in_odoo(bridge_factory, mailbox, odoo, sink, slack):
    from tests.integration.test_slack_flow import CHANNEL, cards, slack_settings, strings, thread_replies

    bridge = bridge_factory(conversation=WATCH, slack=slack_settings(slack))
    ticket, _ = opened(bridge, mailbox, odoo, sink)
    [card] = wait_until(lambda: cards(slack), what="the card")
    agent = Agent(odoo)

    def thread_texts() -> list[str]:
        return [" ".join(strings(m.get("blocks"))) for m in thread_replies(slack, card["ts"])]

    agent.assign(ticket)
    wait_until(lambda: any("Assigned to *Agent Smith*" in t for t in thread_texts()), what="assignment in the thread")
    wait_until(lambda: "Agent Smith" in " ".join(strings(slack.thread(CHANNEL, card["ts"])[0]["blocks"])),
               what="assignee on the card")
    agent.comment(ticket, "<p>Try <b>restarting</b> &lt;!channel&gt;</p>")
    wait_until(lambda: any("replied to the customer" in t for t in thread_texts()), what="the answer in the thread")
    answer = next(t for t in thread_texts() if "replied to the customer" in t)
    assert "<!channel>" not in answer and "&lt;!channel&gt;" in answer
    agent.stage(ticket, "Solved")
    wait_until(lambda: any("*Resolved* by Agent Smith" in t for t in thread_texts()), what="resolution in the thread")
    wait_until(lambda: "(closed)" in slack.thread(CHANNEL, card["ts"])[0].get("text", ""), what="card shows closed")
    agent.stage(ticket, "In Progress")
    wait_until(lambda: any("*Reopened*" in t for t in thread_texts()), what="reopen in the thread")
    assert len(cards(slack)) == 1
    assert sum("Assigned to" in t for t in thread_texts()) == 1
    assert sum("*Resolved*" in t for t in thread_texts()) == 1


def reply_to(mailbox, mail, sender: str = "Alice <alice@customer.example>", **headers: str) -> str:
    """The customer answers ``mail`` (a message they received); returns the answer's Message-ID."""
    raw, mid = email_bytes(sender=sender, subject=f"Re: {mail['Subject']}", body="Still broken, sorry.",
                           headers={"In-Reply-To": mail["Message-ID"], "References": mail["Message-ID"], **headers})
    uid = mailbox.append(raw)
    wait_until(lambda: done(mailbox, uid), what="answer processed")
    return mid


def stage_of(odoo: OdooSandbox, ticket: int) -> str:
    [row] = odoo.records("helpdesk.ticket", [("id", "=", ticket)])
    [stage] = odoo.records("helpdesk.stage", [("id", "=", row["stage_id"])])
    return stage["name"]


def test_a_reply_to_a_solved_ticket_reopens_it_once(bridge_factory, mailbox, odoo, sink, slack):
    from tests.integration.test_slack_flow import cards, slack_settings, strings, thread_replies

    bridge = bridge_factory(conversation={**WATCH, "reopen_stage": "In Progress", "reopen_within_days": 7},
                            slack=slack_settings(slack))
    ticket, _ = opened(bridge, mailbox, odoo, sink)
    Agent(odoo).stage(ticket, "Solved")
    [closing] = wait_until(lambda: [m.message for m in sink.messages if m.message["X-Bridge-Kind"] == "closing_notice"],
                           what="closing email")
    reply_to(mailbox, closing)
    assert stage_of(odoo, ticket) == "In Progress"
    assert len(odoo.records("helpdesk.ticket")) == 1
    [card] = cards(slack)
    wait_until(lambda: any("*Reopened* by Alice" in " ".join(strings(m.get("blocks")))
                           for m in thread_replies(slack, card["ts"])), what="reopened in the thread")
    polls = bridge.app.odoo_watch.polls
    wait_until(lambda: bridge.app.odoo_watch.polls >= polls + 3, what="the watcher re-read the change")
    texts = [" ".join(strings(m.get("blocks"))) for m in thread_replies(slack, card["ts"])]
    assert sum("*Reopened*" in t for t in texts) == 1  # the bridge's own change is not reported again


def test_an_auto_reply_does_not_reopen(bridge_factory, mailbox, odoo, sink):
    bridge = bridge_factory(conversation={**WATCH, "reopen_stage": "In Progress"})
    ticket, _ = opened(bridge, mailbox, odoo, sink)
    Agent(odoo).stage(ticket, "Solved")
    [closing] = wait_until(lambda: [m.message for m in sink.messages if m.message["X-Bridge-Kind"] == "closing_notice"],
                           what="closing email")
    mid = reply_to(mailbox, closing, **{"Auto-Submitted": "auto-replied"})
    assert odoo.records("mail.message", [("message_id", "=", mid)])[0]["res_id"] == ticket  # recorded on it
    assert stage_of(odoo, ticket) == "Solved"


def test_a_reply_long_after_closing_opens_a_new_ticket_that_follows_the_old(bridge_factory, mailbox, odoo, sink):
    bridge = bridge_factory(conversation={**WATCH, "reopen_stage": "In Progress", "reopen_within_days": 7})
    old, _ = opened(bridge, mailbox, odoo, sink)
    agent = Agent(odoo)
    agent.stage(old, "Solved")
    [closing] = wait_until(lambda: [m.message for m in sink.messages if m.message["X-Bridge-Kind"] == "closing_notice"],
                           what="closing email")
    agent.call("helpdesk.ticket", "write", [[old], {"close_date": "2020-01-01 09:00:00"}])  # closed long ago
    mid = reply_to(mailbox, closing)
    [message] = odoo.records("mail.message", [("message_id", "=", mid)])
    new = message["res_id"]
    assert new != old and stage_of(odoo, old) == "Solved"
    wait_until(lambda: sink.wait_for(1, predicate=lambda m: m.message.get("In-Reply-To") == mid), what="new ack")

    def notes(ticket: int) -> list[str]:
        return [m["body"] for m in odoo.records("mail.message", [("res_id", "=", ticket), ("model", "=", "helpdesk.ticket")])]

    wait_until(lambda: any(f"Follows up on closed ticket {old}" in b for b in notes(new)), what="note on the new one")
    wait_until(lambda: any(f"continued in ticket {new}" in b for b in notes(old)), what="note on the old one")


def test_one_click_ratings_are_signed_kept_once_and_told(bridge_factory, mailbox, odoo, sink, slack):
    import re as _re

    from tests.integration.harness import free_port
    from tests.integration.test_slack_flow import cards, slack_settings, strings, thread_replies

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    bridge = bridge_factory(conversation=WATCH, slack=slack_settings(slack),
                            http={"port": port, "webhook_token": WEBHOOK_TOKEN},
                            satisfaction={"enabled": True, "base_url": base})
    ticket, _ = opened(bridge, mailbox, odoo, sink)
    Agent(odoo).stage(ticket, "Solved")
    [closing] = wait_until(lambda: [m.message for m in sink.messages if m.message["X-Bridge-Kind"] == "closing_notice"],
                           what="closing email")
    text = closing.get_body(("plain",)).get_content()
    good = _re.search(r"Good: (\S+)", text)[1]
    bad = _re.search(r"Not good: (\S+)", text)[1]
    assert good.startswith(f"{base}/rate/{ticket}-1-g-") and bad.startswith(f"{base}/rate/{ticket}-1-b-")
    assert good in closing.get_body(("html",)).get_content()

    def get(url: str, post: bool = False) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(url, data=b"" if post else None, timeout=5) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    forged = good.replace(f"/rate/{ticket}-", f"/rate/{ticket + 1}-")
    assert get(forged)[0] == 404 and get(forged, post=True)[0] == 404
    assert get(good[:-3] + "AAA", post=True)[0] == 404
    # a mail scanner opens both links: nothing is recorded, each page asks to confirm with a POST
    for url, wording in ((bad, "not good"), (good, "good")):
        status, body = get(url)
        assert status == 200 and '<form method="post">' in body and f"Send: {wording}" in body
    assert "ratings" not in bridge.app.ctx.tickets.get(ticket).odoo
    status, body = get(good, post=True)
    assert status == 200 and "(good) has been recorded" in body
    assert "already recorded (good)" in get(good)[1] and "already recorded (good)" in get(bad, post=True)[1]

    def notes() -> list[str]:
        return [m["body"] for m in odoo.records("mail.message", [("res_id", "=", ticket), ("model", "=", "helpdesk.ticket")])
                if "Customer rating" in (m["body"] or "")]

    wait_until(lambda: notes(), what="the rating noted on the ticket")
    [card] = cards(slack)
    wait_until(lambda: any("Customer rating: good" in " ".join(strings(m.get("blocks")))
                           for m in thread_replies(slack, card["ts"])), what="the rating in the thread")
    assert len(notes()) == 1
    assert bridge.app.ctx.tickets.get(ticket).odoo["ratings"] == {"1": "good"}


def dsn(original_id: str, recipient: str, status: str, action: str = "failed") -> bytes:
    """A delivery status notification (RFC 3464) as Postfix sends it, about one of our mails."""
    return (
        "From: MAILER-DAEMON@mx.customer.example (Mail Delivery System)\r\n"
        "To: support@example.com\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <dsn-" + status + "@mx.customer.example>\r\nAuto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you that your message could not\r\n"
        "be delivered to one or more recipients.\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.customer.example\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: {action}\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; 550 {status} <{recipient}>: Recipient address rejected: User unknown\r\n"
        "--b\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: Example Support <support@example.com>\r\nMessage-ID: {original_id}\r\nSubject: Re: x\r\n"
        "--b--\r\n"
    ).encode()


def test_a_hard_bounce_is_noted_flagged_in_slack_and_the_address_rests(bridge_factory, mailbox, odoo, sink, slack):
    from tests.integration.test_slack_flow import cards, slack_settings, strings, thread_replies

    bridge = bridge_factory(conversation=WATCH, slack=slack_settings(slack))
    ticket, ack = opened(bridge, mailbox, odoo, sink)
    uid = mailbox.append(dsn(ack["Message-ID"], "alice@customer.example", "5.1.1"))
    wait_until(lambda: done(mailbox, uid), what="the bounce processed")
    [card] = wait_until(lambda: cards(slack), what="the card")
    wait_until(lambda: any("Mail bounced" in " ".join(strings(m.get("blocks"))) and "5.1.1" in
                           " ".join(strings(m.get("blocks"))) for m in thread_replies(slack, card["ts"])),
               what="the bounce in the thread")
    assert bridge.app.store.meta.get("bounce_suppress:alice@customer.example")

    Agent(odoo).comment(ticket, "<p>Are you still there?</p>")

    def not_sent() -> list[str]:
        return [m["body"] for m in odoo.records("mail.message", [("res_id", "=", ticket)])
                if "not sent" in (m["body"] or "") and "bounced" in (m["body"] or "")]

    wait_until(not_sent, what="the answer noted as not sent")
    assert agent_mails(sink) == [] and len(sink.messages) == 1  # only the acknowledgement ever went out


def test_a_soft_bounce_is_noted_but_the_address_is_still_mailed(bridge_factory, mailbox, odoo, sink):
    bridge = bridge_factory(conversation=WATCH)
    ticket, ack = opened(bridge, mailbox, odoo, sink)
    uid = mailbox.append(dsn(ack["Message-ID"], "alice@customer.example", "4.2.2", action="delayed"))
    wait_until(lambda: done(mailbox, uid), what="the bounce processed")
    [note] = [m["body"] for m in odoo.records("mail.message", [("res_id", "=", ticket)])
              if "Delivery failed" in (m["body"] or "")]
    assert "soft bounce, status 4.2.2" in note and "User unknown" in note
    assert not bridge.app.store.meta.get("bounce_suppress:alice@customer.example")
    Agent(odoo).comment(ticket, "<p>Trying again</p>")
    wait_until(lambda: agent_mails(sink), what="the answer still emailed")
    assert len(odoo.records("helpdesk.ticket")) == 1


def test_an_odoo_outage_delays_the_answer_and_drops_nothing(bridge_factory, mailbox, odoo, sink):
    bridge = bridge_factory(conversation=WATCH)
    ticket, _ = opened(bridge, mailbox, odoo, sink)
    wait_until(lambda: bridge.app.store.meta.get("odoo_watch"), what="the first poll")
    reads = odoo.call_count("mail.message", "search_read")
    odoo.fail_next("mail.message", "search_read", "transient", count=5)  # the next five polls fail
    Agent(odoo).comment(ticket, "<p>Written while the watcher cannot read</p>")
    [sent] = wait_until(lambda: agent_mails(sink), timeout=20, what="the answer after the outage")
    assert odoo.call_count("mail.message", "search_read") >= reads + 6  # it came only after the failed polls
    assert "Written while the watcher cannot read" in sent.message.get_body(("plain",)).get_content()
    polls = bridge.app.odoo_watch.polls
    wait_until(lambda: bridge.app.odoo_watch.polls >= polls + 3, what="the window re-read")
    assert len(agent_mails(sink)) == 1

"""End to end: emails APPENDed to a real Dovecot become Odoo tickets and acknowledgements."""

from __future__ import annotations

import html
import logging

import pytest

from tests.integration.harness import SUPPORT, email_bytes, wait_until

pytestmark = pytest.mark.integration

DONE = "$BridgeDone"


def tickets(odoo):
    return odoo.records("helpdesk.ticket")


def messages_with_id(odoo, message_id):
    return [m for m in odoo.records("mail.message") if m.get("message_id") == message_id]


def notes(odoo, ticket_id):
    """Internal notes on a ticket: messages with the "Note" subtype (mail.mt_note)."""
    note = [s["id"] for s in odoo.records("mail.message.subtype") if s["name"] == "Note"]
    return [m for m in odoo.records("mail.message") if m.get("res_id") == ticket_id and m.get("subtype_id") in note]


def done(mailbox, uid):
    return DONE in {f.decode() if isinstance(f, bytes) else f for f in mailbox.flags(uid)}


def _m2o(value):
    return value[0] if isinstance(value, (list, tuple)) else value


def test_new_email_becomes_ticket_with_acknowledgement(bridge_factory, mailbox, odoo, sink):
    raw, mid = email_bytes(body="It prints <b>blank</b> pages & smudges.",
                           attachments=[("page.png", "image/png", b"\x89PNG fake")])
    bridge_factory()
    uid = mailbox.append(raw)

    ack = sink.wait_for(1, timeout=10)[0].message
    wait_until(lambda: done(mailbox, uid), what="IMAP done keyword")
    [ticket] = tickets(odoo)
    assert ticket["name"] == "Printer broken"
    assert "&lt;b&gt;blank&lt;/b&gt;" in ticket["description"] and "<b>" not in ticket["description"]
    [posted] = messages_with_id(odoo, mid)
    assert posted["res_id"] == ticket["id"] and posted["model"] == "helpdesk.ticket"
    assert len(posted["attachment_ids"]) == 1

    assert ack["To"].addresses[0].addr_spec == "alice@customer.example"
    assert ack["In-Reply-To"] == mid
    assert mid in ack["References"]
    assert ack["Auto-Submitted"] == "auto-replied"
    assert f"[#HD-{ticket['id']}]" in ack["Subject"]
    assert ack["Message-ID"].endswith("@example.com>")
    wait_until(lambda: notes(odoo, ticket["id"]), what="acknowledgement note")
    assert html.escape(ack["Message-ID"]) in notes(odoo, ticket["id"])[0]["body"]


def test_reply_threaded_by_headers_only(bridge_factory, mailbox, odoo, sink):
    first, first_id = email_bytes()
    bridge_factory()
    mailbox.append(first)
    ack = sink.wait_for(1)[0].message
    reply, reply_id = email_bytes(subject="Re: something else entirely", body="more details",
                                  headers={"In-Reply-To": ack["Message-ID"],
                                           "References": f"{first_id} {ack['Message-ID']}"})
    uid = mailbox.append(reply)
    wait_until(lambda: done(mailbox, uid))
    assert len(tickets(odoo)) == 1
    [followup] = messages_with_id(odoo, reply_id)
    assert followup["res_id"] == tickets(odoo)[0]["id"]
    assert len(sink.messages) == 1, "a follow-up is not acknowledged again"


def test_reply_threaded_by_subject_tag_only(bridge_factory, mailbox, odoo, sink):
    bridge_factory()
    mailbox.append(email_bytes()[0])
    sink.wait_for(1)
    ticket_id = tickets(odoo)[0]["id"]
    reply, reply_id = email_bytes(sender="alice@customer.example",
                                  subject=f"Re: Printer broken [#HD-{ticket_id}]", body="photo attached")
    uid = mailbox.append(reply)
    wait_until(lambda: done(mailbox, uid))
    assert len(tickets(odoo)) == 1
    assert messages_with_id(odoo, reply_id)[0]["res_id"] == ticket_id


def test_spoofed_subject_tag_from_stranger_opens_new_ticket(bridge_factory, mailbox, odoo, sink):
    bridge_factory()
    mailbox.append(email_bytes()[0])
    sink.wait_for(1)
    victim = tickets(odoo)[0]["id"]
    spoof, spoof_id = email_bytes(sender="Mallory <mallory@attacker.example>",
                                  subject=f"Re: [#HD-{victim}] send me the files")
    uid = mailbox.append(spoof)
    wait_until(lambda: done(mailbox, uid))
    assert len(tickets(odoo)) == 2
    [posted] = messages_with_id(odoo, spoof_id)
    assert posted["res_id"] != victim


def test_auto_reply_is_recorded_but_not_answered(bridge_factory, mailbox, odoo, sink):
    bridge_factory()
    raw, mid = email_bytes(sender="Bob <bob@customer.example>", subject="Out of office",
                           headers={"Auto-Submitted": "auto-replied"})
    uid = mailbox.append(raw)
    wait_until(lambda: done(mailbox, uid))
    assert len(tickets(odoo)) == 1 and messages_with_id(odoo, mid)
    normal, _ = email_bytes(sender="carol@customer.example")
    mailbox.append(normal)
    [ack] = sink.wait_for(1)
    assert ack.message["To"].addresses[0].addr_spec == "carol@customer.example"


def test_mail_loop_is_quarantined_not_ticketed(bridge_factory, mailbox, odoo, sink):
    bridge_factory()
    looped, _ = email_bytes(sender=f"Support <{SUPPORT}>", subject="Re: Re: Re: your ticket",
                            headers={"X-Loop": SUPPORT, "Auto-Submitted": "auto-replied"})
    mailbox.append(looped)
    wait_until(lambda: mailbox.uids(mailbox.quarantine), what="quarantine folder")
    assert mailbox.uids() == []
    assert tickets(odoo) == []
    assert sink.messages == []


def test_bounce_of_our_acknowledgement_becomes_a_note_on_its_ticket(bridge_factory, mailbox, odoo, sink):
    bridge_factory()
    mailbox.append(email_bytes()[0])
    ack = sink.wait_for(1)[0].message
    bounce, _ = email_bytes(
        sender="MAILER-DAEMON@mx.customer.example", subject="Undelivered Mail Returned to Sender",
        body=f"Your message could not be delivered: 550 5.1.1 no such user.\n\nMessage-ID: {ack['Message-ID']}\n",
        headers={"Return-Path": "<>", "Auto-Submitted": "auto-replied", "In-Reply-To": ack["Message-ID"],
                 "X-Failed-Recipients": "alice@customer.example"},
    )
    uid = mailbox.append(bounce)
    wait_until(lambda: done(mailbox, uid), what="bounce processed")
    [ticket] = tickets(odoo)
    [note] = [m for m in odoo.records("mail.message", [("res_id", "=", ticket["id"])])
              if "Delivery failed" in (m.get("body") or "")]
    assert "hard bounce, status 5.1.1" in note["body"] and "alice@customer.example" in note["body"]
    assert note["message_type"] == "comment" and note["subtype_id"] == odoo.records(
        "ir.model.data", [("name", "=", "mt_note")])[0]["res_id"]  # internal: never emailed
    assert len(sink.messages) == 1  # nobody answers a bounce


def test_excluded_sender_is_quarantined(bridge_factory, mailbox, odoo, sink):
    bridge_factory(guard__exclude_senders=["*@spam.example"])
    mailbox.append(email_bytes(sender="x@spam.example")[0])
    wait_until(lambda: mailbox.uids(mailbox.quarantine))
    assert tickets(odoo) == [] and sink.messages == []


def _outage_lines(caplog, service):
    return [r for r in caplog.records if r.getMessage().startswith(f"{service}: unavailable")]


def test_odoo_down_then_up_loses_nothing_and_logs_once(bridge_factory, mailbox, odoo, sink, caplog):
    caplog.set_level(logging.INFO)
    odoo.set_down(True)
    runner = bridge_factory()
    sent = [email_bytes(sender=f"user{i}@customer.example", subject=f"Issue {i}") for i in range(3)]
    uids = [mailbox.append(raw) for raw, _ in sent]
    wait_until(lambda: _outage_lines(caplog, "odoo"), what="the outage line")
    # the positive signal: every email has been tried again at least twice while Odoo is down
    wait_until(lambda: all((runner.app.store.jobs.get(mid) or {}).get("attempts", 0) >= 3 for _, mid in sent),
               what="three attempts of every email")
    assert not any(done(mailbox, uid) for uid in uids)
    assert len(_outage_lines(caplog, "odoo")) == 1
    odoo.set_down(False)
    wait_until(lambda: all(done(mailbox, uid) for uid in uids), timeout=20)
    assert sorted(t["name"] for t in tickets(odoo)) == ["Issue 0", "Issue 1", "Issue 2"]
    sink.wait_for(3)
    assert any("odoo: available again" in r.getMessage() for r in caplog.records)


def test_smtp_down_then_up_sends_the_acknowledgement_later(bridge_factory, mailbox, odoo, sink):
    sink.set_down(True)
    bridge_factory()
    uid = mailbox.append(email_bytes()[0])
    wait_until(lambda: done(mailbox, uid), what="email done while SMTP is down (ack is in the outbox)")
    assert sink.messages == []
    sink.set_down(False)
    assert len(sink.wait_for(1, timeout=15)) == 1


def test_odoo_validation_refusal_ends_in_quarantine_without_blocking(bridge_factory, mailbox, odoo, sink):
    odoo.fail_next("helpdesk.ticket", "create", error="validation", count=3)
    bridge_factory()
    bad = mailbox.append(email_bytes(subject="refused")[0])
    wait_until(lambda: mailbox.uids(mailbox.quarantine), timeout=20, what="quarantined refusal")
    good = mailbox.append(email_bytes(subject="fine")[0])
    wait_until(lambda: done(mailbox, good))
    assert [t["name"] for t in tickets(odoo)] == ["fine"]
    assert bad not in mailbox.uids()


def test_too_large_email_is_quarantined_unread(bridge_factory, mailbox, odoo, sink):
    bridge_factory(imap__max_message_bytes=4096)
    mailbox.append(email_bytes(body="x" * 10_000)[0])
    small = mailbox.append(email_bytes(subject="small")[0])
    wait_until(lambda: mailbox.uids(mailbox.quarantine) and done(mailbox, small))
    assert [t["name"] for t in tickets(odoo)] == ["small"]


def test_big_attachment_reaches_odoo(bridge_factory, mailbox, odoo, sink):
    payload = bytes(range(256)) * (20 * 1024 * 1024 // 256)
    raw, mid = email_bytes(subject="big", attachments=[("dump.bin", "application/octet-stream", payload)])
    bridge_factory()
    uid = mailbox.append(raw)
    wait_until(lambda: done(mailbox, uid), timeout=60)
    attachments = odoo.records("ir.attachment")
    assert len(attachments) == 1 and attachments[0]["name"] == "dump.bin"


def test_several_large_attachments_all_reach_odoo(bridge_factory, mailbox, odoo, sink):
    """Over 4 MB: parsed in the parser process; over 2 MB of attachments: created in batches."""
    files = [(f"scan-{n}.pdf", "application/pdf", bytes([n]) * (1536 * 1024)) for n in range(4)]
    raw, _ = email_bytes(subject="scans", attachments=files)
    bridge_factory()
    uid = mailbox.append(raw)
    wait_until(lambda: done(mailbox, uid), timeout=60)
    stored = {a["name"]: a for a in odoo.records("ir.attachment")}
    assert sorted(stored) == [name for name, _, _ in files]
    [posted] = [m for m in odoo.records("mail.message") if m.get("attachment_ids")]
    assert sorted(posted["attachment_ids"]) == sorted(a["id"] for a in stored.values())


def test_move_mode_moves_finished_mail(bridge_factory, mailbox, odoo, sink):
    bridge_factory(imap__done={"mode": "move", "folder": mailbox.folder + "_done"})
    mailbox.append(email_bytes()[0])
    wait_until(lambda: mailbox.uids(mailbox.folder + "_done"))
    assert mailbox.uids() == []


def test_conversation_keeps_arrival_order(bridge_factory, mailbox, odoo, sink):
    first, first_id = email_bytes()
    bridge_factory()
    mailbox.append(first)
    sink.wait_for(1)
    ids = []
    for n in range(6):
        raw, mid = email_bytes(subject=f"Re: Printer broken ({n})", headers={"In-Reply-To": first_id,
                                                                                "References": first_id})
        ids.append(mid)
        mailbox.append(raw)
    wait_until(lambda: all(messages_with_id(odoo, mid) for mid in ids))
    posted = sorted((messages_with_id(odoo, mid)[0]["id"], mid) for mid in ids)
    assert [mid for _, mid in posted] == ids


def test_reply_cap_limits_acknowledgements_per_recipient(bridge_factory, mailbox, odoo, sink):
    runner = bridge_factory(guard__reply_cap={"count": 2, "per_seconds": 3600})
    uids = [mailbox.append(email_bytes(subject=f"Question {n}")[0]) for n in range(4)]
    wait_until(lambda: all(done(mailbox, uid) for uid in uids))
    assert len(tickets(odoo)) == 4
    # every job is finished, so every reply it queued is in the outbox: once that is empty, none is coming
    wait_until(lambda: not any(runner.app.outbox.pending_by_kind().values()), what="the outbox empty")
    assert len(sink.messages) == 2


def test_imap_server_restart_is_survived(bridge_factory, mailbox, odoo, sink, dovecot):
    bridge_factory()
    mailbox.append(email_bytes(subject="before")[0])
    sink.wait_for(1)
    dovecot.restart()
    uid = mailbox.append(email_bytes(subject="after")[0])
    wait_until(lambda: done(mailbox, uid), timeout=30, what="mail after the IMAP restart")
    assert sorted(t["name"] for t in tickets(odoo)) == ["after", "before"]


def test_a_second_bridge_on_the_same_state_refuses_to_start(bridge_factory):
    from bridge.errors import ConfigurationError

    bridge_factory()
    with pytest.raises(ConfigurationError, match="in use by another running bridge"):
        bridge_factory()


def test_polling_when_idle_is_off(bridge_factory, mailbox, odoo, sink):
    runner = bridge_factory(imap__idle=False, imap__poll_interval_seconds=0.3)
    uid = mailbox.append(email_bytes(subject="polled")[0])
    wait_until(lambda: done(mailbox, uid), timeout=10)
    assert runner.app.watcher.mode == "poll"
    assert [t["name"] for t in tickets(odoo)] == ["polled"]


def test_backlog_beyond_the_inflight_limit_drains_without_a_rescan(bridge_factory, mailbox, odoo, sink):
    """Concurrency 1 admits 4 emails at a time; the rest wait in the intake's backlog, and mail
    arriving meanwhile joins it. With the full rescan an hour away, all of it must still finish."""
    backlog = [mailbox.append(email_bytes(sender=f"u{n}@customer.example", subject=f"Backlog {n}")[0])
               for n in range(10)]
    bridge_factory(pipeline__concurrency=1, imap__batch_size=3, imap__rescan_interval_seconds=3600)
    wait_until(lambda: done(mailbox, backlog[0]), what="first email done")
    later = [mailbox.append(email_bytes(sender=f"v{n}@customer.example", subject=f"Later {n}")[0])
             for n in range(3)]
    wait_until(lambda: all(done(mailbox, uid) for uid in backlog + later), timeout=30, what="all 13 done")
    assert len(tickets(odoo)) == 13
    assert len(sink.wait_for(13)) == 13

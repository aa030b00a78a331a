"""SIGKILL around an agent's answer: killed after the customer's server accepted it, or after its
Message-ID was written back to Odoo. The restarted bridge never mails a second, different copy."""

from __future__ import annotations

import signal

import pytest

from tests.integration.harness import bridge_settings, email_bytes, wait_until, write_config
from tests.integration.test_conversation import WATCH, Agent, agent_mails
from tests.integration.test_crash import Process, _flags_done

pytestmark = pytest.mark.integration


@pytest.fixture
def watching_process(mailbox, odoo, sink, tmp_path):
    settings = bridge_settings(mailbox, odoo, sink, tmp_path / "state", conversation=WATCH)
    process = Process(write_config(tmp_path / "config.yaml", settings), tmp_path / "bridge.log")
    yield process
    process.stop()


def _ticket(mailbox, odoo, sink, process) -> int:
    raw, mid = email_bytes(subject="Crash while answering")
    uid = mailbox.append(raw)
    process.start()
    wait_until(lambda: _flags_done(mailbox, [uid]), timeout=30, what="email done")
    sink.wait_for(1, timeout=15)
    [message] = odoo.records("mail.message", [("message_id", "=", mid)])
    return message["res_id"]


def _distinct_answers(sink, text: str) -> set[str]:
    return {m.message["Message-ID"] for m in agent_mails(sink)
            if text in m.message.get_body(("plain",)).get_content()}


@pytest.mark.parametrize("where", ["smtp accepted", "message id written back"])
def test_a_kill_around_the_answer_never_gives_a_second_copy(where, watching_process, mailbox, odoo, sink):
    ticket = _ticket(mailbox, odoo, sink, watching_process)
    agent = Agent(odoo)
    pid = watching_process.proc.pid
    if where == "smtp accepted":
        sink.kill_after_data(pid=pid, sig=signal.SIGKILL)
    else:
        odoo.kill_after("mail.message", "write", pid=pid, sig=signal.SIGKILL)
    comment = agent.comment(ticket, "<p>First answer</p>")
    watching_process.wait_killed()
    watching_process.start()
    wait_until(lambda: odoo.records("mail.message", [("id", "=", comment)])[0]["message_id"].startswith("<hd.agent."),
               timeout=30, what="the Message-ID written back after the restart")
    agent.comment(ticket, "<p>Second answer</p>")  # the positive signal that the watcher went on
    wait_until(lambda: _distinct_answers(sink, "Second answer"), timeout=30, what="the second answer")
    [first] = _distinct_answers(sink, "First answer")  # one Message-ID: at most a resend of the same mail
    assert odoo.records("mail.message", [("id", "=", comment)])[0]["message_id"] == first
    copies = [m for m in agent_mails(sink) if m.message["Message-ID"] == first]
    assert len(copies) == (2 if where == "smtp accepted" else 1)

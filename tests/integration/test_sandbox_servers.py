"""Checks that the sandbox Dovecot and SMTP sink behave the way the bridge's integration tests rely on."""

from __future__ import annotations

import asyncio
import signal
import smtplib
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING

import aiosmtplib
import imapclient
import pytest

from bridge.sandbox.dovecot import Dovecot
from bridge.sandbox.smtp_sink import SmtpSink

if TYPE_CHECKING:
    from tests.conftest import Mailbox

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]


def raw_mail(subject: str = "Printer on fire", message_id: str = "<t1@example.test>") -> bytes:
    return (
        f"From: Customer <customer@example.test>\r\nTo: support@example.test\r\n"
        f"Subject: {subject}\r\nMessage-ID: {message_id}\r\n\r\nPlease help.\r\n"
    ).encode()


def reply(message_id: str = "<ack1@bridge.test>") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "support@example.test"
    message["To"] = "customer@example.test"
    message["Subject"] = "Re: Printer on fire"
    message["Message-ID"] = message_id
    message.set_content("We are on it.")
    return message


# --- Dovecot ---------------------------------------------------------------------------------------


def test_dovecot_offers_what_the_bridge_needs(dovecot: Dovecot) -> None:
    with dovecot.client() as imap:
        capabilities = set(imap.capabilities())
    assert {b"IDLE", b"UIDPLUS", b"MOVE"} <= capabilities


def test_wrong_password_is_refused(dovecot: Dovecot) -> None:
    imap = imapclient.IMAPClient(dovecot.host, port=dovecot.port, ssl=False, timeout=5)
    with pytest.raises(imapclient.exceptions.LoginError):
        imap.login("support", "wrong")
    imap.shutdown()


def test_append_returns_the_new_uid(mailbox: Mailbox) -> None:
    first = mailbox.append(raw_mail(message_id="<a@x>"))
    second = mailbox.append(raw_mail(message_id="<b@x>"))
    assert second > first
    assert mailbox.uids() == [first, second]
    with mailbox.client() as imap:
        imap.select_folder(mailbox.folder, readonly=True)
        assert imap.fetch([first], ["RFC822"])[first][b"RFC822"] == raw_mail(message_id="<a@x>")


def test_append_creates_a_missing_folder(dovecot: Dovecot) -> None:
    uid = dovecot.append(raw_mail(), folder="created_by_append")
    with dovecot.client() as imap:
        imap.select_folder("created_by_append", readonly=True)
        assert imap.search("ALL") == [uid]


def test_keywords_round_trip(mailbox: Mailbox) -> None:
    uid = mailbox.append(raw_mail())
    with mailbox.client() as imap:
        imap.select_folder(mailbox.folder)
        imap.add_flags([uid], ["$BridgeDone", imapclient.SEEN])
    assert {"$BridgeDone", "\\Seen"} <= mailbox.flags(uid)
    assert "$BridgeDone" in mailbox.flags(mailbox.append(raw_mail(), flags=("$BridgeDone",)))


def test_move_to_quarantine(mailbox: Mailbox) -> None:
    uid = mailbox.append(raw_mail())
    with mailbox.client() as imap:
        imap.select_folder(mailbox.folder)
        imap.move([uid], mailbox.quarantine)
    assert mailbox.uids() == []
    assert len(mailbox.uids(mailbox.quarantine)) == 1


def test_idle_notices_an_append_quickly(mailbox: Mailbox) -> None:
    with mailbox.client() as imap:
        imap.select_folder(mailbox.folder)
        imap.idle()
        started = time.monotonic()
        mailbox.append(raw_mail())
        responses = imap.idle_check(timeout=3)
        elapsed = time.monotonic() - started
        imap.idle_done()
    assert any(kind == b"EXISTS" for _, kind in responses), responses
    assert elapsed < 3


def test_added_user_can_log_in(dovecot: Dovecot) -> None:
    dovecot.add_user("agent2", "agent2-pw")
    with dovecot.client("agent2") as imap:
        assert imap.select_folder("INBOX")[b"EXISTS"] == 0


def test_restart_keeps_port_and_mail(dovecot: Dovecot) -> None:
    with Dovecot() as other:  # a second instance next to the session one
        assert other.port != dovecot.port
        uid = other.append(raw_mail())
        port = other.port
        stale = other.client()
        other.restart()
        assert other.port == port
        with pytest.raises((OSError, imapclient.exceptions.IMAPClientAbortError)):
            stale.noop()
        with other.client() as imap:
            imap.select_folder("INBOX", readonly=True)
            assert imap.search("ALL") == [uid]
        assert other.append(raw_mail()) > uid  # the cached append connection is renewed too
    assert not other.root.exists()


def test_dovecot_command_line() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge.sandbox.dovecot"], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        words = proc.stdout.readline().split()
        assert words[0] == "ready" and words[2:] == ["user=support", "password=support-pw"]
        port = int(words[1].rsplit(":", 1)[1])
        with imapclient.IMAPClient("127.0.0.1", port=port, ssl=False) as imap:
            imap.login("support", "support-pw")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()


# --- SMTP sink -------------------------------------------------------------------------------------


def test_sink_records_mail_sent_with_smtplib(sink: SmtpSink) -> None:
    with smtplib.SMTP(sink.host, sink.port, timeout=5) as smtp:
        smtp.send_message(reply())
    [mail] = sink.wait_for(1)
    assert mail.mail_from == "support@example.test"
    assert mail.rcpt_tos == ["customer@example.test"]
    assert mail.message["Subject"] == "Re: Printer on fire"
    assert b"We are on it." in mail.raw
    assert abs(mail.received_at - time.time()) < 5


def test_sink_records_mail_sent_with_aiosmtplib(sink: SmtpSink) -> None:
    asyncio.run(aiosmtplib.send(reply("<async@bridge.test>"), hostname=sink.host, port=sink.port, timeout=5))
    [mail] = sink.wait_for(1, predicate=lambda m: m.message["Message-ID"] == "<async@bridge.test>")
    assert mail.message.get_content().strip() == "We are on it."


def test_wait_for_times_out_with_what_arrived(sink: SmtpSink) -> None:
    with smtplib.SMTP(sink.host, sink.port, timeout=5) as smtp:
        smtp.send_message(reply())
    with pytest.raises(TimeoutError, match="got 1"):
        sink.wait_for(2, timeout=0.2)


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_sink_auth(mechanism: str) -> None:
    with SmtpSink(auth=("bridge", "s3cret")) as sink:
        with smtplib.SMTP(sink.host, sink.port, timeout=5) as smtp:
            with pytest.raises(smtplib.SMTPSenderRefused) as refused:
                smtp.send_message(reply())
            assert refused.value.smtp_code == 530
        with smtplib.SMTP(sink.host, sink.port, timeout=5) as smtp:
            smtp.ehlo()
            smtp.user, smtp.password = "bridge", "wrong"
            with pytest.raises(smtplib.SMTPAuthenticationError):
                smtp.auth(mechanism, getattr(smtp, f"auth_{mechanism.lower()}"))
        with smtplib.SMTP(sink.host, sink.port, timeout=5) as smtp:
            smtp.ehlo()
            smtp.user, smtp.password = "bridge", "s3cret"
            smtp.auth(mechanism, getattr(smtp, f"auth_{mechanism.lower()}"))
            smtp.send_message(reply())
        assert len(sink.wait_for(1)) == 1


def test_sink_auth_with_aiosmtplib() -> None:
    with SmtpSink(auth=("bridge", "s3cret")) as sink:
        send = aiosmtplib.send(
            reply(), hostname=sink.host, port=sink.port, username="bridge", password="s3cret", timeout=5
        )
        asyncio.run(send)
        assert len(sink.wait_for(1)) == 1


@pytest.mark.parametrize("code", [451, 550])
def test_fail_next_is_an_error_for_the_client(sink: SmtpSink, code: int) -> None:
    sink.fail_next(code)
    with pytest.raises(aiosmtplib.SMTPDataError) as failed:
        asyncio.run(aiosmtplib.send(reply(), hostname=sink.host, port=sink.port, timeout=5))
    assert failed.value.code == code
    assert sink.messages == []
    asyncio.run(aiosmtplib.send(reply(), hostname=sink.host, port=sink.port, timeout=5))
    assert len(sink.wait_for(1)) == 1


def test_set_down_refuses_connections_until_up_again(sink: SmtpSink) -> None:
    port = sink.port
    sink.set_down(True)
    with pytest.raises(ConnectionRefusedError):
        smtplib.SMTP(sink.host, port, timeout=5)
    sink.set_down(False)
    assert sink.port == port
    with smtplib.SMTP(sink.host, port, timeout=5) as smtp:
        smtp.send_message(reply())
    assert len(sink.wait_for(1)) == 1


def test_sink_counts_sessions_and_quits(sink: SmtpSink) -> None:
    hung_up = smtplib.SMTP(sink.host, sink.port, timeout=5)
    hung_up.ehlo()
    with smtplib.SMTP(sink.host, sink.port, timeout=5) as polite:  # leaving the block sends QUIT
        polite.noop()
        assert sink.open_sessions == 2
    hung_up.close()
    deadline = time.monotonic() + 5
    while sink.open_sessions and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (sink.sessions, sink.open_sessions, sink.peak_sessions, sink.quits) == (2, 0, 2, 1)


def test_drop_sessions_hangs_up_on_clients(sink: SmtpSink) -> None:
    with smtplib.SMTP(sink.host, sink.port, timeout=5) as smtp:
        smtp.ehlo()
        sink.drop_sessions()
        assert sink.open_sessions == 0
        with pytest.raises(smtplib.SMTPServerDisconnected):
            smtp.noop()


def test_fail_next_mail_421_refuses_and_hangs_up(sink: SmtpSink) -> None:
    sink.fail_next_mail(421)
    with smtplib.SMTP(sink.host, sink.port, timeout=5) as smtp:
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            smtp.send_message(reply())
        assert refused.value.smtp_code == 421
        with pytest.raises(smtplib.SMTPServerDisconnected):
            smtp.noop()
    with smtplib.SMTP(sink.host, sink.port, timeout=5) as smtp:
        smtp.send_message(reply())
    assert len(sink.wait_for(1)) == 1


def test_drop_after_data_stores_the_mail_and_never_answers(sink: SmtpSink) -> None:
    sink.drop_after_data()
    smtp = smtplib.SMTP(sink.host, sink.port, timeout=5)
    with pytest.raises(smtplib.SMTPServerDisconnected):
        smtp.send_message(reply())
    smtp.close()
    assert len(sink.messages) == 1


def test_kill_after_data_kills_before_answering(sink: SmtpSink) -> None:
    victim = subprocess.Popen(["sleep", "30"])
    try:
        sink.kill_after_data(victim.pid)
        with smtplib.SMTP(sink.host, sink.port, timeout=5) as smtp:
            smtp.send_message(reply())
        assert victim.wait(timeout=5) == -signal.SIGKILL
        assert len(sink.messages) == 1
    finally:
        victim.kill()
        victim.wait()


def test_sink_command_line() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge.sandbox.smtp_sink"], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline().split()
        assert ready[0] == "ready" and ready[1].startswith("smtp://127.0.0.1:")
        port = int(ready[1].rsplit(":", 1)[1])
        before = time.time()
        with smtplib.SMTP("127.0.0.1", port, timeout=5) as smtp:
            smtp.send_message(reply("<cli@bridge.test>"))
        words = proc.stdout.readline().split()
        assert words[:3] == ["received", "<cli@bridge.test>", "to=customer@example.test"]
        assert before <= float(words[3].removeprefix("t=")) <= time.time()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()

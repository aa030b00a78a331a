"""`bridge demo`: the real pipeline against local stand-ins (Dovecot, Odoo, HR, LMS, SMTP sink, Slack), narrated."""

from __future__ import annotations

import asyncio
import email.utils
import tempfile
import time
from pathlib import Path
from typing import Any

from bridge.app import App
from bridge.config import Config, parse_config
from bridge.demo_odoo import play_agent_answer
from bridge.demo_slack import (
    SlackNarrator,
    free_port,
    play_approve,
    print_threads,
    slack_sections,
    start_slack,
)
from bridge.pipeline.job import Job
from bridge.sandbox.dovecot import Dovecot
from bridge.sandbox.hr import HrSandbox
from bridge.sandbox.lms import LmsSandbox
from bridge.sandbox.odoo import OdooSandbox
from bridge.sandbox.slack import SlackSandbox
from bridge.sandbox.smtp_sink import SmtpSink

REPO = Path(__file__).resolve().parents[1]
SUPPORT = "support@example.com"
WAIT_SECONDS = 20.0


def demo_config(state_dir: Path, dovecot: Dovecot, odoo: OdooSandbox, sink: SmtpSink,
                hr: HrSandbox, lms: LmsSandbox, slack: SlackSandbox, port: int) -> Config:
    user = "support"
    return parse_config(
        {
            "imap": {"host": dovecot.host, "port": dovecot.port, "security": "plain", "username": user,
                     "password": dovecot.users[user], "folder": "INBOX", "poll_interval_seconds": 1},
            "smtp": {"host": sink.host, "port": sink.port, "security": "plain", "from_address": SUPPORT,
                     "from_name": "Example Support"},
            "odoo": {"url": odoo.url, "db": odoo.db, "username": odoo.login, "password": odoo.password,
                     "transport": "jsonrpc", "profile": "helpdesk", "team": "Customer Care"},
            "tickets": {"templates_dir": ""},  # the templates packaged in bridge/templates
            "state": {"dir": str(state_dir)},
            "bridge": {"secret": "demo-secret-not-for-production", "log_level": "WARNING"},
            "automation": {
                "enabled": True,
                "sender": {"require": "dmarc", "organisation_domains": ["customer.example"],
                           "trusted_authserv_ids": ["mx.example.com"]},
                "hr": {"url": hr.url, "auth_value": "Bearer hr-token"},
                "lms": {"url": lms.url, "auth_value": "Bearer lms-token"},
                "resolved_stage": "Solved",
                "escalated_stage": "In Progress",
            },
            "conversation": {"enabled": True, "poll_seconds": 0.5},  # agents' answers in Odoo → email
            **slack_sections(slack, port),
        }
    )


class Timeline:
    """Collects what happens to each email, stamped relative to the demo's start."""

    def __init__(self, slack: SlackSandbox, lms: LmsSandbox) -> None:
        self.start = time.monotonic()
        self.lines: list[tuple[float, str, str]] = []
        self.finished: dict[str, str] = {}
        self.keys: set[str] = set()  # the emails seen, so Slack effects can be shown under theirs
        self.slack = SlackNarrator(slack, lms, self.keys.__contains__)

    def add(self, key: str, text: str, when: float | None = None) -> None:
        """A line for ``key`` (an email's, or "slack"), now or at ``when`` (a time.time())."""
        at = time.monotonic() if when is None else when - time.time() + time.monotonic()
        self.lines.append((at - self.start, key, text))

    def on_job(self, event: str, job: Job, detail: dict[str, Any]) -> None:
        text = {
            "received": lambda: f"received from {detail.get('sender') or '(no sender)'}",
            "guard": lambda: "guard: " + (detail.get("reason") or "ok to answer")
            + ("" if detail.get("action") == "process" else " → record only, no reply"),
            "route": lambda: (f"matched ticket #{detail['ticket']} by {detail['via']}" if detail.get("ticket")
                              else "no existing ticket matches"),
            "ticket": lambda: (f"ticket #{detail['ticket']} created" if detail.get("new")
                               else f"follow-up on ticket #{detail['ticket']}"),
            "post": lambda: (f"email posted to the ticket's chatter ({detail.get('attachments', 0)} attachment(s))"
                             if "message" in detail else f"not posted again: {detail.get('skipped')}"),
            "login": lambda: (f"login automation: {detail['outcome']} ({detail['reason']})" if detail.get("login")
                              else ""),
            "acknowledge": lambda: (f"reply {detail.get('template', 'ack')} queued → {detail['to']}"
                                    if "message_id" in detail else f"no reply: {detail.get('skipped')}"),
            "quarantined": lambda: f"QUARANTINED: {detail.get('reason')}",
            "deferred": lambda: f"deferred: {detail.get('reason')}",
            "done": lambda: "done, marked in IMAP",
        }.get(event)
        if event == "received":
            self.keys.add(job.key)
        line = text() if text else ""
        if line:
            self.add(job.key, line)
        if event in ("done", "quarantined"):
            self.finished[job.key] = event

    def on_effect(self, event: str, key: str, record: dict[str, Any]) -> None:
        slack_lines = self.slack.describe(event, key, record)
        for origin, line, when in slack_lines:
            self.add(origin, line, when)
        if slack_lines or record.get("kind") in ("slack", "slack_action"):
            return
        kind, _, origin = key.partition(":")
        if event == "sent" and kind == "ack":
            self.add(origin, f"reply sent over SMTP: {record['payload']['subject']!r}")
        elif event == "sent" and kind == "note":
            email_key = record["payload"].get("email_key", origin)  # a decision mail's is its click's
            self.add(email_key if email_key in self.keys else "slack", "reply logged on the ticket as a note")
        elif event == "sent" and kind == "login-note":
            self.add(origin, "login automation documented on the ticket (internal note)")
        elif event == "dead":
            self.add(origin, f"effect {kind} FAILED: {record.get('last_error')}")


def _message_id(raw: bytes) -> str:
    for line in raw.decode("utf-8", "replace").splitlines():
        if line.lower().startswith("message-id:"):
            return line.split(":", 1)[1].strip()
        if not line.strip():
            break
    return ""


async def _feed(app: App, dovecot: Dovecot, timeline: Timeline, files: list[Path]) -> dict[str, str]:
    names: dict[str, str] = {}
    for path in files:
        raw = path.read_bytes()
        key = _message_id(raw)
        names[key] = path.name
        await asyncio.to_thread(dovecot.append, raw, "INBOX")
        deadline = time.monotonic() + WAIT_SECONDS
        while key not in timeline.finished and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        while app.outbox.pending() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
    return names


def _print_report(timeline: Timeline, names: dict[str, str], odoo: OdooSandbox, sink: SmtpSink) -> None:
    print("\nTimeline")
    print("--------")
    last = None
    for at, key, text in sorted(timeline.lines, key=lambda line: line[0]):
        label = names.get(key, key)[:28] if key != last else ""  # "slack": not caused by one email
        print(f"+{at:7.3f}s  {label:<28}  {text}")
        last = key
    print("\nSummary")
    print("-------")
    replies = {m.message.get("In-Reply-To", "").strip(): m for m in sink.messages}
    tickets = {t["id"]: t for t in odoo.records("helpdesk.ticket")}
    print(f"{'sample':<28} {'outcome':<34} {'reply'}")
    for key, name in names.items():
        outcome = timeline.finished.get(key, "still running")
        ticket = next((m["res_id"] for m in odoo.records("mail.message") if m.get("message_id") == key), None)
        if outcome == "done" and ticket:
            created = any(text.endswith("created") and k == key for _, k, text in timeline.lines)
            outcome = f"{'new ticket' if created else 'follow-up on'} #{ticket}"
        elif outcome == "quarantined":
            outcome = "quarantined"
        reply = replies.get(key)
        print(f"{name:<28} {outcome:<34} {'sent: ' + str(reply.message['Subject']) if reply else '-'}")
    print(f"\nOdoo tickets: {len(tickets)}, chatter messages: {len(odoo.records('mail.message'))}, "
          f"emails sent: {len(sink.messages)}")


async def _run(files: list[Path], state_dir: Path, dovecot: Dovecot, odoo: OdooSandbox, sink: SmtpSink,
               hr: HrSandbox, lms: LmsSandbox, slack: SlackSandbox, port: int) -> int:
    timeline = Timeline(slack, lms)
    app = App(demo_config(state_dir, dovecot, odoo, sink, hr, lms, slack, port), observers=[timeline.on_job])
    timeline.slack.app = app
    app.outbox.observers.append(timeline.on_effect)
    await app.start()
    try:
        names = await _feed(app, dovecot, timeline, files)
        # A person in Slack decides the first escalated login request, as ops engineers would.
        approve_problem = await play_approve(app, slack, sink, timeline.slack, port, timeline.add, WAIT_SECONDS)
        # An agent answers the first ticket in Odoo and solves it: the customer gets both by email.
        first = min(t["id"] for t in odoo.records("helpdesk.ticket"))
        answer_problem = await play_agent_answer(app, odoo, sink, first, timeline.add, WAIT_SECONDS)
    finally:
        await app.stop()
    _print_report(timeline, names, odoo, sink)
    actions = [f"{a['action']} for {a['email']}" for a in lms.actions]
    print(f"LMS actions performed: {', '.join(actions) or 'none'}")
    print_threads(slack, timeline.slack, [t["id"] for t in odoo.records("helpdesk.ticket")])
    missing = [names[k] for k in names if k not in timeline.finished]
    if missing:
        print(f"\nNot finished in time: {', '.join(missing)}")
    if approve_problem:
        print(f"\nApprove from Slack did not complete: {approve_problem}")
    if answer_problem:
        print(f"\nThe agent's answer in Odoo did not reach the customer: {answer_problem}")
    return 1 if missing or approve_problem or answer_problem else 0


def run_demo(samples: Path | None = None) -> int:
    """Start the stand-ins, feed every sample through the bridge, print what happened."""
    files = sorted((samples or REPO / "samples").glob("*.eml"))
    if not files:
        # samples/ is part of the source tree, not of the package: an installed bridge needs --samples
        print(f"no .eml files in {samples or REPO / 'samples'} (pass --samples with a folder of .eml files, "
              "e.g. the source tree's samples/)")
        return 1
    if Dovecot.binary() is None:
        print("Dovecot is not installed: run `make demo` (it installs it) or scripts/install-dovecot.sh")
        return 1
    print(f"bridge demo: {len(files)} sample emails → local Dovecot → bridge → Odoo stand-in → SMTP sink, Slack stand-in")
    with tempfile.TemporaryDirectory(prefix="bridge-demo-") as tmp, Dovecot() as dovecot, \
            OdooSandbox() as odoo, SmtpSink() as sink, HrSandbox() as hr, LmsSandbox() as lms, \
            start_slack() as slack:
        port = free_port()
        print(f"  IMAP  imap://{dovecot.host}:{dovecot.port} (Dovecot)\n  Odoo  {odoo.url} (JSON-RPC stand-in)\n"
              f"  SMTP  smtp://{sink.host}:{sink.port} (sink)\n  HR    {hr.url}   LMS {lms.url} (stand-ins)\n"
              f"  Slack {slack.url} (Web API stand-in); bridge HTTP http://127.0.0.1:{port} (signed actions)\n"
              f"  state {tmp}  ({email.utils.formatdate()})")
        return asyncio.run(_run(files, Path(tmp) / "state", dovecot, odoo, sink, hr, lms, slack, port))

"""Helpers for integration tests: a bridge configured against the stand-ins, run in a thread or
as a separate process, and waiting for what can be observed from outside."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any, Callable

import yaml

from bridge.app import App
from bridge.config import Config, parse_config

REPO = Path(__file__).resolve().parents[2]
SUPPORT = "support@example.com"


def bridge_settings(mailbox, odoo, sink, state_dir: Path, **overrides: Any) -> dict[str, Any]:
    """A config tree pointing at the test's Dovecot folder, Odoo stand-in and SMTP sink."""
    settings: dict[str, Any] = {
        "bridge": {"secret": "test-secret", "log_level": "INFO"},
        "imap": {
            "host": mailbox.host, "port": mailbox.port, "security": "plain",
            "username": mailbox.user, "password": mailbox.password,
            "folder": mailbox.folder, "quarantine_folder": mailbox.quarantine,
            "poll_interval_seconds": 1, "reconnect_max_seconds": 1,
        },
        "smtp": {"host": sink.host, "port": sink.port, "security": "plain",
                 "from_address": SUPPORT, "from_name": "Example Support"},
        "odoo": {"url": odoo.url, "db": odoo.db, "username": odoo.login, "password": odoo.password,
                 "transport": "jsonrpc", "profile": "helpdesk", "team": "Customer Care"},
        "tickets": {"templates_dir": ""},  # the templates packaged in bridge/templates
        "pipeline": {"retry_base_seconds": 0.05, "retry_max_seconds": 0.5},
        "state": {"dir": str(state_dir)},
    }
    for dotted, value in overrides.items():
        node = settings
        *parents, leaf = dotted.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return settings


def free_port() -> int:
    """A loopback port nothing listens on (a server that is down, or one about to start)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def make_config(mailbox, odoo, sink, state_dir: Path, **overrides: Any) -> Config:
    return parse_config(bridge_settings(mailbox, odoo, sink, state_dir, **overrides))


def write_config(path: Path, settings: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(settings))
    return path


class BridgeThread:
    """Runs an App on its own event loop in a background thread, like `bridge run` does."""

    def __init__(self, cfg: Config, observers: list | None = None, **app_options: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.app: App | None = None
        self._cfg = cfg
        self._observers = observers or []
        self._app_options = app_options
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> "BridgeThread":
        self._thread.start()

        async def _start() -> App:
            app = App(self._cfg, observers=self._observers, **self._app_options)
            await app.start()
            return app

        self.app = asyncio.run_coroutine_threadsafe(_start(), self.loop).result(10)
        return self

    def settled(self) -> bool:
        """Nothing in the outbox (running effects included): the bridge does nothing more unprompted
        for the emails it has finished, so a check that no second reply came can be made now."""
        return self.app is not None and not self.app.outbox.pending()

    def stop(self) -> None:
        if self.app is not None:
            asyncio.run_coroutine_threadsafe(self.app.stop(), self.loop).result(30)
            self.app = None
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    def __enter__(self) -> "BridgeThread":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_process(config_path: Path, log_path: Path) -> subprocess.Popen:
    """`python -m bridge run` as a real separate process (for SIGKILL crash tests)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "bridge", "run", "--config", str(config_path)],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO,
        )


def wait_until(predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


def email_bytes(
    sender: str = "Alice <alice@customer.example>",
    subject: str = "Printer broken",
    body: str = "It prints blank pages.",
    *,
    message_id: str | None = None,
    headers: dict[str, str] | None = None,
    attachments: list[tuple[str, str, bytes]] = (),
) -> tuple[bytes, str]:
    """A plain customer email; returns (raw, Message-ID)."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = SUPPORT
    msg["Subject"] = subject
    msg["Date"] = formatdate()
    msg["Message-ID"] = message_id or make_msgid(domain="customer.example")
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    for filename, ctype, payload in attachments:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(payload, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes(), msg["Message-ID"]

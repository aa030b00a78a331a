"""`bridge check`: tries every configured connection and reports one line per service."""

from __future__ import annotations

import asyncio

from bridge.config import Config
from bridge.errors import BridgeError
from bridge.mail.inbox import ImapSession
from bridge.mail.smtp import SmtpSender
from bridge.odoo.rpc import OdooRPC
from bridge.odoo.tickets import TicketDesk


def _imap(cfg: Config) -> str:
    session = ImapSession(cfg.imap)
    session.open()
    try:
        waiting = len(session.search_unprocessed())
        mode = "IDLE" if session.client is not None and session.client.has_capability("IDLE") else "polling"
    finally:
        session.close()
    return (f"IMAP {cfg.imap.host}:{cfg.imap.port} ({cfg.imap.security}) login ok, folder "
            f"{cfg.imap.folder!r} ({waiting} unprocessed), {mode}")


def _odoo(cfg: Config) -> str:
    return TicketDesk(OdooRPC(cfg.odoo), cfg.odoo).check()


async def run_checks(cfg: Config) -> list[tuple[str, bool, str]]:
    """(service, passed, line) for IMAP, SMTP and Odoo, each tried even if another fails."""
    results: list[tuple[str, bool, str]] = []
    for name, call in (("imap", lambda: asyncio.to_thread(_imap, cfg)),
                       ("smtp", lambda: SmtpSender(cfg.smtp).check()),
                       ("odoo", lambda: asyncio.to_thread(_odoo, cfg))):
        try:
            results.append((name, True, await call()))
        except BridgeError as exc:
            results.append((name, False, str(exc)))
        except Exception as exc:  # report, don't crash: the point is to see every service
            results.append((name, False, f"{type(exc).__name__}: {exc}"))
    return results

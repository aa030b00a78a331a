"""`bridge check`: tries every configured connection and reports one line per service."""

from __future__ import annotations

import asyncio

from bridge.automation.directory import HrDirectory, LmsClient
from bridge.config import Config
from bridge.errors import BridgeError
from bridge.logs import display_url
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


PROBE = "bridge-check@invalid.example"


def _hr(cfg: Config) -> str:
    assert cfg.automation.hr is not None
    HrDirectory(cfg.automation.hr).lookup(PROBE)  # unknown on purpose: proves reachability and auth
    return f"HR {display_url(cfg.automation.hr.url)} reachable, credentials accepted"


def _lms(cfg: Config) -> str:
    assert cfg.automation.lms is not None
    LmsClient(cfg.automation.lms).account(PROBE)
    mode = " (dry run)" if cfg.automation.dry_run else ""
    return f"LMS {display_url(cfg.automation.lms.url)} reachable, credentials accepted{mode}"


def _slack(cfg: Config) -> str:
    from bridge.slack.client import SlackClient

    channels = [cfg.slack.channel, *(route.channel for route in cfg.slack.routes)]
    return SlackClient(cfg.slack).check(channels)


async def run_checks(cfg: Config) -> list[tuple[str, bool, str]]:
    """(service, passed, line) for IMAP, SMTP, Odoo (HR, LMS when automation is on, Slack when on), each
    tried even if another fails."""
    results: list[tuple[str, bool, str]] = []
    checks = [("imap", lambda: asyncio.to_thread(_imap, cfg)),
              ("smtp", lambda: SmtpSender(cfg.smtp).check()),
              ("odoo", lambda: asyncio.to_thread(_odoo, cfg))]
    if cfg.automation.enabled:
        checks += [("hr", lambda: asyncio.to_thread(_hr, cfg)), ("lms", lambda: asyncio.to_thread(_lms, cfg))]
    if cfg.slack.enabled:
        checks.append(("slack", lambda: asyncio.to_thread(_slack, cfg)))
    for name, call in checks:
        try:
            results.append((name, True, await call()))
        except BridgeError as exc:
            results.append((name, False, str(exc)))
        except Exception as exc:  # report, don't crash: the point is to see every service
            results.append((name, False, f"{type(exc).__name__}: {exc}"))
    return results

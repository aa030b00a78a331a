"""`bridge check`: tries every configured connection and reports one line per service."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable

from bridge.automation.directory import HrDirectory, LmsClient
from bridge.auth.tokens import TokenSource
from bridge.auth.vault import TokenVault
from bridge.config import Config, ImapConfig
from bridge.errors import BridgeError
from bridge.logs import display_url
from bridge.mail.inbox import ImapSession
from bridge.mail.smtp import SmtpSender
from bridge.mailboxes import mailbox_tokens
from bridge.odoo.rpc import OdooRPC
from bridge.odoo.tickets import TicketDesk


def _imap(imap: ImapConfig, tokens: TokenSource | None) -> str:
    session = ImapSession(imap, tokens)
    session.open()
    try:
        waiting = len(session.search_unprocessed())
        mode = "IDLE" if session.client is not None and session.client.has_capability("IDLE") else "polling"
    finally:
        session.close()
    return (f"IMAP {imap.host}:{imap.port} ({imap.security}) {imap.auth} login ok, folder "
            f"{imap.folder!r} ({waiting} unprocessed), {mode}")


def _token(source: TokenSource) -> str:
    """The token's state after the logins above used it (or a fresh try when they did not)."""
    source.token()
    status = source.status()
    line = f"OAuth2 {status['flow']} for {status['user']}: token {status['state']}"
    if "expires_in_seconds" in status:
        line += f", expires in {status['expires_in_seconds'] // 60} min"
    if "refresh_token" in status:
        line += f"; refresh token {status['refresh_token']} (state/oauth/{source.name}.json)"
    return line


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
    checks: list[tuple[str, Callable[[], Awaitable[str]]]] = []
    vault = TokenVault(cfg.state.dir)
    for box in cfg.mailbox_list:
        suffix = f":{box.name}" if cfg.mailboxes else ""
        imap_tokens, smtp_tokens = mailbox_tokens(box, vault)
        assert box.smtp is not None
        checks += [(f"imap{suffix}", functools.partial(asyncio.to_thread, _imap, box.imap, imap_tokens)),
                   (f"smtp{suffix}", SmtpSender(box.smtp, smtp_tokens).check)]
        for source in {id(t): t for t in (imap_tokens, smtp_tokens) if t is not None}.values():
            checks.append((f"oauth:{source.name}", functools.partial(asyncio.to_thread, _token, source)))
    checks.append(("odoo", lambda: asyncio.to_thread(_odoo, cfg)))
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

"""The mailboxes of one bridge, each with its own IMAP intake and watcher, SMTP sender, access
tokens and health, so a mailbox that cannot be read (bad password, revoked token, server down)
only ever holds up its own mail.

With one top-level ``imap:`` the single mailbox keeps the names it always had: services ``imap``
and ``smtp``, state key ``imap_checkpoint``. Listed ``mailboxes:`` are ``imap:<name>``,
``smtp:<name>`` and ``imap_checkpoint:<name>``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import Any

from bridge.auth.tokens import TokenSource
from bridge.auth.vault import TokenVault
from bridge.config import Config, MailboxConfig
from bridge.errors import BridgeError
from bridge.mail.compose import Composer
from bridge.mail.inbox import IdleWatcher
from bridge.mail.smtp import SmtpSender
from bridge.models import ArcEvidence
from bridge.pipeline.context import MailboxSide
from bridge.pipeline.health import CallBook, ServiceHealth
from bridge.pipeline.intake import Intake
from bridge.pipeline.runner import Runner
from bridge.store import Store

log = logging.getLogger("bridge.mailboxes")

ARC_CHECK = Callable[[bytes], ArcEvidence | None]


class Mailbox:
    """One mailbox's moving parts; ``start``/``stop`` are called by the App."""

    def __init__(self, side: MailboxSide, *, legacy: bool, smtp: SmtpSender, imap_tokens: TokenSource | None,
                 smtp_tokens: TokenSource | None) -> None:
        self.side = side
        self.name = side.cfg.name
        suffix = "" if legacy else f":{self.name}"
        self.imap_service, self.smtp_service = f"imap{suffix}", f"smtp{suffix}"
        self.checkpoint_key = f"imap_checkpoint{suffix}"
        self.smtp = smtp
        self.imap_tokens = imap_tokens
        self.smtp_tokens = smtp_tokens
        self.health = {self.imap_service: ServiceHealth(self.imap_service),
                       self.smtp_service: ServiceHealth(self.smtp_service)}
        self.intake: Intake | None = None
        self.watcher: IdleWatcher | None = None

    @property
    def token_sources(self) -> list[TokenSource]:
        return list({id(t): t for t in (self.imap_tokens, self.smtp_tokens) if t is not None}.values())

    def attach(self, cfg: Config, runner: Runner, store: Store, *, prefixes: tuple[str, ...],
               slots: asyncio.Semaphore, locks: dict[str, asyncio.Lock], arc_check: ARC_CHECK | None,
               calls: CallBook | None = None) -> None:
        self.intake = Intake(cfg, runner, store, self.health[self.imap_service], mailbox=self.side.cfg,
                             tokens=self.imap_tokens, checkpoint_key=self.checkpoint_key, prefixes=prefixes,
                             slots=slots, locks=locks, arc_check=arc_check, calls=calls)
        self.watcher = IdleWatcher(self.side.cfg.imap, self.intake.notify_threadsafe, self.imap_tokens,
                                   name=self.imap_service.replace(":", "-"))

    def report(self) -> dict[str, Any]:
        """What /readyz shows of this mailbox."""
        intake, watcher = self.intake, self.watcher
        report: dict[str, Any] = {
            "up": not any(h.is_down for h in self.health.values())
                  and all(t.status()["state"] != "failing" for t in self.token_sources),
            "folder": self.side.cfg.imap.folder,
            "watch": watcher.mode if watcher else "off",
            "backlog": len(intake.backlog) + len(intake.inflight) if intake else 0,
            "reconnects": intake.reconnects if intake else 0,
        }
        if self.token_sources:
            report["oauth"] = {t.name: t.status() for t in self.token_sources}
        return report


def mailbox_tokens(box: MailboxConfig, vault: TokenVault) -> tuple[TokenSource | None, TokenSource | None]:
    """The token sources of a mailbox's IMAP and SMTP logins: one shared source when SMTP uses
    the IMAP credential (one refresh token must never be traded by two sources)."""
    assert box.smtp is not None  # filled in by Config.mailbox_list
    imap_tokens = TokenSource(box.name, box.imap.oauth2, vault, user=box.imap.username) \
        if box.imap.auth == "oauth2" and box.imap.oauth2 else None
    if box.smtp.auth != "oauth2":
        return imap_tokens, None
    if box.smtp.oauth2 is not None and box.smtp.oauth2 != box.imap.oauth2:
        return imap_tokens, TokenSource(f"{box.name}-smtp", box.smtp.oauth2, vault,
                                        user=box.smtp.username or box.smtp.from_address)
    if imap_tokens is None:
        assert box.imap.oauth2 is not None  # checked by Config
        imap_tokens = TokenSource(box.name, box.imap.oauth2, vault, user=box.imap.username)
        return None, imap_tokens
    return imap_tokens, imap_tokens


def build_mailboxes(cfg: Config, state_dir: str, *, domain: str, secret: bytes) -> list[Mailbox]:
    """Every configured mailbox with its composer, SMTP sender and token sources."""
    vault = TokenVault(state_dir)
    legacy = not cfg.mailboxes
    boxes = cfg.mailbox_list
    loop_token = boxes[0].smtp.from_address.lower() if boxes[0].smtp else ""
    built = []
    for box in boxes:
        assert box.smtp is not None
        imap_tokens, smtp_tokens = mailbox_tokens(box, vault)
        composer = Composer(box.templates_dir, from_address=box.smtp.from_address, from_name=box.smtp.from_name,
                            domain=domain, secret=secret, tag_prefix=box.tag_prefix,
                            max_references=cfg.tickets.max_references, mailbox=box.name, loop_token=loop_token)
        built.append(Mailbox(MailboxSide(box, composer), legacy=legacy, smtp=SmtpSender(box.smtp, smtp_tokens),
                             imap_tokens=imap_tokens, smtp_tokens=smtp_tokens))
    return built


async def refresh_tokens(source: TokenSource) -> None:
    """Forever: get a new access token shortly before the current one expires, so a failing
    token endpoint or dead credentials are noticed (and told) before a connection needs one."""
    while True:
        delay = max(1.0, source.refresh_due() - source.clock())
        await asyncio.sleep(delay)
        try:
            await asyncio.to_thread(source.token)
        except BridgeError:
            pass  # told once by the source's on_problem; it retries with backoff


def arc_checker(cfg: Config) -> ARC_CHECK | None:
    """The ARC reader of the automation's sender policy, when it trusts any ARC sealer."""
    policy = cfg.automation.sender
    if not (cfg.automation.enabled and policy.trusted_arc_signers):
        return None
    from bridge.automation.verify import arc_for

    return functools.partial(arc_for, policy=policy)

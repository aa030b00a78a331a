"""The Slack side of one bridge, wired from config: client, notifier, delivery, actions and their intake.

The App builds one when ``slack.enabled`` is set and takes from it the Notifier for the Context,
the outbox handlers (``slack``, ``slack_action``), the HTTP endpoint for signed requests, and the
Socket Mode task when actions come that way.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from bridge.pipeline.context import Context
from bridge.pipeline.health import ServiceHealth
from bridge.pipeline.outbox import Handler
from bridge.slack.actions import SlackActions, SlackEndpoint
from bridge.slack.client import SlackClient
from bridge.slack.deliver import SlackDelivery
from bridge.slack.notify import SlackNotifier
from bridge.slack.socket import SocketModeIntake
from bridge.store import Table

log = logging.getLogger("bridge.slack")

# Slack effects outlive long outages: with the 300 s backoff cap, about eight hours of retries.
MAX_ATTEMPTS = {"slack": 100, "slack_action": 30}


class SlackSide:
    """Everything Slack for one bridge; ``notifier`` is also the Context's."""

    def __init__(self, ctx: Context, health: ServiceHealth, threads: Table) -> None:
        cfg = ctx.cfg.slack
        self.cfg = cfg
        self.client = SlackClient(cfg)
        self.health = health
        self.notifier = SlackNotifier(cfg, ctx.tickets, approvals=cfg.actions != "off" and ctx.automation is not None)
        self.delivery = SlackDelivery(ctx, self.client, health, threads)
        self.actions = SlackActions(ctx, self.client, self.delivery, self.notifier)
        self.endpoint = (SlackEndpoint(cfg.signing_secret.get_secret_value(), self.actions)
                         if cfg.actions == "http" else None)
        self.socket = SocketModeIntake(cfg, self.actions) if cfg.actions == "socket" else None

    @property
    def handlers(self) -> dict[str, Handler]:
        return {"slack": self.delivery.handle, "slack_action": self.actions.perform}

    async def start(self) -> None:
        """Learn the bot's own user id (its messages are never taken for a person's)."""
        self.actions.bind(asyncio.get_running_loop())
        try:
            who: dict[str, Any] = await self.delivery.slack(self.client.auth_test)
        except Exception as exc:  # Slack down at start: posts wait in the outbox; retried by `identify`
            log.warning("slack: auth.test failed at start (%s); Slack effects wait", exc)
            return
        self.actions.bot_user_id = str(who.get("user_id", ""))
        log.info("slack: connected as %s in %s (%s)", who.get("user", "?"), who.get("team", "?"),
                 self.cfg.actions if self.cfg.actions != "off" else "no actions")

    async def run_socket(self) -> None:
        """Socket Mode, kept alive by the App's supervisor (a failed connect is retried with backoff)."""
        assert self.socket is not None
        await asyncio.to_thread(self.socket.start)
        await asyncio.Event().wait()

    def stop(self) -> None:
        if self.socket is not None:
            self.socket.stop()
        self.delivery.executor.shutdown(wait=False, cancel_futures=True)

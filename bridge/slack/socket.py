"""Socket Mode: Slack's actions and thread messages over a WebSocket the bridge opens itself.

For bridges Slack cannot reach (behind NAT, no public URL). slack-sdk's built-in client opens the
connection with the app-level token (``apps.connections.open``), reconnects on its own, and
calls the listener in its own thread. The socket is authenticated, so there is no signature to
check; an envelope is acknowledged only once the request is on disk, so Slack delivers again
whatever a crash or a full disk kept from being recorded.
"""

from __future__ import annotations

import logging

from slack_sdk import WebClient
from slack_sdk.socket_mode.builtin import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from bridge.config import SlackConfig
from bridge.slack.actions import SlackActions

log = logging.getLogger("bridge.slack.socket")

_KINDS = {"interactive": "interactive", "events_api": "events"}


class SocketModeIntake:
    """Runs the Socket Mode connection; ``start`` and ``stop`` are called by the App."""

    def __init__(self, cfg: SlackConfig, actions: SlackActions) -> None:
        self.actions = actions
        web = WebClient(token=cfg.bot_token.get_secret_value(), base_url=cfg.base_url,
                        timeout=int(max(1, round(cfg.timeout_seconds))))
        self.client = SocketModeClient(app_token=cfg.app_token.get_secret_value(), web_client=web,
                                       auto_reconnect_enabled=True, logger=logging.getLogger("bridge.slack.sdk"))
        self.client.socket_mode_request_listeners.append(self._on_request)

    def _on_request(self, client: SocketModeClient, request: SocketModeRequest) -> None:
        kind = _KINDS.get(request.type)
        if kind is None:  # slash commands and the like: acknowledged, nothing to do
            client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id))
            return
        if self.actions.accept(kind, request.payload or {}):
            client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id))
        else:
            log.warning("slack socket: envelope %s not recorded; left for Slack to send again", request.envelope_id)

    def start(self) -> None:
        self.client.connect()
        log.info("slack: Socket Mode connected")

    def stop(self) -> None:
        try:
            self.client.close()
        except Exception:  # closing at shutdown is best effort
            log.debug("slack socket: close failed", exc_info=True)

"""The Slack Web API adapter: slack-sdk's WebClient with explicit retries, its errors translated.

slack-sdk retries only connection errors, once, by default. Here every call retries a 429 after
its Retry-After, and idempotent calls also retry 500/503 and connection errors. chat.postMessage
has no idempotency key, so for it only failures that cannot have posted are retried in place (a
429, a connection that never carried the request); a 5xx, a reset or a timeout after sending
goes back to the outbox, whose handler looks for the message (by its metadata) before posting
again. The client is blocking: the delivery code runs it in worker threads.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.error import URLError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.http_retry import RetryHandler
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from bridge.config import SlackConfig
from bridge.errors import (
    AccessDenied,
    ConfigurationError,
    RateLimited,
    RejectedByService,
    ServiceDown,
    TransientError,
)

log = logging.getLogger("bridge.slack")

# Slack's answers that mean the bot's setup is wrong (token, scopes, membership), not this message.
_CONFIG_ERRORS = frozenset({
    "not_authed", "invalid_auth", "account_inactive", "token_revoked", "token_expired", "no_permission",
    "missing_scope", "not_allowed_token_type", "channel_not_found", "not_in_channel", "is_archived",
    "team_access_not_granted", "ekm_access_denied", "access_denied",
})
_TRANSIENT_ERRORS = frozenset({"ratelimited", "internal_error", "fatal_error", "service_unavailable",
                               "request_timeout"})
# The metadata event type that marks the bridge's own posts (and carries the outbox effect key).
EFFECT_EVENT = "bridge_effect"


def _handlers(max_retries: int, *, idempotent: bool) -> list[RetryHandler]:
    if not idempotent:  # only what cannot have been performed: a 429, or no connection at all
        return [RateLimitErrorRetryHandler(max_retry_count=max_retries),
                ConnectionErrorRetryHandler(max_retry_count=max_retries, error_types=[URLError])]
    return [RateLimitErrorRetryHandler(max_retry_count=max_retries),
            ServerErrorRetryHandler(max_retry_count=max_retries),
            ConnectionErrorRetryHandler(max_retry_count=max_retries)]


def _header(headers: Any, name: str) -> Any:
    for key, value in dict(headers or {}).items():
        if key.lower() == name:
            return value[0] if isinstance(value, list) else value
    return None


def translate(method: str, exc: Exception) -> Exception:
    """A slack-sdk or network error as one of the bridge's errors."""
    if isinstance(exc, SlackApiError):
        status = exc.response.status_code
        error = str(exc.response.get("error") or "") if isinstance(exc.response.data, dict) else ""
        if status == 429 or error == "ratelimited":
            retry_after = _header(exc.response.headers, "retry-after") or 1
            try:
                seconds = float(retry_after)
            except (TypeError, ValueError):
                seconds = 1.0
            return RateLimited(f"{method}: rate limited (retry after {seconds:g}s)", service="slack",
                               retry_after=seconds)
        if status >= 500 or error in _TRANSIENT_ERRORS:
            return TransientError(f"{method}: HTTP {status} {error}".strip(), service="slack")
        if error in ("invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive"):
            return AccessDenied(f"{method}: the bot token was refused ({error})", service="slack")
        if error in _CONFIG_ERRORS:
            return ConfigurationError(f"{method}: {error}", service="slack")
        return RejectedByService(f"{method}: {error or f'HTTP {status}'}", service="slack")
    if isinstance(exc, (URLError, ConnectionError)) and not isinstance(exc, TimeoutError):
        return ServiceDown(f"{method}: cannot reach Slack ({exc.__class__.__name__})", service="slack")
    if isinstance(exc, (TimeoutError, OSError, SlackRequestError)):
        return TransientError(f"{method}: {exc.__class__.__name__}: no answer", service="slack")
    return TransientError(f"{method}: {exc.__class__.__name__}", service="slack")


class SlackClient:
    """The Web API calls the bridge makes; each returns the answer's data or raises a BridgeError."""

    def __init__(self, cfg: SlackConfig) -> None:
        token = cfg.bot_token.get_secret_value()
        common = {"token": token, "base_url": cfg.base_url, "timeout": int(max(1, round(cfg.timeout_seconds)))}
        self._web = WebClient(**common, retry_handlers=_handlers(cfg.max_retries, idempotent=True))
        self._post = WebClient(**common, retry_handlers=_handlers(cfg.max_retries, idempotent=False))
        # slack-sdk takes an int timeout in its signature but passes it to urlopen as is.
        self._web.timeout = self._post.timeout = cfg.timeout_seconds  # type: ignore[assignment]
        self.base_url = cfg.base_url

    def _call(self, client: WebClient, method: str, params: dict[str, Any]) -> dict[str, Any]:
        try:  # the SDK's typed method encodes blocks, metadata and booleans as Slack expects
            response = getattr(client, method.replace(".", "_"))(**params)
        except Exception as exc:  # translated at the edge; the original stays on the chain
            raise translate(method, exc) from exc
        return dict(response.data) if isinstance(response.data, dict) else {}

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """An idempotent call (everything but chat.postMessage), retried inside the client."""
        return self._call(self._web, method, {k: v for k, v in params.items() if v is not None})

    def auth_test(self) -> dict[str, Any]:
        return self.call("auth.test")

    def check(self, channels: list[str]) -> str:
        """`bridge check`: the token works, has chat:write, and the bot is in every channel it posts to."""
        try:
            response = self._web.auth_test()
        except Exception as exc:
            raise translate("auth.test", exc) from exc
        scopes = {s.strip() for s in str(_header(response.headers, "x-oauth-scopes") or "").split(",") if s.strip()}
        if scopes and "chat:write" not in scopes:
            raise ConfigurationError("the bot token lacks the chat:write scope", service="slack")
        for channel in dict.fromkeys(channels):
            info = self.call("conversations.info", channel=channel).get("channel") or {}
            if not info.get("is_member"):
                raise ConfigurationError(f"the bot is not a member of {channel}: invite it there (/invite)",
                                         service="slack")
        return (f"Slack {response.get('team', '?')} as {response.get('user', '?')}: token ok, can post in "
                f"{', '.join(dict.fromkeys(channels))}")

    def post_message(
        self, channel: str, *, text: str, blocks: list[dict] | None = None, thread_ts: str = "",
        effect_key: str = "", broadcast: bool = False,
    ) -> dict[str, Any]:
        """Post; ``effect_key`` goes into the message's metadata so a retry can find it."""
        params: dict[str, Any] = {"channel": channel, "text": text, "unfurl_links": False, "unfurl_media": False}
        if blocks is not None:
            params["blocks"] = blocks
        if thread_ts:
            params["thread_ts"] = thread_ts
            if broadcast:
                params["reply_broadcast"] = True
        if effect_key:
            params["metadata"] = {"event_type": EFFECT_EVENT, "event_payload": {"effect": effect_key}}
        return self._call(self._post, "chat.postMessage", params)

    def update_message(self, channel: str, ts: str, *, text: str, blocks: list[dict]) -> dict[str, Any]:
        """Blocks are always sent: chat.update without them keeps the old ones (python-slack-sdk#523)."""
        return self._call(self._web, "chat.update", {"channel": channel, "ts": ts, "text": text, "blocks": blocks})

    def find_posted(self, channel: str, effect_key: str, *, thread_ts: str = "", oldest: float = 0.0) -> str:
        """The ts of the bridge's message carrying ``effect_key``, or "": the check before a re-post."""
        cursor = None
        for _ in range(20):  # bounded: the message is recent, so it is in the first pages
            if thread_ts:
                page = self.call("conversations.replies", channel=channel, ts=thread_ts, limit=200,
                                 include_all_metadata=True, cursor=cursor)
            else:
                page = self.call("conversations.history", channel=channel, limit=200, include_all_metadata=True,
                                 oldest=f"{oldest:.6f}" if oldest else None, cursor=cursor)
            for message in page.get("messages", []):
                metadata = message.get("metadata") or {}
                if metadata.get("event_type") == EFFECT_EVENT and \
                        (metadata.get("event_payload") or {}).get("effect") == effect_key:
                    return str(message.get("ts", ""))
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not page.get("has_more") or not cursor:
                return ""
        return ""

    def permalink(self, channel: str, ts: str) -> str:
        return str(self.call("chat.getPermalink", channel=channel, message_ts=ts).get("permalink", ""))

    def ephemeral(self, channel: str, user: str, text: str, *, thread_ts: str = "") -> None:
        self.call("chat.postEphemeral", channel=channel, user=user, text=text, thread_ts=thread_ts or None)

    def react(self, channel: str, ts: str, name: str) -> None:
        try:
            self.call("reactions.add", channel=channel, timestamp=ts, name=name)
        except RejectedByService as exc:
            if "already_reacted" not in str(exc):
                raise

    def user_email(self, user_id: str) -> tuple[str, str]:
        """A Slack user's (email, real name); ("", "") when Slack has no email for them."""
        try:
            user = self.call("users.info", user=user_id).get("user") or {}
        except RejectedByService:
            return "", ""
        profile = user.get("profile") or {}
        return str(profile.get("email") or ""), str(user.get("real_name") or profile.get("real_name") or "")

    def group_members(self, group_id: str) -> set[str]:
        return set(self.call("usergroups.users.list", usergroup=group_id).get("users") or [])

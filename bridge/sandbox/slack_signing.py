"""Build Slack's signed interactivity and Events API requests, byte for byte, so tests and the demo can play Slack.

    body = interactivity_body(block_action(user_id="U1", action_id="ticket.take", value="42",
                                           channel="C0SUPPORT", message_ts=ts))
    status, answer = post_signed(bridge_url + "/slack/actions", body, sign(secret, body))

Pure functions on the standard library, except ``post_signed`` (urllib). The signature is the one
Slack documents: ``v0=`` + hex HMAC-SHA256 of ``v0:{timestamp}:{raw body}`` under the signing
secret; receivers reject timestamps more than 300 s away from their clock.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import secrets
import threading
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
VERIFICATION_TOKEN = "sandbox-verification-token"  # Slack's deprecated per-app token, still sent in payloads
_serial = itertools.count(1)
_ts_lock = threading.Lock()
_last_micros = 0


def sign(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The headers Slack sends with `body`: timestamp (default now), signature and a Content-Type
    guessed from the body (JSON if it starts with ``{``, else form-urlencoded)."""
    stamp = int(time.time()) if timestamp is None else int(timestamp)
    base = b"v0:" + str(stamp).encode("ascii") + b":" + body
    digest = hmac.new(secret.encode("utf-8"), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(stamp), "X-Slack-Signature": f"v0={digest}",
            "Content-Type": JSON if body.lstrip().startswith(b"{") else FORM}


def interactivity_body(payload: dict[str, Any]) -> bytes:
    """What Slack POSTs for a button click or modal: form-urlencoded ``payload=<JSON>``."""
    return urlencode({"payload": json.dumps(payload, ensure_ascii=False, separators=(",", ":"))}).encode("ascii")


def event_body(event: dict[str, Any], *, team_id: str, api_app_id: str = "A0SANDBOX",
               event_id: str | None = None) -> bytes:
    """An Events API ``event_callback`` envelope around `event`, as JSON bytes."""
    return _json({"token": VERIFICATION_TOKEN, "team_id": team_id, "api_app_id": api_app_id, "event": event,
                  "type": "event_callback", "event_id": event_id or f"Ev{secrets.token_hex(5).upper()}",
                  "event_time": int(time.time()), "is_ext_shared_channel": False,
                  "event_context": secrets.token_urlsafe(24)})


def url_verification_body(challenge: str) -> bytes:
    """Slack's one-time check of a new Request URL; the receiver must echo ``challenge``."""
    return _json({"token": VERIFICATION_TOKEN, "challenge": challenge, "type": "url_verification"})


def block_action(*, user_id: str, action_id: str, value: str, channel: str, message_ts: str,
                 thread_ts: str | None = None, team_id: str = "T0SANDBOX", response_url: str = "",
                 block_id: str = "actions", username: str | None = None, channel_name: str | None = None,
                 message: dict[str, Any] | None = None, bot_id: str = "B0BRIDGE",
                 api_app_id: str = "A0SANDBOX") -> dict[str, Any]:
    """A ``block_actions`` payload for a click on a button of the message at `message_ts`.

    `message` is the clicked message as stored (e.g. ``sandbox.find(channel, ts)``); without it a
    minimal bot message is made up. Each call gets a unique ``trigger_id`` and ``action_ts``.
    """
    name = username or user_id.lower()
    clicked = dict(message) if message is not None else {"type": "message", "ts": message_ts, "bot_id": bot_id,
                                                         "text": "", "user": "U0BRIDGE"}
    clicked.setdefault("ts", message_ts)
    if thread_ts is not None:
        clicked.setdefault("thread_ts", thread_ts)
    container: dict[str, Any] = {"type": "message", "message_ts": message_ts, "channel_id": channel,
                                 "is_ephemeral": False}
    if thread_ts is not None:
        container["thread_ts"] = thread_ts
    return {
        "type": "block_actions",
        "user": {"id": user_id, "username": name, "name": name, "team_id": team_id},
        "api_app_id": api_app_id,
        "token": VERIFICATION_TOKEN,
        "container": container,
        "trigger_id": f"{int(time.time())}.{next(_serial)}.{secrets.token_hex(16)}",
        "team": {"id": team_id, "domain": "sandbox"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel, "name": channel_name or channel.lower()},
        "message": clicked,
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [{"action_id": action_id, "block_id": block_id, "value": value, "type": "button",
                     "text": {"type": "plain_text", "text": action_id, "emoji": True},
                     "action_ts": _unique_ts()}],
    }


def message_event(*, user_id: str, channel: str, text: str, ts: str, thread_ts: str | None = None,
                  bot_id: str | None = None) -> dict[str, Any]:
    """A ``message`` event as the Events API (or Socket Mode ``events_api``) delivers it.

    With `bot_id` it carries ``subtype: "bot_message"`` as well, so receivers can test their
    "ignore bots, ignore ourselves" rule.
    """
    event: dict[str, Any] = {"type": "message", "user": user_id, "text": text, "ts": ts, "channel": channel,
                             "channel_type": "channel", "event_ts": ts}
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
    if bot_id is not None:
        event["bot_id"] = bot_id
        event["subtype"] = "bot_message"
    return event


def post_signed(url: str, body: bytes, headers: dict[str, str], timeout: float = 5) -> tuple[int, bytes]:
    """POST `body` with `headers`; (status, body) whatever the status, errors of the network raise."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _unique_ts() -> str:
    """A Slack-style timestamp greater than any this process returned before."""
    global _last_micros
    with _ts_lock:
        _last_micros = max(time.time_ns() // 1000, _last_micros + 1)
        micros = _last_micros
    return f"{micros // 10**6}.{micros % 10**6:06d}"

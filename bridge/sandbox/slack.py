"""A stand-in for the Slack Web API and Socket Mode on loopback, with Slack's answers and its failures, for tests and the demo.

    with SlackSandbox() as slack:
        client = WebClient(base_url=slack.url, token=slack.bot_token)
        ts = client.chat_postMessage(channel="C0SUPPORT", text="New ticket")["ts"]
        assert slack.find("C0SUPPORT", ts)["text"] == "New ticket"

Wire format as slack.com/api: POST ``/api/<method>`` (query, form-urlencoded or JSON body; JSON
strings inside a form are decoded), token in ``Authorization: Bearer``. Every answer is HTTP 200
``{"ok": …}`` except the injected faults below and rate limits (429 + ``Retry-After``).

Faults, each armed for the next `n` matching calls (``method=None``: any method) and applied
before the token is checked, in the order armed: ``ratelimit_next`` (429), ``fail_next`` (an HTTP
status; 500 answers Slack's JSON ``internal_error``, any other status a load balancer's plain
text), ``hang_up_next`` (connection closed unanswered), ``slow_next`` (done and stored at once,
answered late: the double-post trap). None of the first three stores anything. Also
``rate_limit_per_channel`` (chat.postMessage's ~1/s/channel), ``revoke_scope`` (missing_scope)
and ``down``/``up`` (nothing listens: connection refused; then the same port again).

Run alone: ``python -m bridge.sandbox.slack --port 8073`` prints ``ready http://…/api/``.
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import math
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

from bridge.sandbox.httpserve import (
    BackgroundHTTPServer,
    KeepAliveHandler,
    serve_until_signalled,
)
from bridge.sandbox.slack_signing import message_event
from bridge.sandbox.slack_socket import SocketModeHub

JSON = "application/json; charset=utf-8"
WORKSPACE = "https://sandbox.slack.com/"
# The scope each method needs (docs.slack.dev/reference/methods); methods not listed need none.
SCOPES = {"chat.postMessage": "chat:write", "chat.update": "chat:write", "chat.postEphemeral": "chat:write",
          "reactions.add": "reactions:write", "users.info": "users:read", "users.lookupByEmail": "users:read.email",
          "usergroups.users.list": "usergroups:read", "conversations.history": "channels:history",
          "conversations.replies": "channels:history", "conversations.info": "channels:read",
          "apps.connections.open": "connections:write"}
Params = dict[str, Any]


class SlackCall(NamedTuple):
    """One API call that reached the stand-in; ``accepted`` means it was answered ``ok: true``."""

    method: str
    params: Params  # token removed, JSON strings (blocks, metadata, attachments) decoded
    at: float  # time.monotonic() on arrival
    accepted: bool
    outcome: str  # "ok", a Slack error code ("ratelimited", "channel_not_found"…), "http 500", "hung up"


class _Refusal(Exception):
    """An ``ok: false`` answer, with Slack's extra fields (``needed``, ``provided``…)."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error, self.extra = error, extra


class _RateLimited(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


@dataclass
class _Fault:
    kind: str  # "ratelimit" | "fail" | "hang_up" | "slow"
    remaining: int
    method: str | None
    value: float  # Retry-After seconds, HTTP status or delay seconds


class _Answer(NamedTuple):
    status: int
    body: bytes
    content_type: str = JSON
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0
    hang_up: bool = False


class SlackSandbox(SocketModeHub, BackgroundHTTPServer):
    """One workspace: channels the bot is a member of, users, user groups, messages, and the faults to play."""

    server_attribute = "slack"  # handler_class is set below _Handler

    def __init__(self, *, bot_token: str = "xoxb-sandbox-bot", app_token: str = "xapp-sandbox-app",
                 signing_secret: str = "sandbox-signing-secret", team_id: str = "T0SANDBOX",
                 bot_user_id: str = "U0BRIDGE", bot_id: str = "B0BRIDGE",
                 channels: Iterable[str] = ("C0SUPPORT", "C0OPS")) -> None:
        SocketModeHub.__init__(self)
        self.bot_token, self.app_token, self.signing_secret = bot_token, app_token, signing_secret
        self.team_id, self.bot_user_id, self.bot_id = team_id, bot_user_id, bot_id
        self.url = ""
        self._host, self._port = "127.0.0.1", 0
        self._down = False
        self._cond = threading.Condition()  # guards everything below; notified when a message is stored
        self._channels: list[str] = []
        self._messages: dict[str, list[dict[str, Any]]] = {}
        self._index: dict[tuple[str, str], dict[str, Any]] = {}  # (channel, ts) → stored message
        self._users: dict[str, dict[str, Any]] = {}
        self._usergroups: dict[str, list[str]] = {}
        self._ephemerals: list[dict[str, Any]] = []
        self._requests: list[SlackCall] = []
        self._faults: list[_Fault] = []
        self._channel_gap: float | None = None
        self._last_post: dict[str, float] = {}  # channel → monotonic time of its last accepted post
        self._scopes = set(SCOPES.values())
        self._last_micros = 0
        for channel in channels:
            self.add_channel(channel)
        self._users[bot_user_id] = {"id": bot_user_id, "team_id": team_id, "name": "bridge", "real_name": "Bridge",
                                    "deleted": False, "is_bot": True,
                                    "profile": {"real_name": "Bridge", "display_name": "bridge", "bot_id": bot_id}}
        self._methods: dict[str, Callable[[Params], Params]] = {
            "auth.test": self._auth_test, "chat.postMessage": self._post_message, "chat.update": self._update,
            "chat.getPermalink": self._permalink, "chat.postEphemeral": self._post_ephemeral,
            "reactions.add": self._react, "users.info": self._user_info,
            "users.lookupByEmail": self._lookup_by_email, "usergroups.users.list": self._usergroup_users,
            "conversations.history": self._history, "conversations.replies": self._replies,
            "conversations.info": self._conversation_info, "apps.connections.open": self._connections_open,
        }
        self._left: set[str] = set()  # channels the bot is not a member of (``leave_channel``)

    # --- lifecycle ---

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve in a background thread; returns ``url``, the WebClient's base_url (``http://…/api/``)."""
        base = super().start(host, port)
        self._host, self._port, self._down = host, int(base.rsplit(":", 1)[1]), False
        self.url = f"{base}/api/"
        return self.url

    def down(self) -> None:
        """Nothing listens any more (connection refused) and open connections, Socket Mode too, are cut."""
        with self._cond:
            self._down = True
        self.drop_socket_connections(silent=True)
        self.stop()

    def up(self) -> None:
        """Listen again on the same port; state and armed faults are kept."""
        if self._server is None:
            self.start(self._host, self._port)

    def reset(self) -> None:
        """Up again, no messages, calls, ephemerals, faults, rate limit, revoked scopes or socket log.

        Channels, users and user groups stay; so do connected Socket Mode clients.
        """
        with self._cond:
            self._messages = {channel: [] for channel in self._channels}
            self._index.clear()
            self._ephemerals.clear()
            self._requests.clear()
            self._faults.clear()
            self._channel_gap = None
            self._last_post.clear()
            self._left.clear()
            self._scopes = set(SCOPES.values())
        self.clear_socket_log()
        if self._down:
            self.up()

    # --- the workspace ---

    def add_channel(self, channel_id: str) -> None:
        with self._cond:
            if channel_id not in self._messages:
                self._channels.append(channel_id)
                self._messages[channel_id] = []

    def add_user(self, user_id: str, email: str, real_name: str, *, name: str | None = None) -> None:
        handle = name or email.split("@", 1)[0]
        with self._cond:
            self._users[user_id] = {"id": user_id, "team_id": self.team_id, "name": handle, "real_name": real_name,
                                    "deleted": False, "is_bot": False,
                                    "profile": {"email": email, "real_name": real_name, "display_name": handle}}

    def add_usergroup(self, group_id: str, user_ids: Iterable[str]) -> None:
        with self._cond:
            self._usergroups[group_id] = list(user_ids)

    @property
    def channels(self) -> list[str]:
        with self._cond:
            return list(self._channels)

    @property
    def users(self) -> dict[str, dict[str, Any]]:
        """user id → user, the bot user included."""
        with self._cond:
            return copy.deepcopy(self._users)

    @property
    def usergroups(self) -> dict[str, list[str]]:
        with self._cond:
            return copy.deepcopy(self._usergroups)

    @property
    def ephemerals(self) -> list[dict[str, Any]]:
        """chat.postEphemeral calls as {channel, user, text, blocks?, thread_ts?, message_ts}."""
        with self._cond:
            return copy.deepcopy(self._ephemerals)

    def channel_messages(self, channel: str) -> list[dict[str, Any]]:
        """Every message of `channel`, replies included, oldest first."""
        with self._cond:
            return copy.deepcopy(self._messages.get(channel, []))

    def top_level(self, channel: str) -> list[dict[str, Any]]:
        """Messages that are not thread replies (broadcast replies excluded), oldest first."""
        return [m for m in self.channel_messages(channel) if m.get("thread_ts", m["ts"]) == m["ts"]]

    def find(self, channel: str, ts: str) -> dict[str, Any] | None:
        with self._cond:
            message = self._index.get((channel, ts))
            return copy.deepcopy(message) if message is not None else None

    def thread(self, channel: str, ts: str) -> list[dict[str, Any]]:
        """[parent, *replies] oldest first for the thread holding `ts` (parent or reply); [] if unknown."""
        with self._cond:
            return copy.deepcopy(self._thread_of(channel, ts))

    def wait_for_messages(self, channel: str, count: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Block until `channel` holds at least `count` messages (replies included); TimeoutError otherwise."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._messages.get(channel, [])) >= count, timeout):
                raise TimeoutError(f"{channel}: fewer than {count} message(s) after {timeout}s")
            return copy.deepcopy(self._messages[channel])

    def user_posts(self, channel: str, user_id: str, text: str, thread_ts: str | None = None) -> dict[str, Any]:
        """Store a person's message (a reply if `thread_ts`) and return the ``message`` event Slack would send."""
        with self._cond:
            if channel not in self._messages:
                raise KeyError(f"unknown channel {channel}")
            message: dict[str, Any] = {"type": "message", "ts": self._next_ts(), "text": text, "user": user_id,
                                       "team": self.team_id}
            try:
                self._store(channel, message, thread_ts)
            except _Refusal as refusal:
                raise ValueError(f"{channel}: {refusal.error} ({thread_ts})") from None
        return message_event(user_id=user_id, channel=channel, text=text, ts=message["ts"], thread_ts=thread_ts)

    # --- calls seen ---

    @property
    def requests(self) -> list[SlackCall]:
        with self._cond:
            return list(self._requests)

    def calls(self, method: str) -> list[Params]:
        """Params of the accepted (``ok: true``) calls of `method`, oldest first."""
        with self._cond:
            return [copy.deepcopy(call.params) for call in self._requests if call.method == method and call.accepted]

    # --- faults ---

    def ratelimit_next(self, n: int = 1, retry_after: int = 1, method: str | None = None) -> None:
        self._arm("ratelimit", n, method, retry_after)

    def fail_next(self, n: int = 1, status: int = 500, method: str | None = None) -> None:
        self._arm("fail", n, method, status)

    def hang_up_next(self, n: int = 1, method: str | None = None) -> None:
        self._arm("hang_up", n, method, 0)

    def slow_next(self, n: int = 1, seconds: float = 1.0, method: str | None = None) -> None:
        self._arm("slow", n, method, seconds)

    def rate_limit_per_channel(self, seconds: float | None) -> None:
        """chat.postMessage to a channel within `seconds` of its previous accepted post → 429; None: off."""
        with self._cond:
            self._channel_gap = seconds

    def revoke_scope(self, scope: str) -> None:
        """Methods needing `scope` (see SCOPES) answer ``missing_scope`` until ``reset``."""
        with self._cond:
            self._scopes.discard(scope)

    def _arm(self, kind: str, n: int, method: str | None, value: float) -> None:
        with self._cond:
            self._faults.append(_Fault(kind, int(n), method, value))

    def _take_fault(self, method: str) -> _Fault | None:
        for fault in self._faults:
            if fault.remaining > 0 and fault.method in (None, method):
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
                return fault
        return None

    # --- serving ---

    def _serve(self, handler: KeepAliveHandler) -> None:
        path, _, query = handler.path.partition("?")
        if path.startswith("/link"):
            self._serve_websocket(handler)
            return
        raw = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        if not path.startswith("/api/"):
            answer = _Answer(404, b"Not Found", "text/plain")
        else:
            auth = handler.headers.get("Authorization", "")
            answer = self._answer(path[5:], query, raw, handler.headers.get("Content-Type", ""),
                                  auth[7:].strip() if auth.lower().startswith("bearer ") else "")
        if answer.hang_up:
            handler.close_connection = True
            return
        if answer.delay > 0:
            time.sleep(answer.delay)  # on this request's own thread: done already, answered late
        try:
            handler.send_response(answer.status)
            handler.send_header("Content-Type", answer.content_type)
            handler.send_header("Content-Length", str(len(answer.body)))
            for name, value in answer.headers:
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(answer.body)
        except OSError:  # the client gave up waiting (slow_next) or we went down meanwhile
            handler.close_connection = True

    def _answer(self, method: str, query: str, raw: bytes, content_type: str, bearer: str) -> _Answer:
        arrived = time.monotonic()
        try:
            params = _parse(query, raw, content_type)
        except ValueError:
            params, bad_body = {}, True
        else:
            bad_body = False
        token = bearer or str(params.get("token", ""))
        params.pop("token", None)
        with self._cond:
            fault = self._take_fault(method)
            kind = fault.kind if fault is not None else ""
            if kind == "hang_up":
                return self._record(method, params, arrived, "hung up", _Answer(0, b"", hang_up=True))
            if kind == "fail" and fault is not None:
                return self._record(method, params, arrived, f"http {int(fault.value)}", _failure(int(fault.value)))
            try:
                if kind == "ratelimit" and fault is not None:
                    raise _RateLimited(int(fault.value))
                if bad_body:
                    raise _Refusal("invalid_form_data")
                handle = self._methods.get(method)
                if handle is None:
                    raise _Refusal("unknown_method", req_method=method)
                self._authorize(method, token)
                if method == "chat.postMessage":
                    self._check_channel_gap(str(params.get("channel", "")), arrived)
                body = {"ok": True, **handle(params)}
                if method == "chat.postMessage":
                    self._last_post[body["channel"]] = arrived
                outcome = "ok"
            except _RateLimited as limited:
                answer = _Answer(429, b'{"ok":false,"error":"ratelimited"}',
                                 headers=(("Retry-After", str(limited.retry_after)),))
                return self._record(method, params, arrived, "ratelimited", answer)
            except _Refusal as refusal:
                body, outcome = {"ok": False, "error": refusal.error, **refusal.extra}, refusal.error
            # Slack names the token's scopes on every answer; `bridge check` reads them from auth.test.
            scopes = (("x-oauth-scopes", ",".join(sorted(self._scopes))),)
            answer = _Answer(200, json.dumps(body, ensure_ascii=False).encode("utf-8"),
                             delay=fault.value if fault is not None and kind == "slow" else 0.0, headers=scopes)
            return self._record(method, params, arrived, outcome, answer)

    def _record(self, method: str, params: Params, at: float, outcome: str, answer: _Answer) -> _Answer:
        self._requests.append(SlackCall(method, params, at, outcome == "ok", outcome))
        return answer

    def _authorize(self, method: str, token: str) -> None:
        if not token:
            raise _Refusal("not_authed")
        wanted, other = ((self.app_token, self.bot_token) if method == "apps.connections.open"
                         else (self.bot_token, self.app_token))
        if token == other:
            raise _Refusal("not_allowed_token_type")
        if token != wanted:
            raise _Refusal("invalid_auth")
        scope = SCOPES.get(method)
        if scope is not None and scope not in self._scopes:
            raise _Refusal("missing_scope", needed=scope, provided=",".join(sorted(self._scopes)))

    def _check_channel_gap(self, channel: str, now: float) -> None:
        last = self._last_post.get(channel)
        if self._channel_gap is not None and last is not None and now - last < self._channel_gap:
            raise _RateLimited(max(1, math.ceil(self._channel_gap - (now - last))))

    # --- storage (callers hold the lock) ---

    def _next_ts(self) -> str:
        """Now, or one microsecond past the previous ts if that is not later: strictly increasing."""
        self._last_micros = max(time.time_ns() // 1000, self._last_micros + 1)
        return _format_ts(self._last_micros)

    def _channel(self, params: Params) -> str:
        channel = str(params.get("channel") or "")
        if channel not in self._messages:
            raise _Refusal("channel_not_found")
        return channel

    def _message(self, channel: str, ts: Any) -> dict[str, Any]:
        message = self._index.get((channel, str(ts or "")))
        if message is None:
            raise _Refusal("message_not_found")
        return message

    def _thread_of(self, channel: str, ts: str) -> list[dict[str, Any]]:
        message = self._index.get((channel, ts))
        if message is None:
            return []
        root = message.get("thread_ts", message["ts"])
        parent = self._index.get((channel, root), message)
        return [parent, *(m for m in self._messages[channel] if m.get("thread_ts") == root and m["ts"] != root)]

    def _store(self, channel: str, message: dict[str, Any], thread_ts: str | None) -> None:
        if thread_ts:
            parent = self._index.get((channel, thread_ts))
            if parent is None or parent.get("thread_ts", parent["ts"]) != parent["ts"]:
                raise _Refusal("thread_not_found")
            message["thread_ts"] = thread_ts
            parent["thread_ts"] = thread_ts
            parent["reply_count"] = parent.get("reply_count", 0) + 1
            users = parent.setdefault("reply_users", [])
            if message["user"] not in users:
                users.append(message["user"])
            parent["reply_users_count"], parent["latest_reply"] = len(users), message["ts"]
        self._messages[channel].append(message)
        self._index[(channel, message["ts"])] = message
        self._cond.notify_all()

    # --- Web API methods (called with the lock held; raise _Refusal for ok: false) ---

    def leave_channel(self, channel: str) -> None:
        """The bot is no longer a member of ``channel`` (conversations.info says so)."""
        with self._cond:
            self._left.add(channel)

    def _conversation_info(self, params: Params) -> Params:
        channel = self._channel(params)
        return {"channel": {"id": channel, "is_channel": True, "is_member": channel not in self._left}}

    def _auth_test(self, params: Params) -> Params:
        return {"url": WORKSPACE, "team": "Sandbox", "user": "bridge", "team_id": self.team_id,
                "user_id": self.bot_user_id, "bot_id": self.bot_id, "is_enterprise_install": False}

    def _post_message(self, params: Params) -> Params:
        channel = self._channel(params)
        text, blocks, metadata = params.get("text"), _json_field(params, "blocks"), _metadata(params)
        if not text and not blocks and not params.get("attachments"):
            raise _Refusal("no_text")
        message: dict[str, Any] = {"type": "message", "ts": self._next_ts(), "text": str(text or ""),
                                   "user": self.bot_user_id, "bot_id": self.bot_id, "team": self.team_id}
        if blocks is not None:
            message["blocks"] = blocks
        if metadata is not None:
            message["metadata"] = metadata
        if "reply_broadcast" in params:
            message["reply_broadcast"] = _flag(params["reply_broadcast"])
            if message["reply_broadcast"] and params.get("thread_ts"):
                message["subtype"] = "thread_broadcast"
        self._store(channel, message, str(params.get("thread_ts") or "") or None)
        return {"channel": channel, "ts": message["ts"], "message": copy.deepcopy(message)}

    def _update(self, params: Params) -> Params:
        channel = self._channel(params)
        message = self._message(channel, params.get("ts"))
        if message.get("user") != self.bot_user_id:
            raise _Refusal("cant_update_message")
        blocks, metadata = _json_field(params, "blocks"), _metadata(params)
        if "text" not in params and blocks is None:
            raise _Refusal("no_text")
        if "text" in params:
            message["text"] = str(params["text"] or "")
        if blocks is not None:  # as Slack: leave blocks out and the old ones stay
            if blocks:
                message["blocks"] = blocks
            else:
                message.pop("blocks", None)
        if metadata is not None:
            message["metadata"] = metadata
        message["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
        return {"channel": channel, "ts": message["ts"], "text": message["text"], "message": copy.deepcopy(message)}

    def _permalink(self, params: Params) -> Params:
        channel = self._channel(params)
        message = self._message(channel, params.get("message_ts"))
        link = f"{WORKSPACE}archives/{channel}/p{message['ts'].replace('.', '')}"
        thread = message.get("thread_ts")
        if thread and thread != message["ts"]:
            link += f"?thread_ts={thread}&cid={channel}"
        return {"channel": channel, "permalink": link}

    def _post_ephemeral(self, params: Params) -> Params:
        channel = self._channel(params)
        user = str(params.get("user") or "")
        if user not in self._users:
            raise _Refusal("user_not_in_channel")
        text, blocks = params.get("text"), _json_field(params, "blocks")
        if not text and not blocks:
            raise _Refusal("no_text")
        note: dict[str, Any] = {"channel": channel, "user": user, "text": str(text or ""), "message_ts": self._next_ts()}
        if blocks is not None:
            note["blocks"] = blocks
        if params.get("thread_ts"):
            note["thread_ts"] = str(params["thread_ts"])
        self._ephemerals.append(note)
        return {"message_ts": note["message_ts"]}

    def _react(self, params: Params) -> Params:
        message = self._message(self._channel(params), params.get("timestamp"))
        name = str(params.get("name") or "").strip(":")
        if not name:
            raise _Refusal("invalid_name")
        reactions = message.setdefault("reactions", [])
        reaction = next((r for r in reactions if r["name"] == name), None)
        if reaction is None:
            reaction = {"name": name, "users": [], "count": 0}
            reactions.append(reaction)
        if self.bot_user_id in reaction["users"]:
            raise _Refusal("already_reacted")
        reaction["users"].append(self.bot_user_id)
        reaction["count"] += 1
        return {}

    def _user_info(self, params: Params) -> Params:
        user = self._users.get(str(params.get("user") or ""))
        if user is None:
            raise _Refusal("user_not_found")
        return {"user": copy.deepcopy(user)}

    def _lookup_by_email(self, params: Params) -> Params:
        email = str(params.get("email") or "").casefold()
        for user in self._users.values():
            if email and str(user["profile"].get("email", "")).casefold() == email:
                return {"user": copy.deepcopy(user)}
        raise _Refusal("users_not_found")

    def _usergroup_users(self, params: Params) -> Params:
        group = self._usergroups.get(str(params.get("usergroup") or ""))
        if group is None:
            raise _Refusal("no_such_subteam")
        return {"users": list(group)}

    def _history(self, params: Params) -> Params:
        """Top-level messages (and broadcast replies) newest first, between oldest and latest, paged."""
        channel = self._channel(params)
        inclusive = _flag(params.get("inclusive"))
        oldest, latest = _ts_key(params.get("oldest") or "0"), params.get("latest")
        newest = _ts_key(latest) if latest else None
        found = [m for m in reversed(self._messages[channel])
                 if (m.get("thread_ts", m["ts"]) == m["ts"] or m.get("subtype") == "thread_broadcast")
                 and (_ts_key(m["ts"]) >= oldest if inclusive else _ts_key(m["ts"]) > oldest)
                 and (newest is None or (_ts_key(m["ts"]) <= newest if inclusive else _ts_key(m["ts"]) < newest))]
        if params.get("cursor"):
            start = _cursor_key(params["cursor"])
            found = [m for m in found if _ts_key(m["ts"]) <= start]
        return _page(found, _limit(params, 100, 999), _flag(params.get("include_all_metadata")))

    def _replies(self, params: Params) -> Params:
        """The parent, then its replies oldest first; continuation pages (cursor) hold replies only."""
        channel = self._channel(params)
        thread = self._thread_of(channel, str(params.get("ts") or ""))
        if not thread:
            raise _Refusal("thread_not_found")
        if params.get("cursor"):
            start = _cursor_key(params["cursor"])
            thread = [m for m in thread[1:] if _ts_key(m["ts"]) >= start]
        return _page(thread, _limit(params, 1000, 1000), _flag(params.get("include_all_metadata")))

    def _connections_open(self, params: Params) -> Params:
        return {"url": f"ws://{self._host}:{self._port}/link/?ticket={self._issue_ticket()}&app_id={self.app_id}"}


class _Handler(KeepAliveHandler):
    """Hands every request (Web API call or Socket Mode upgrade) to the stand-in."""

    def _serve(self) -> None:
        self.server.slack._serve(self)  # type: ignore[attr-defined]

    do_GET = do_POST = _serve


SlackSandbox.handler_class = _Handler


# --- pure helpers ---

def _parse(query: str, raw: bytes, content_type: str) -> Params:
    """Query and body merged; JSON bodies keep their types, form values are strings. ValueError if malformed."""
    params: Params = dict(parse_qsl(query, keep_blank_values=True))
    if "json" in content_type.lower():
        body = json.loads(raw.decode("utf-8") or "{}")
        if not isinstance(body, dict):
            raise ValueError("a JSON body must be an object")
        params.update(body)
    elif raw:
        params.update(parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False))
    for name in ("blocks", "attachments", "metadata"):
        if isinstance(params.get(name), str) and params[name].strip():
            try:
                params[name] = json.loads(params[name])
            except ValueError:
                pass  # left a string: the method refuses it
    return params


def _json_field(params: Params, name: str) -> list[Any] | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, list):
        raise _Refusal(f"invalid_{name}")
    return copy.deepcopy(value)


def _metadata(params: Params) -> dict[str, Any] | None:
    value = params.get("metadata")
    if value is None or value == "":
        return None
    if not isinstance(value, dict) or not isinstance(value.get("event_type"), str):
        raise _Refusal("invalid_metadata_format")
    return {"event_type": value["event_type"], "event_payload": copy.deepcopy(value.get("event_payload") or {})}


def _flag(value: Any) -> bool:
    return value is True or str(value).strip().lower() in ("1", "true")


def _limit(params: Params, default: int, most: int) -> int:
    try:
        limit = int(params.get("limit") or default)
    except (TypeError, ValueError):
        raise _Refusal("invalid_limit") from None
    return min(max(limit, 1), most)


def _ts_key(ts: Any) -> int:
    """A ts as integer microseconds, so "1700000000.000100" compares exactly (a float would not)."""
    whole, _, fraction = str(ts).partition(".")
    try:
        return int(whole or 0) * 10**6 + int((fraction + "000000")[:6])
    except ValueError:
        raise _Refusal("invalid_ts_oldest") from None


def _format_ts(micros: int) -> str:
    return f"{micros // 10**6}.{micros % 10**6:06d}"


def _cursor(message: dict[str, Any]) -> str:
    """Slack's cursor format: base64 of ``next_ts:<ts digits>``."""
    return base64.b64encode(f"next_ts:{_ts_key(message['ts'])}".encode()).decode()


def _cursor_key(cursor: Any) -> int:
    try:
        kind, _, micros = base64.b64decode(str(cursor), validate=True).decode().partition(":")
        if kind != "next_ts":
            raise ValueError(kind)
        return int(micros)
    except ValueError:
        raise _Refusal("invalid_cursor") from None


def _page(found: list[dict[str, Any]], limit: int, with_metadata: bool) -> Params:
    page = [{k: copy.deepcopy(v) for k, v in m.items() if with_metadata or k != "metadata"} for m in found[:limit]]
    more = len(found) > limit
    return {"messages": page, "has_more": more,
            "response_metadata": {"next_cursor": _cursor(found[limit]) if more else ""}}


def _failure(status: int) -> _Answer:
    if status == 500:
        return _Answer(500, b'{"ok":false,"error":"internal_error"}')
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    return _Answer(status, f"{status} {phrase}\n".encode(), "text/plain; charset=utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bridge.sandbox.slack", description=SlackSandbox.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--channel", action="append", help="a channel id (repeatable; default C0SUPPORT, C0OPS)")
    opts = parser.parse_args(argv)
    sandbox = SlackSandbox(channels=opts.channel or ("C0SUPPORT", "C0OPS"))
    return serve_until_signalled(sandbox, opts.host, opts.port)


if __name__ == "__main__":
    sys.exit(main())

"""The Slack stand-in driven through the real slack_sdk: Web API answers, faults, Socket Mode and signed requests."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.error import URLError
from urllib.parse import parse_qs, urlsplit

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import (
    FixedValueRetryIntervalCalculator,
)
from slack_sdk.signature import Clock, SignatureVerifier
from slack_sdk.socket_mode.builtin import SocketModeClient
from slack_sdk.socket_mode.builtin.internals import _build_data_frame_for_sending
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from bridge.sandbox.slack import SlackSandbox
from bridge.sandbox.slack_signing import (
    block_action,
    event_body,
    interactivity_body,
    message_event,
    post_signed,
    sign,
    url_verification_body,
)
from bridge.sandbox.slack_socket import OP_CLOSE, OP_TEXT, encode_frame, read_frame

pytestmark = pytest.mark.integration

C, OPS = "C0SUPPORT", "C0OPS"
CARD = [{"type": "section", "text": {"type": "mrkdwn", "text": "*Ticket #42*"}}]
FAST = FixedValueRetryIntervalCalculator(0.05)


@pytest.fixture(scope="module")
def slack_server() -> Iterator[SlackSandbox]:
    with SlackSandbox() as sandbox:
        sandbox.add_user("U0ALICE", "Alice@Customer.example", "Alice Example")
        sandbox.add_user("U0BOB", "bob@support.example", "Bob Agent")
        sandbox.add_usergroup("S0LEADS", ["U0BOB"])
        yield sandbox


@pytest.fixture
def slack(slack_server: SlackSandbox) -> SlackSandbox:
    slack_server.reset()
    return slack_server


def web(slack: SlackSandbox, **options: Any) -> WebClient:
    return WebClient(base_url=slack.url, token=slack.bot_token, **options)


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def error_of(call: Callable[[], Any]) -> SlackApiError:
    with pytest.raises(SlackApiError) as caught:
        call()
    return caught.value


# --- Web API answers ---

def test_auth_test_and_tokens(slack: SlackSandbox) -> None:
    answer = web(slack).auth_test()
    assert (answer["team_id"], answer["user_id"], answer["bot_id"]) == ("T0SANDBOX", "U0BRIDGE", "B0BRIDGE")
    assert answer["url"] == "https://sandbox.slack.com/"
    assert error_of(lambda: WebClient(base_url=slack.url, token="xoxb-wrong").auth_test()).response["error"] \
        == "invalid_auth"
    assert error_of(lambda: WebClient(base_url=slack.url).auth_test()).response["error"] == "not_authed"
    assert error_of(lambda: WebClient(base_url=slack.url, token=slack.app_token).auth_test()).response["error"] \
        == "not_allowed_token_type"
    assert error_of(lambda: web(slack).apps_connections_open(app_token="xapp-wrong")).response["error"] \
        == "invalid_auth"
    assert web(slack).apps_connections_open(app_token=slack.app_token)["url"].startswith("ws://127.0.0.1:")
    assert [call.outcome for call in slack.requests] == ["ok", "invalid_auth", "not_authed", "not_allowed_token_type",
                                                        "invalid_auth", "ok"]


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")  # the no_text case, on purpose
def test_post_thread_and_replies_in_order_with_paging(slack: SlackSandbox) -> None:
    client = web(slack)
    parent = client.chat_postMessage(channel=C, text="New ticket", blocks=CARD)
    assert parent["channel"] == C and parent["message"]["blocks"] == CARD
    replies = [client.chat_postMessage(channel=C, text=f"reply {i}", thread_ts=parent["ts"])["ts"] for i in range(5)]
    stored = slack.find(C, parent["ts"])
    assert stored is not None and stored["thread_ts"] == parent["ts"] and stored["reply_count"] == 5
    assert [m["ts"] for m in slack.thread(C, replies[2])] == [parent["ts"], *replies]

    seen, cursor, pages = [], None, 0
    while True:
        page = client.conversations_replies(channel=C, ts=parent["ts"], limit=2, cursor=cursor)
        seen += [m["ts"] for m in page["messages"]]
        pages += 1
        cursor = page["response_metadata"]["next_cursor"]
        assert page["has_more"] == bool(cursor)
        if not cursor:
            break
    assert seen == [parent["ts"], *replies] and pages == 3
    assert [m["text"] for m in client.conversations_replies(channel=C, ts=replies[0])["messages"]][:2] \
        == ["New ticket", "reply 0"]

    for kwargs, error in [({"channel": C, "text": "x", "thread_ts": "1.000001"}, "thread_not_found"),
                          ({"channel": C, "text": "x", "thread_ts": replies[0]}, "thread_not_found"),
                          ({"channel": "C0NOWHERE", "text": "x"}, "channel_not_found"),
                          ({"channel": C}, "no_text")]:
        assert error_of(lambda kwargs=kwargs: client.chat_postMessage(**kwargs)).response["error"] == error
    assert error_of(lambda: client.conversations_replies(channel=C, ts="1.000001")).response["error"] \
        == "thread_not_found"
    assert len(slack.channel_messages(C)) == 6 and len(slack.calls("chat.postMessage")) == 6


def test_history_is_newest_first_paged_and_shows_metadata_only_when_asked(slack: SlackSandbox) -> None:
    client = web(slack)
    meta = {"event_type": "bridge_ticket", "event_payload": {"ticket_id": 42}}
    tops = [client.chat_postMessage(channel=C, text=f"top {i}", metadata=meta)["ts"] for i in range(3)]
    client.chat_postMessage(channel=C, text="quiet reply", thread_ts=tops[0])
    broadcast = client.chat_postMessage(channel=C, text="loud reply", thread_ts=tops[0], reply_broadcast=True)["ts"]

    first = client.conversations_history(channel=C, limit=2)
    assert [m["ts"] for m in first["messages"]] == [broadcast, tops[2]] and first["has_more"]
    rest = client.conversations_history(channel=C, limit=2, cursor=first["response_metadata"]["next_cursor"])
    assert [m["ts"] for m in rest["messages"]] == [tops[1], tops[0]] and not rest["has_more"]
    assert all("metadata" not in m for m in first["messages"] + rest["messages"])
    with_meta = client.conversations_history(channel=C, include_all_metadata=True, oldest=tops[0])
    assert [m["ts"] for m in with_meta["messages"]] == [broadcast, tops[2], tops[1]]  # oldest is exclusive
    assert with_meta["messages"][1]["metadata"] == meta
    replies = client.conversations_replies(channel=C, ts=tops[0], include_all_metadata=True)["messages"]
    assert replies[0]["metadata"] == meta and "metadata" not in client.conversations_replies(
        channel=C, ts=tops[0])["messages"][0]
    assert [m["ts"] for m in slack.top_level(C)] == tops


def test_ts_values_increase_strictly_across_the_workspace(slack: SlackSandbox) -> None:
    client = web(slack)
    stamps = [client.chat_postMessage(channel=(C, OPS)[i % 2], text=str(i))["ts"] for i in range(30)]
    stamps.append(slack.user_posts(C, "U0ALICE", "hello")["ts"])
    assert all(len(ts.split(".")[1]) == 6 for ts in stamps)
    assert [Decimal(ts) for ts in stamps] == sorted({Decimal(ts) for ts in stamps})


def test_update_without_blocks_keeps_them_and_with_blocks_replaces_them(slack: SlackSandbox) -> None:
    client = web(slack)
    ts = client.chat_postMessage(channel=C, text="Ticket #42: open", blocks=CARD)["ts"]
    answer = client.chat_update(channel=C, ts=ts, text="Ticket #42: taken")
    assert (answer["ts"], answer["text"]) == (ts, "Ticket #42: taken")
    kept = slack.find(C, ts)
    assert kept is not None and kept["blocks"] == CARD and kept["text"] == "Ticket #42: taken" and "edited" in kept
    card = [{"type": "section", "text": {"type": "mrkdwn", "text": "*Ticket #42* taken by <@U0BOB>"}}]
    client.chat_update(channel=C, ts=ts, text="Ticket #42: taken", blocks=card)
    assert slack.find(C, ts)["blocks"] == card  # type: ignore[index]
    assert error_of(lambda: client.chat_update(channel=C, ts="1.000001", text="x")).response["error"] \
        == "message_not_found"
    theirs = slack.user_posts(C, "U0ALICE", "my own words")["ts"]
    assert error_of(lambda: client.chat_update(channel=C, ts=theirs, text="x")).response["error"] \
        == "cant_update_message"


def test_form_encoded_calls_decode_json_strings(slack: SlackSandbox) -> None:
    """Older SDKs and other clients send chat.postMessage as a form, ``blocks`` as a JSON string."""
    answer = web(slack).api_call("chat.postMessage", params={"channel": C, "text": "form", "blocks": json.dumps(CARD),
                                                           "reply_broadcast": False})
    stored = slack.find(C, answer["ts"])
    assert stored is not None and stored["blocks"] == CARD and stored["reply_broadcast"] is False
    assert slack.calls("chat.postMessage")[0]["blocks"] == CARD


def test_people_groups_reactions_permalinks_ephemerals_and_scopes(slack: SlackSandbox) -> None:
    client = web(slack)
    assert client.users_lookupByEmail(email="alice@customer.example")["user"]["id"] == "U0ALICE"
    assert error_of(lambda: client.users_lookupByEmail(email="nobody@x.example")).response["error"] \
        == "users_not_found"
    assert client.users_info(user="U0BOB")["user"]["profile"]["email"] == "bob@support.example"
    assert error_of(lambda: client.users_info(user="U0GHOST")).response["error"] == "user_not_found"
    assert client.usergroups_users_list(usergroup="S0LEADS")["users"] == ["U0BOB"]
    assert error_of(lambda: client.usergroups_users_list(usergroup="S0NONE")).response["error"] == "no_such_subteam"

    parent = client.chat_postMessage(channel=C, text="card")["ts"]
    reply = client.chat_postMessage(channel=C, text="note", thread_ts=parent)["ts"]
    client.reactions_add(channel=C, timestamp=parent, name="eyes")
    assert error_of(lambda: client.reactions_add(channel=C, timestamp=parent, name="eyes")).response["error"] \
        == "already_reacted"
    assert slack.find(C, parent)["reactions"] == [{"name": "eyes", "users": ["U0BRIDGE"], "count": 1}]  # type: ignore[index]
    assert client.chat_getPermalink(channel=C, message_ts=parent)["permalink"] \
        == f"https://sandbox.slack.com/archives/{C}/p{parent.replace('.', '')}"
    assert client.chat_getPermalink(channel=C, message_ts=reply)["permalink"] \
        == f"https://sandbox.slack.com/archives/{C}/p{reply.replace('.', '')}?thread_ts={parent}&cid={C}"

    ephemeral = client.chat_postEphemeral(channel=C, user="U0BOB", text="only you", thread_ts=parent)
    assert slack.ephemerals == [{"channel": C, "user": "U0BOB", "text": "only you", "thread_ts": parent,
                                 "message_ts": ephemeral["message_ts"]}]
    slack.revoke_scope("users:read.email")
    refused = error_of(lambda: client.users_lookupByEmail(email="alice@customer.example")).response
    assert (refused["error"], refused["needed"]) == ("missing_scope", "users:read.email")


def test_user_posts_store_a_reply_and_return_its_event(slack: SlackSandbox) -> None:
    parent = web(slack).chat_postMessage(channel=C, text="card")["ts"]
    event = slack.user_posts(C, "U0BOB", "on it", thread_ts=parent)
    assert event == message_event(user_id="U0BOB", channel=C, text="on it", ts=event["ts"], thread_ts=parent)
    assert [m["user"] for m in slack.thread(C, parent)] == ["U0BRIDGE", "U0BOB"]
    assert slack.find(C, parent)["reply_users"] == ["U0BOB"]  # type: ignore[index]
    with pytest.raises(ValueError):
        slack.user_posts(C, "U0BOB", "lost", thread_ts="1.000001")


# --- faults ---

def test_per_channel_rate_limit_answers_429_and_the_sdk_handler_gets_through(slack: SlackSandbox) -> None:
    slack.rate_limit_per_channel(0.5)
    plain = web(slack, retry_handlers=[])
    plain.chat_postMessage(channel=C, text="first")
    limited = error_of(lambda: plain.chat_postMessage(channel=C, text="too soon")).response
    assert (limited.status_code, limited["error"], limited.headers["Retry-After"]) == (429, "ratelimited", "1")
    plain.chat_postMessage(channel=OPS, text="other channel, own budget")
    patient = web(slack, retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=2)])
    patient.chat_postMessage(channel=C, text="second")
    assert [m["text"] for m in slack.channel_messages(C)] == ["first", "second"]
    assert [c.outcome for c in slack.requests if c.params.get("channel") == C][:2] == ["ok", "ratelimited"]


def test_ratelimit_next_can_target_one_method(slack: SlackSandbox) -> None:
    client = web(slack, retry_handlers=[])
    slack.ratelimit_next(1, retry_after=7, method="chat.update")
    ts = client.chat_postMessage(channel=C, text="a")["ts"]
    limited = error_of(lambda: client.chat_update(channel=C, ts=ts, text="b")).response
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "7")
    assert client.chat_update(channel=C, ts=ts, text="b")["text"] == "b"


def test_server_errors_with_the_sdk_server_error_handler(slack: SlackSandbox) -> None:
    slack.fail_next(1, status=500)
    retrying = web(slack, retry_handlers=[ServerErrorRetryHandler(max_retry_count=1, interval_calculator=FAST)])
    retrying.chat_postMessage(channel=C, text="after a 500")
    assert [c.outcome for c in slack.requests] == ["http 500", "ok"] and len(slack.channel_messages(C)) == 1
    slack.fail_next(1, status=503)
    failed = error_of(lambda: web(slack, retry_handlers=[]).chat_postMessage(channel=C, text="lost")).response
    assert failed.status_code == 503 and failed["ok"] is False  # plain text body: the SDK reports it unparsed
    assert len(slack.channel_messages(C)) == 1


def test_hang_up_stores_nothing_and_the_default_handler_retries(slack: SlackSandbox) -> None:
    slack.hang_up_next(1)
    with pytest.raises((ConnectionError, URLError)):
        web(slack, retry_handlers=[]).chat_postMessage(channel=C, text="never answered")
    assert slack.channel_messages(C) == [] and slack.requests[0].outcome == "hung up"
    slack.hang_up_next(1, method="chat.postMessage")
    web(slack).chat_postMessage(channel=C, text="second try")  # ConnectionErrorRetryHandler: one retry
    assert [m["text"] for m in slack.channel_messages(C)] == ["second try"]


def test_slow_answer_times_the_client_out_although_the_post_happened(slack: SlackSandbox) -> None:
    slack.slow_next(1, seconds=1.5, method="chat.postMessage")
    with pytest.raises((TimeoutError, URLError)):
        web(slack, timeout=0.5, retry_handlers=[]).chat_postMessage(channel=C, text="did it post?")
    assert [m["text"] for m in slack.channel_messages(C)] == ["did it post?"]
    assert len(slack.calls("chat.postMessage")) == 1


def test_down_refuses_connections_and_up_serves_again_on_the_same_url(slack: SlackSandbox) -> None:
    url = slack.url
    web(slack).chat_postMessage(channel=C, text="before")
    slack.down()
    with pytest.raises(URLError):
        web(slack, retry_handlers=[]).auth_test()
    slack.up()
    assert slack.url == url and web(slack).auth_test()["ok"]
    assert [m["text"] for m in slack.channel_messages(C)] == ["before"]


# --- Socket Mode ---

@pytest.fixture
def socket_client(slack: SlackSandbox) -> Iterator[tuple[SocketModeClient, list[SocketModeRequest]]]:
    client = SocketModeClient(app_token=slack.app_token, web_client=web(slack), ping_interval=0.3,
                              auto_reconnect_enabled=True)
    received: list[SocketModeRequest] = []

    def ack(sdk: Any, request: SocketModeRequest) -> None:
        received.append(request)
        sdk.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id, payload={"seen": True}))

    client.socket_mode_request_listeners.append(ack)
    try:
        yield client, received
    finally:
        client.auto_reconnect_enabled = False
        slack.drop_socket_connections()  # else close() waits out the SDK's 3 s blocking recv
        client.close()
        assert wait_until(lambda: slack.socket_clients == 0)


def test_socket_mode_delivers_events_takes_acks_and_survives_a_drop(
        slack: SlackSandbox, socket_client: tuple[SocketModeClient, list[SocketModeRequest]]) -> None:
    client, received = socket_client
    hellos: list[dict[str, Any]] = []
    client.message_listeners.append(lambda _sdk, message, _raw: hellos.append(message)
                                    if message.get("type") == "hello" else None)
    client.connect()
    assert slack.wait_for_socket_client(5)
    assert wait_until(lambda: hellos and client.current_session.last_ping_pong_time is not None)  # pong came back
    assert hellos[0]["connection_info"] == {"app_id": "A0SANDBOX"} and hellos[0]["num_connections"] == 1

    payload = block_action(user_id="U0BOB", action_id="ticket.take", value="42", channel=C, message_ts="1.000001")
    first = slack.send_socket_event("interactive", payload)
    assert slack.wait_for_ack(first, 5)
    assert received[0].type == "interactive" and received[0].payload == payload
    assert slack.socket_ack(first) == {"envelope_id": first, "payload": {"seen": True}}

    assert slack.drop_socket_connections() == 1
    assert slack.wait_for_socket_client(5)  # the SDK called apps.connections.open again
    big = {"type": "event_callback", "event": {"type": "message", "text": "x" * 70_000}}  # a 64-bit length frame
    second = slack.send_socket_event("events_api", big)
    assert slack.wait_for_ack(second, 5)
    assert received[-1].payload == big
    assert slack.socket_acks == [first, second] and len(slack.calls("apps.connections.open")) == 2


def test_socket_refresh_request_moves_the_client_to_a_new_connection(
        slack: SlackSandbox, socket_client: tuple[SocketModeClient, list[SocketModeRequest]]) -> None:
    client, _ = socket_client
    client.connect()
    assert slack.wait_for_socket_client(5)
    assert slack.request_socket_refresh() == 1
    assert wait_until(lambda: slack.socket_connections_opened == 2 and slack.socket_clients == 1)
    envelope = slack.send_socket_event("slash_commands", {"command": "/ticket", "text": "42"})
    assert slack.wait_for_ack(envelope, 5)


@pytest.mark.parametrize("size", [0, 125, 126, 65_535, 65_536, 200_000])
def test_frames_the_sdk_masks_are_read_back(size: int) -> None:
    """Client frames as the SDK builds them (masked, 7-, 16- and 64-bit lengths), and ours unmasked."""
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    frame = _build_data_frame_for_sending(payload, OP_TEXT)
    assert read_frame(io.BytesIO(frame)) == (True, OP_TEXT, payload)
    assert read_frame(io.BytesIO(encode_frame(OP_TEXT, payload)), require_mask=False) == (True, OP_TEXT, payload)
    assert read_frame(io.BytesIO(frame[: len(frame) // 2])) is None  # cut short: the peer is gone


def _handshake(url: str) -> tuple[socket.socket, bytes]:
    """A raw RFC 6455 opening handshake with the RFC's sample key; returns the socket and the response head."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=3)
    sock.sendall(f"GET {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.hostname}\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 "Sec-WebSocket-Version: 13\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        if not chunk:
            break
        head += chunk
    return sock, head


def test_socket_handshake_tickets_are_single_use_and_unmasked_frames_are_refused(slack: SlackSandbox) -> None:
    url = web(slack).apps_connections_open(app_token=slack.app_token)["url"]
    sock, head = _handshake(url)
    with sock:
        assert head.startswith(b"HTTP/1.1 101") and b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head
        stream = sock.makefile("rb")
        fin, opcode, hello = read_frame(stream, require_mask=False)  # type: ignore[misc]
        assert (fin, opcode, json.loads(hello)["type"]) == (True, OP_TEXT, "hello")
        sock.sendall(encode_frame(OP_TEXT, b'{"envelope_id": "x"}'))  # unmasked: a protocol error
        fin, opcode, reason = read_frame(stream, require_mask=False)  # type: ignore[misc]
        assert opcode == OP_CLOSE and reason[:2] == b"\x03\xea"  # 1002
    again, head = _handshake(url)
    with again:
        assert head.startswith(b"HTTP/1.1 401")
    assert slack.socket_acks == []


# --- signed requests ---

def test_signatures_verify_with_the_sdk_and_stale_ones_do_not() -> None:
    secret = "sandbox-signing-secret"
    payload = block_action(user_id="U0BOB", action_id="ticket.take", value="42", channel=C,
                           message_ts="1700000000.000100", thread_ts="1700000000.000100")
    body = interactivity_body(payload)
    headers = sign(secret, body)
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert SignatureVerifier(secret).is_valid_request(body, headers)
    assert not SignatureVerifier("another-secret").is_valid_request(body, headers)
    assert not SignatureVerifier(secret).is_valid_request(body + b"x", headers)
    assert not SignatureVerifier(secret).is_valid_request(body, sign(secret, body, int(time.time()) - 301))

    class Later(Clock):
        def now(self) -> float:
            return time.time() + 299

    assert SignatureVerifier(secret, Later()).is_valid_request(body, headers)
    assert json.loads(parse_qs(body.decode())["payload"][0]) == payload
    again = block_action(user_id="U0BOB", action_id="ticket.take", value="42", channel=C, message_ts="1.1")
    assert again["trigger_id"] != payload["trigger_id"]
    assert again["actions"][0]["action_ts"] != payload["actions"][0]["action_ts"]
    assert payload["container"]["thread_ts"] == payload["message"]["thread_ts"] == "1700000000.000100"

    event = event_body(message_event(user_id="U0ALICE", channel=C, text="hi", ts="1.2", bot_id="B9"),
                       team_id="T0SANDBOX")
    assert sign(secret, event)["Content-Type"] == "application/json"
    decoded = json.loads(event)
    assert decoded["type"] == "event_callback" and decoded["event"]["subtype"] == "bot_message"
    assert json.loads(url_verification_body("abc"))["challenge"] == "abc"


def test_post_signed_delivers_a_request_a_receiver_can_verify() -> None:
    seen: dict[str, Any] = {}

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen["valid"] = SignatureVerifier("s3cret").is_valid_request(body, dict(self.headers))
            self.send_response(200 if seen["valid"] else 401)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/slack/events"
        body = event_body({"type": "app_mention", "text": "hi"}, team_id="T0SANDBOX")
        assert post_signed(url, body, sign("s3cret", body)) == (200, b"ok") and seen["valid"]
        assert post_signed(url, body, sign("wrong", body))[0] == 401
    finally:
        server.shutdown()
        server.server_close()

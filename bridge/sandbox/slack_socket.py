"""Socket Mode for the Slack stand-in: a hand-written RFC 6455 server side and the envelopes Slack sends over it.

The Slack stand-in mixes ``SocketModeHub`` in. ``apps.connections.open`` issues a one-time
ticket; the client's ``GET /link/?ticket=…`` with ``Upgrade: websocket`` is taken over from the
HTTP handler (same port as the Web API), greeted with Slack's ``hello`` and then kept open:
pings are answered with pongs, text frames carrying an ``envelope_id`` are recorded as acks.

Only what Slack's Socket Mode needs is implemented: server→client frames are unmasked text,
close and pong; client→server frames must be masked (RFC 6455 5.1, else close 1002); lengths up
to 64 bits; fragmented messages are joined. No extensions, no subprotocols, no TLS (``ws://``).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import secrets
import socket
import struct
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler
from typing import Any, BinaryIO
from urllib.parse import parse_qs, urlsplit

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
EVENT_TYPES = ("interactive", "events_api", "slash_commands")


class ProtocolError(Exception):
    """The peer broke RFC 6455; the connection is closed with ``code``."""

    def __init__(self, message: str, code: int = 1002) -> None:
        super().__init__(message)
        self.code = code


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a client's ``Sec-WebSocket-Key``: base64(sha1(key + GUID))."""
    return base64.b64encode(hashlib.sha1((key.strip() + GUID).encode("ascii")).digest()).decode("ascii")


def encode_frame(opcode: int, payload: bytes = b"", *, fin: bool = True) -> bytes:
    """One unmasked frame, as a server sends it (7-, 16- or 64-bit length)."""
    head = bytes([(0x80 if fin else 0) | opcode])
    length = len(payload)
    if length <= 125:
        head += bytes([length])
    elif length <= 0xFFFF:
        head += struct.pack("!BH", 126, length)
    else:
        head += struct.pack("!BQ", 127, length)
    return head + payload


def _read_exactly(stream: BinaryIO, count: int) -> bytes | None:
    data = stream.read(count) if count else b""
    return data if data is not None and len(data) == count else None


def read_frame(stream: BinaryIO, *, require_mask: bool = True) -> tuple[bool, int, bytes] | None:
    """(fin, opcode, unmasked payload) of the next frame; None when the peer has gone (EOF)."""
    head = _read_exactly(stream, 2)
    if head is None:
        return None
    fin, opcode, masked, length = bool(head[0] & 0x80), head[0] & 0x0F, bool(head[1] & 0x80), head[1] & 0x7F
    if head[0] & 0x70:
        raise ProtocolError("reserved bits set without an extension")
    if length in (126, 127):
        raw = _read_exactly(stream, 2 if length == 126 else 8)
        if raw is None:
            return None
        length = struct.unpack("!H" if len(raw) == 2 else "!Q", raw)[0]
    if require_mask and not masked:
        raise ProtocolError("client frames must be masked")
    mask = _read_exactly(stream, 4) if masked else b""
    payload = _read_exactly(stream, length)
    if mask is None or payload is None:
        return None
    if masked:
        payload = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    return fin, opcode, payload


class _Link:
    """One upgraded connection; sends are serialised so events, pongs and closes never interleave."""

    def __init__(self, sock: socket.socket) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.sock = sock
        self.opened_at = time.monotonic()
        self.pings = 0
        self.refreshing = False  # told to move: closed as soon as a newer connection is up
        self._send_lock = threading.Lock()

    def send(self, opcode: int, payload: bytes = b"") -> bool:
        """False if the connection is already gone."""
        with self._send_lock:
            try:
                self.sock.sendall(encode_frame(opcode, payload))
                return True
            except OSError:
                return False

    def send_json(self, message: dict[str, Any]) -> bool:
        return self.send(OP_TEXT, json.dumps(message, ensure_ascii=False).encode("utf-8"))

    def cut(self, code: int | None = 1001, reason: str = "") -> None:
        """Send a close frame (unless ``code`` is None: a silent network cut), then end the TCP connection."""
        if code is not None:
            self.send(OP_CLOSE, struct.pack("!H", code) + reason.encode("utf-8"))
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class SocketModeHub:
    """Tickets, live Socket Mode connections, envelopes sent and acks received; mixed into the Slack stand-in."""

    app_id = "A0SANDBOX"

    def __init__(self) -> None:
        self._socket_cond = threading.Condition()
        self._tickets: set[str] = set()
        self._links: list[_Link] = []  # oldest first
        self._links_opened = 0
        self._sent: list[dict[str, Any]] = []
        self._acks: dict[str, dict[str, Any]] = {}  # envelope id → the client's whole ack message
        self._ack_order: list[str] = []

    # --- what tests steer and read ---

    def send_socket_event(self, type: str, payload: dict[str, Any], *, retry_attempt: int = 0,
                          retry_reason: str = "", accepts_response_payload: bool = False) -> str:
        """Deliver one envelope to the newest connected client (Slack picks one connection per envelope).

        Returns its ``envelope_id``; raises RuntimeError when no client is connected.
        """
        if type not in EVENT_TYPES:
            raise ValueError(f"envelope type must be one of {EVENT_TYPES}, not {type!r}")
        envelope = {"envelope_id": str(uuid.uuid4()), "type": type, "payload": copy.deepcopy(payload),
                    "accepts_response_payload": accepts_response_payload, "retry_attempt": retry_attempt,
                    "retry_reason": retry_reason}
        with self._socket_cond:
            links = list(reversed(self._links))
        for link in links:
            if link.send_json(envelope):
                with self._socket_cond:
                    self._sent.append(envelope)
                return str(envelope["envelope_id"])
        raise RuntimeError("no Socket Mode client is connected")

    def request_socket_refresh(self, reason: str = "refresh_requested") -> int:
        """Send Slack's ``disconnect`` message (as before its periodic refresh): the SDK opens a new
        connection; the stand-in closes the old one once that is up. Returns how many were told."""
        with self._socket_cond:
            links = list(self._links)
            for link in links:
                link.refreshing = True
        message = {"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-sandbox"}}
        return sum(link.send_json(message) for link in links)

    def drop_socket_connections(self, *, silent: bool = False) -> int:
        """Close every Socket Mode connection (close frame 1001, or a silent TCP cut with ``silent``).

        They are forgotten at once, so ``wait_for_socket_client`` then waits for a reconnection.
        """
        with self._socket_cond:
            links, self._links = self._links, []
        for link in links:
            link.cut(None if silent else 1001, "" if silent else "going away")
        return len(links)

    def wait_for_socket_client(self, timeout: float = 5.0, count: int = 1) -> bool:
        """True once at least `count` clients are connected (within `timeout` seconds)."""
        with self._socket_cond:
            return self._socket_cond.wait_for(lambda: len(self._links) >= count, timeout)

    def wait_for_ack(self, envelope_id: str, timeout: float = 5.0) -> bool:
        """True once the client acked `envelope_id` (within `timeout` seconds)."""
        with self._socket_cond:
            return self._socket_cond.wait_for(lambda: envelope_id in self._acks, timeout)

    @property
    def socket_acks(self) -> list[str]:
        """Acked envelope ids, in the order the acks arrived."""
        with self._socket_cond:
            return list(self._ack_order)

    def socket_ack(self, envelope_id: str) -> dict[str, Any] | None:
        """The whole ack message (``envelope_id`` and any ``payload``), or None if not acked."""
        with self._socket_cond:
            ack = self._acks.get(envelope_id)
            return copy.deepcopy(ack) if ack is not None else None

    @property
    def socket_events(self) -> list[dict[str, Any]]:
        """Envelopes delivered so far, oldest first."""
        with self._socket_cond:
            return copy.deepcopy(self._sent)

    @property
    def socket_clients(self) -> int:
        """Clients connected now."""
        with self._socket_cond:
            return len(self._links)

    @property
    def socket_connections_opened(self) -> int:
        """Connections accepted since the last ``clear_socket_log`` (reconnections included)."""
        with self._socket_cond:
            return self._links_opened

    def clear_socket_log(self) -> None:
        """Forget envelopes, acks and the connection count; connected clients stay connected."""
        with self._socket_cond:
            self._sent.clear()
            self._acks.clear()
            self._ack_order.clear()
            self._links_opened = len(self._links)

    # --- serving ---

    def _issue_ticket(self) -> str:
        ticket = secrets.token_hex(16)
        with self._socket_cond:
            self._tickets.add(ticket)
        return ticket

    def _serve_websocket(self, handler: BaseHTTPRequestHandler) -> None:
        """Take over the HTTP connection of a ``GET /link/?ticket=…``: check it, upgrade it, serve it until it closes."""
        handler.close_connection = True
        ticket = (parse_qs(urlsplit(handler.path).query).get("ticket") or [""])[0]
        with self._socket_cond:
            known = ticket in self._tickets
            self._tickets.discard(ticket)  # one use, as Slack's are: every reconnection opens a new URL
        key = handler.headers.get("Sec-WebSocket-Key", "")
        if handler.headers.get("Upgrade", "").lower() != "websocket" or not key:
            return _refuse(handler, 400, "expected a WebSocket upgrade")
        if not known:
            return _refuse(handler, 401, "invalid or used ticket: call apps.connections.open")
        handler.send_response(101, "Switching Protocols")
        handler.send_header("Upgrade", "websocket")
        handler.send_header("Connection", "Upgrade")
        handler.send_header("Sec-WebSocket-Accept", accept_key(key))
        handler.end_headers()
        handler.wfile.flush()
        handler.connection.settimeout(None)  # the client pings; a stopped stand-in cuts the socket
        link = _Link(handler.connection)
        with self._socket_cond:
            moved = [old for old in self._links if old.refreshing]
            self._links = [old for old in self._links if not old.refreshing] + [link]
            self._links_opened += 1
            count = len(self._links)
            self._socket_cond.notify_all()
        for old in moved:
            old.cut(1001, "refreshed")
        link.send_json({"type": "hello", "num_connections": count,
                        "debug_info": {"host": "applink-sandbox", "build_number": 1,
                                       "approximate_connection_time": 18060},
                        "connection_info": {"app_id": self.app_id}})
        try:
            self._read_loop(link, handler.rfile)  # type: ignore[arg-type]
        finally:
            with self._socket_cond:
                if link in self._links:
                    self._links.remove(link)
                self._socket_cond.notify_all()

    def _read_loop(self, link: _Link, stream: BinaryIO) -> None:
        parts: list[bytes] = []
        message_opcode = OP_TEXT
        while True:
            try:
                frame = read_frame(stream)
            except ProtocolError as error:
                link.cut(error.code, str(error))
                return
            except (OSError, ValueError):  # reset by the peer, or the stream closed under us
                return
            if frame is None:
                return
            fin, opcode, payload = frame
            if opcode == OP_PING:
                link.pings += 1
                link.send(OP_PONG, payload)
            elif opcode == OP_CLOSE:
                link.cut(struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1000)
                return
            elif opcode in (OP_TEXT, OP_BINARY, OP_CONTINUATION):
                if opcode != OP_CONTINUATION:
                    parts, message_opcode = [], opcode
                parts.append(payload)
                if fin and message_opcode == OP_TEXT:
                    self._receive_text(b"".join(parts))
            # pongs and unknown control frames are ignored

    def _receive_text(self, data: bytes) -> None:
        """An ack is ``{"envelope_id": …}``, maybe with a ``payload``; anything else is ignored, as Slack does."""
        try:
            message = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return
        envelope_id = message.get("envelope_id") if isinstance(message, dict) else None
        if not isinstance(envelope_id, str):
            return
        with self._socket_cond:
            if envelope_id not in self._acks:
                self._ack_order.append(envelope_id)
            self._acks[envelope_id] = message
            self._socket_cond.notify_all()


def _refuse(handler: BaseHTTPRequestHandler, status: int, reason: str) -> None:
    body = json.dumps({"ok": False, "error": reason}).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json; charset=utf-8")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)

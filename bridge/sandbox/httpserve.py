"""The lifecycle the HTTP stand-ins share: serve a handler class on loopback from a daemon thread, start, stop, ``with``."""

from __future__ import annotations

import signal
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Self


class _Server(ThreadingHTTPServer):
    """One thread per connection; a deep listen queue so bursts of clients are not made to retry SYNs.

    Connections are kept alive (HTTP/1.1, as real Odoo's threaded server does) and tracked, so
    ``close_connections`` can cut them all: a stopped stand-in must look like a dead server, not
    keep answering on connections opened before it stopped.
    """

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            live = list(self._connections)
        for connection in live:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:  # already closed by the client
                pass


class KeepAliveHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with persistent connections; an idle connection is closed after ``timeout`` seconds."""

    protocol_version = "HTTP/1.1"
    timeout = 30

    def setup(self) -> None:
        """TCP_NODELAY, as production servers set it: headers and body go out as two writes, and
        on a kept-alive connection Nagle's algorithm would hold the body back until the client's
        delayed ACK (about 40 ms on Linux) on every single response."""
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Quiet: tests and the demo have their own logs."""


class BackgroundHTTPServer:
    """Mixin: ``start`` serves ``handler_class`` in a daemon thread, the server reaching us as ``server.<server_attribute>``."""

    handler_class: ClassVar[type[BaseHTTPRequestHandler]]
    server_attribute: ClassVar[str]  # the name the handler reads this object under, on its server
    thread_name: ClassVar[str | None] = None  # None: the class's name
    url = ""
    _server: _Server | None = None
    _thread: threading.Thread | None = None

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve in a background thread; returns the base URL (port 0 picks a free one)."""
        if self._server is not None:
            raise RuntimeError(f"{type(self).__name__} already started")
        server = _Server((host, port), self.handler_class)
        setattr(server, self.server_attribute, self)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=self.thread_name or type(self).__name__, daemon=True)
        self._thread.start()
        self.url = f"http://{host}:{server.server_address[1]}"
        return self.url

    def stop(self) -> None:
        """Stop listening and cut open connections (new ones are then refused); safe to call twice."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def serve_until_signalled(server: BackgroundHTTPServer, host: str, port: int) -> int:
    """For `python -m bridge.sandbox.X`: start, print ``ready <url>`` for the parent process,
    serve until SIGTERM or SIGINT, stop."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    print(f"ready {server.start(host, port)}", flush=True)
    while not stop.wait(0.5):
        pass
    server.stop()
    return 0

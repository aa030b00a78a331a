"""The lifecycle the HTTP stand-ins share: serve a handler class on loopback from a daemon thread, start, stop, ``with``."""

from __future__ import annotations

import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import ClassVar, Self


class _Server(ThreadingHTTPServer):
    """One thread per request; a deep listen queue so bursts of clients are not made to retry SYNs."""

    daemon_threads = True
    request_queue_size = 128


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
        """Stop listening (connections are then refused; requests being answered finish); safe to call twice."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
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

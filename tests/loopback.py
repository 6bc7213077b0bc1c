"""A threaded HTTP server on 127.0.0.1, served from a daemon thread (test doubles use it)."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class QuietHandler(BaseHTTPRequestHandler):
    """An HTTP/1.1 handler that logs nothing and answers without Nagle's delay."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without this, Nagle's algorithm and
        # the client's delayed ACK add ~40 ms to every answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class ServerThread:
    """Serve `server` until `stop`; `host` is `127.0.0.1:PORT`."""

    def __init__(self, server: ThreadingHTTPServer, name: str) -> None:
        server.daemon_threads = True
        self.server = server
        self.thread = threading.Thread(
            target=server.serve_forever, args=(0.02,), name=name, daemon=True
        )
        self.thread.start()

    @property
    def host(self) -> str:
        address, port = self.server.server_address[:2]
        return f"{address!s}:{port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class LoopbackService:
    """`start`/`stop`, `with`, and `url` for a test double served from a `ServerThread`.

    Subclasses give `make_handler()` and a `service_name`, and start with `_serving = None`.
    """

    _serving: ServerThread | None
    service_name: str

    def make_handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def start(self) -> None:
        if self._serving is not None:
            raise RuntimeError(f"{self.service_name} is already running")
        server = ThreadingHTTPServer(("127.0.0.1", 0), self.make_handler())
        self._serving = ServerThread(server, self.service_name)

    def stop(self) -> None:
        if self._serving is not None:
            self._serving.stop()
        self._serving = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`."""
        if self._serving is None:
            raise RuntimeError(f"{self.service_name} is not running")
        return f"http://{self._serving.host}"

"""A threaded HTTP server on 127.0.0.1, served from a daemon thread (test doubles use it)."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer


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

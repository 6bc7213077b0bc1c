"""A loopback HTTP server that answers from a test's script and records what it was sent.

It stands in for a hostile registry, or for the "other host" a registry sends a client to (a
storage redirect, an upload `Location`, a token realm): every request is kept as a `Seen`
(method, path with query, headers, body), so a test can assert which host received which
`Authorization`. A script is a function `Seen -> Reply`; a `Reply` may trickle its body (or
the whole answer, status line included) a byte at a time, for deadline tests.

Each server listens on 127.0.0.1 only, serves from daemon threads, and stops on `stop()` /
leaving `with`. A trickle ends after `trickle_limit` seconds even if the client still
listens, so no test can hang on its own server.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from tests.loopback import LoopbackService, QuietHandler

MAX_BODY = 64 << 20


@dataclass(frozen=True)
class Seen:
    """One request as the server received it (header names in lower case)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")


@dataclass
class Reply:
    """What to answer: status, headers, body; `trickle` seconds between bytes of the body
    (with `trickle_all`, of the status line and headers too)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    trickle: float | None = None
    trickle_all: bool = False


Script = Callable[[Seen], Reply]


def basic(username: str, password: str) -> str:
    """The `Authorization` value for Basic credentials."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def redirect(location: str, status: int = 307) -> Reply:
    return Reply(status, {"Location": location})


class LyingRegistry(LoopbackService):
    """A scripted registry (or other host) on 127.0.0.1; `seen` lists the requests."""

    service_name = "lying-registry"

    def __init__(self, script: Script | None = None, *, trickle_limit: float = 20.0) -> None:
        self._serving = None
        self.script: Script = script or (lambda seen: Reply(404))
        self.trickle_limit = trickle_limit
        self._seen: list[Seen] = []
        self._lock = threading.Lock()
        self.trickled = 0  # bytes of trickled answers written so far

    @property
    def seen(self) -> list[Seen]:
        with self._lock:
            return list(self._seen)

    @property
    def host(self) -> str:
        """`127.0.0.1:PORT`, as a registry name."""
        return self.url.removeprefix("http://")

    def make_handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(QuietHandler):
            def _handle(self) -> None:
                seen = Seen(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    self._body(),
                )
                with server._lock:
                    server._seen.append(seen)
                reply = server.script(seen)
                self._answer(reply)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data = bytearray()
                    while len(data) <= MAX_BODY:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            self.rfile.readline()
                            break
                        data += self.rfile.read(size)
                        self.rfile.readline()
                    return bytes(data)
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(min(length, MAX_BODY))

            def _answer(self, reply: Reply) -> None:
                headers = {"Content-Length": str(len(reply.body)), **reply.headers}
                head = f"HTTP/1.1 {reply.status} Scripted\r\n" + "".join(
                    f"{k}: {v}\r\n" for k, v in headers.items()
                )
                head_bytes = (head + "\r\n").encode("latin-1")
                body = b"" if self.command == "HEAD" else reply.body
                try:
                    if reply.trickle is None:
                        self.wfile.write(head_bytes + body)
                    elif reply.trickle_all:
                        self._trickle(head_bytes + body, reply.trickle)
                    else:
                        self.wfile.write(head_bytes)
                        self._trickle(body, reply.trickle)
                    self.wfile.flush()
                except OSError:  # the client gave up: that is what trickle tests expect
                    self.close_connection = True

            def _trickle(self, data: bytes, pause: float) -> None:
                ends = time.monotonic() + server.trickle_limit
                for i in range(len(data)):
                    if time.monotonic() > ends:
                        self.close_connection = True
                        return
                    self.wfile.write(data[i : i + 1])
                    self.wfile.flush()
                    with server._lock:
                        server.trickled += 1
                    time.sleep(pause)

        return Handler

"""A fault-injecting HTTP reverse proxy on loopback, for putting in front of the test registry.

Requests are forwarded to the upstream registry one upstream connection per request; bodies
are streamed both ways (chunked request bodies included) and the client's connection is kept
alive when the response length is known. The ``Host`` header is passed through unchanged, so
the registry's absolute ``Location`` URLs point back at the proxy.

Faults are programmed per request pattern (method, and a regex searched in the URL path
without its query) and consumed in order; the first live fault that matches a request applies:

- :meth:`FaultProxy.reset_connection`: forward the request, then send a TCP reset after
  ``after_bytes`` bytes of the response body (``after_bytes=None``: reset at once, without
  forwarding the request);
- :meth:`FaultProxy.fail`: answer ``status`` (e.g. 500, 429 with ``Retry-After``) without
  forwarding;
- :meth:`FaultProxy.truncate`: forward, announce the full ``Content-Length``, send only
  ``after_bytes`` bytes and close;
- :meth:`FaultProxy.serve_wrong_body`: forward, but replace the response body (e.g. a blob
  whose bytes do not match its digest; ``Docker-Content-Digest`` is kept as the registry sent
  it).

Every request is recorded (:class:`ProxiedRequest`) with the bytes it carried each way, so a
test can assert what a client sent, e.g. that re-pushing an unchanged artifact sends no blob
bytes: ``proxy.request_bytes(path=r"/blobs/uploads/") == 0``. A record is complete before
the client sees the end of its response.
"""

from __future__ import annotations

import enum
import http.client
import itertools
import json
import re
import socket
import struct
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import urlsplit

from tests.loopback import QuietHandler, ServerThread

_HOP_BY_HOP: Final = frozenset(
    {
        "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "te", "trailer",
        "transfer-encoding", "upgrade",
    }
)  # fmt: skip
_COPY_SIZE: Final = 64 * 1024
_ERROR_CODES: Final = {429: "TOOMANYREQUESTS", 503: "UNAVAILABLE", 401: "UNAUTHORIZED"}


class FaultKind(enum.Enum):
    RESET = "reset"
    STATUS = "status"
    TRUNCATE = "truncate"
    WRONG_BODY = "wrong-body"


@dataclass
class Fault:
    """One programmed fault. ``remaining`` is how many more requests it applies to (``None``:
    all of them); ``hits`` how many it has applied to so far."""

    kind: FaultKind
    method: str | None
    path: re.Pattern[str]
    remaining: int | None = 1
    after_bytes: int | None = None
    status: int = 500
    retry_after: str | None = None
    body: bytes = b""
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.remaining == 0:
            return False
        if self.method is not None and self.method.upper() != method:
            return False
        return self.path.search(path) is not None


@dataclass
class ProxiedRequest:
    """What the proxy saw of one request. ``status`` is ``None`` when no response was sent
    (a reset before the response); ``connection`` numbers the client connection it came on
    (equal numbers: kept alive); ``request_bytes`` counts body bytes received from the
    client, ``response_bytes`` body bytes sent to it; ``fault`` names the fault applied."""

    method: str
    path: str
    query: str
    connection: int = 0
    status: int | None = None
    request_bytes: int = 0
    response_bytes: int = 0
    fault: FaultKind | None = None


@dataclass(frozen=True)
class Upstream:
    host: str
    port: int


class FaultProxy:
    """A loopback reverse proxy to ``upstream`` (``"127.0.0.1:PORT"``, plain HTTP)."""

    def __init__(self, upstream: str) -> None:
        host, _, port = upstream.rpartition(":")
        self.upstream = Upstream(host, int(port))
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._requests: list[ProxiedRequest] = []
        self._connections = itertools.count(1)
        self.errors: list[BaseException] = []
        self._serving: ServerThread | None = None

    # lifecycle

    def start(self) -> None:
        proxy = self

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                # Connection errors are expected when faults are injected; keep them for tests
                # that want to look, and keep stderr quiet.
                error = sys.exc_info()[1]
                if error is not None:
                    with proxy._lock:
                        proxy.errors.append(error)

        self._serving = ServerThread(Server(("127.0.0.1", 0), _handler(self)), "fault-proxy")

    def stop(self) -> None:
        if self._serving is not None:
            self._serving.stop()
        self._serving = None

    def __enter__(self) -> FaultProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT`` of the proxy (what goes into a reference)."""
        if self._serving is None:
            raise RuntimeError("the proxy is not running")
        return self._serving.host

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    # programming faults

    def reset_connection(
        self,
        method: str | None,
        path: str,
        *,
        after_bytes: int | None = 0,
        times: int | None = 1,
    ) -> Fault:
        """Reset the TCP connection after ``after_bytes`` bytes of the response body (0: right
        after the headers; ``None``: at once, before forwarding the request upstream)."""
        return self._add(Fault(FaultKind.RESET, method, re.compile(path), times, after_bytes))

    def fail(
        self,
        status: int,
        method: str | None,
        path: str,
        *,
        times: int | None = 1,
        retry_after: int | str | None = None,
    ) -> Fault:
        """Answer ``status`` with a distribution-style JSON error for the next ``times``
        matching requests, without forwarding them (their request bodies are read and
        counted)."""
        return self._add(
            Fault(
                FaultKind.STATUS, method, re.compile(path), times, status=status,
                retry_after=None if retry_after is None else str(retry_after),
            )
        )  # fmt: skip

    def truncate(
        self, method: str | None, path: str, *, after_bytes: int, times: int | None = 1
    ) -> Fault:
        """Forward, but send only ``after_bytes`` bytes of the body (the headers still announce
        the full ``Content-Length``), then close the connection cleanly."""
        return self._add(Fault(FaultKind.TRUNCATE, method, re.compile(path), times, after_bytes))

    def serve_wrong_body(
        self, path: str, body: bytes, *, method: str | None = "GET", times: int | None = 1
    ) -> Fault:
        """Forward, but answer with ``body`` instead of the registry's body (``Content-Length``
        adjusted, every other header kept)."""
        return self._add(Fault(FaultKind.WRONG_BODY, method, re.compile(path), times, body=body))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                    fault.hits += 1
                    return fault
        return None

    # traffic

    @property
    def requests(self) -> list[ProxiedRequest]:
        """Every request so far, oldest first (a copy of the list)."""
        with self._lock:
            return list(self._requests)

    def clear_log(self) -> None:
        with self._lock:
            self._requests.clear()

    def matching(self, method: str | None = None, path: str | None = None) -> list[ProxiedRequest]:
        """Requests with this method (any if ``None``) whose path matches the regex ``path``."""
        pattern = re.compile(path) if path is not None else None
        return [
            r
            for r in self.requests
            if (method is None or r.method == method.upper())
            and (pattern is None or pattern.search(r.path) is not None)
        ]

    def count(self, method: str | None = None, path: str | None = None) -> int:
        return len(self.matching(method, path))

    def request_bytes(self, method: str | None = None, path: str | None = None) -> int:
        """Body bytes the client sent in matching requests."""
        return sum(r.request_bytes for r in self.matching(method, path))

    def response_bytes(self, method: str | None = None, path: str | None = None) -> int:
        """Body bytes sent to the client in answer to matching requests."""
        return sum(r.response_bytes for r in self.matching(method, path))

    def _record(self, request: ProxiedRequest) -> None:
        with self._lock:
            self._requests.append(request)


class _Reset(Exception):
    """Raised inside the handler to abort the exchange with a TCP reset."""


def _handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        timeout = 60

        def setup(self) -> None:
            super().setup()
            self.connection_number = next(proxy._connections)

        def handle_one_request(self) -> None:
            try:
                super().handle_one_request()
            except _Reset:
                self._send_reset()

        def _forward(self) -> None:
            url = urlsplit(self.path)
            record = ProxiedRequest(self.command, url.path, url.query, self.connection_number)
            proxy._record(record)
            fault = proxy._take_fault(self.command, url.path)
            if fault is not None:
                record.fault = fault.kind
            if fault is not None and fault.kind is FaultKind.RESET and fault.after_bytes is None:
                raise _Reset
            if fault is not None and fault.kind is FaultKind.STATUS:
                for _ in self._request_body(record):
                    pass
                self._answer_error(record, fault)
                return
            upstream = http.client.HTTPConnection(
                proxy.upstream.host, proxy.upstream.port, timeout=60
            )
            try:
                self._send_upstream(upstream, record)
                response = upstream.getresponse()
                self._relay(response, record, fault)
            finally:
                upstream.close()

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _forward

        # request

        def _request_body(self, record: ProxiedRequest) -> Any:
            """The request body's bytes, in pieces, counted into ``record``."""
            encoding = (self.headers.get("Transfer-Encoding") or "").lower()
            if "chunked" in encoding:
                while True:
                    size_line = self.rfile.readline(1024)
                    if not size_line:
                        raise ConnectionError("client closed a chunked body early")
                    size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        return
                    while size:
                        piece = self.rfile.read(min(size, _COPY_SIZE))
                        if not piece:
                            raise ConnectionError("client closed a chunked body early")
                        size -= len(piece)
                        record.request_bytes += len(piece)
                        yield piece
                    self.rfile.readline(1024)  # CRLF after the chunk
            else:
                remaining = int(self.headers.get("Content-Length") or 0)
                while remaining:
                    piece = self.rfile.read(min(remaining, _COPY_SIZE))
                    if not piece:
                        raise ConnectionError("client closed the body early")
                    remaining -= len(piece)
                    record.request_bytes += len(piece)
                    yield piece

        def _send_upstream(
            self, upstream: http.client.HTTPConnection, record: ProxiedRequest
        ) -> None:
            upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            chunked = "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
            for name, value in self.headers.items():
                if name.lower() not in _HOP_BY_HOP:
                    upstream.putheader(name, value)
            if chunked:
                upstream.putheader("Transfer-Encoding", "chunked")
            upstream.endheaders()
            for piece in self._request_body(record):
                if chunked:
                    upstream.send(b"%x\r\n%b\r\n" % (len(piece), piece))
                else:
                    upstream.send(piece)
            if chunked:
                upstream.send(b"0\r\n\r\n")

        # response

        def _relay(
            self,
            response: http.client.HTTPResponse,
            record: ProxiedRequest,
            fault: Fault | None,
        ) -> None:
            has_body = self.command != "HEAD" and response.status not in (204, 304)
            has_body = has_body and response.status >= 200
            headers = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
            if fault is not None and fault.kind is FaultKind.WRONG_BODY and has_body:
                while response.read(_COPY_SIZE):
                    pass
                headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
                headers.append(("Content-Length", str(len(fault.body))))
                self._send_head(record, response.status, response.reason, headers)
                record.response_bytes += len(fault.body)
                self.wfile.write(fault.body)
                return
            chunked = has_body and response.getheader("Content-Length") is None
            if chunked:
                headers.append(("Transfer-Encoding", "chunked"))
            self._send_head(record, response.status, response.reason, headers)
            limit = None
            if fault is not None and fault.kind in (FaultKind.RESET, FaultKind.TRUNCATE):
                limit = fault.after_bytes
            sent = 0
            while has_body:
                piece = response.read(_COPY_SIZE)
                if limit is not None:
                    piece = piece[: limit - sent]
                if piece:
                    record.response_bytes += len(piece)
                    sent += len(piece)
                    self.wfile.write(b"%x\r\n%b\r\n" % (len(piece), piece) if chunked else piece)
                if limit is not None and sent >= limit:
                    break
                if not piece:
                    if chunked:
                        self.wfile.write(b"0\r\n\r\n")
                    break
            if fault is not None and fault.kind is FaultKind.RESET:
                raise _Reset
            if fault is not None and fault.kind is FaultKind.TRUNCATE:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_WR)

        def _send_head(
            self, record: ProxiedRequest, status: int, reason: str, headers: list[tuple[str, str]]
        ) -> None:
            record.status = status
            self.send_response_only(status, reason or None)
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()

        def _answer_error(self, record: ProxiedRequest, fault: Fault) -> None:
            code = _ERROR_CODES.get(fault.status, "UNKNOWN")
            payload = json.dumps(
                {"errors": [{"code": code, "message": f"injected by the fault proxy ({code})"}]}
            ).encode()
            headers = [
                ("Content-Type", "application/json; charset=utf-8"),
                ("Docker-Distribution-Api-Version", "registry/2.0"),
                ("Content-Length", str(len(payload))),
            ]
            if fault.retry_after is not None:
                headers.append(("Retry-After", fault.retry_after))
            self._send_head(record, fault.status, "", headers)
            if self.command != "HEAD":
                record.response_bytes += len(payload)
                self.wfile.write(payload)

        def _send_reset(self) -> None:
            """Abort the connection with RST (SO_LINGER 0), not a FIN."""
            self.close_connection = True
            sock = self.connection
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            # The socket's file descriptor is only released once its makefile() reader is
            # closed too; the writer here is unbuffered and holds no reference.
            self.rfile.close()
            sock.close()

    return Handler


__all__ = ["Fault", "FaultKind", "FaultProxy", "ProxiedRequest"]

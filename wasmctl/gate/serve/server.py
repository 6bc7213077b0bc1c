"""HTTPS for `gate serve`: asyncio streams, TLS from the standard library, HTTP/1.1 parsed
by h11 (the parser httpx already brings; a sans-I/O state machine, strict about framing).

Why not a framework: an admission webhook is four routes of small JSON, and what matters
is what frameworks hide: the TLS context must change under live connections (a rotated
certificate: each handshake picks the current context through `sni_callback`, which
OpenSSL calls for every ClientHello, with or without SNI), every read has a bound in bytes
and time, and a draining server closes its idle keep-alive connections (the apiserver
keeps them, and sticks to one replica otherwise: kubernetes#127335). The closing note of
issue 13 gives the measurements against uvicorn.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs, urlsplit

import h11

from wasmctl.errors import InputError, WasmctlError
from wasmctl.gate.serve.admission import Admission, Decision, _log, audit_line
from wasmctl.gate.serve.metrics import CONTENT_TYPE as METRICS_TYPE
from wasmctl.gate.serve.metrics import Metrics
from wasmctl.gate.serve.review import MAX_BODY_BYTES, ReviewError, parse_review, response

MAX_HEAD_BYTES = 16 << 10  # request line and headers
HEAD_TIMEOUT = 10.0  # a request, once begun, has this long to send its head
IDLE_TIMEOUT = 120.0  # a keep-alive connection with no request (the apiserver's: 90 s)
HANDSHAKE_TIMEOUT = 10.0
DRAIN_TIMEOUT = 30.0  # the longest an admission deadline can be
MAX_CONNECTIONS = 256  # open at once; an apiserver keeps up to 25 idle per webhook
READ_CHUNK = 64 << 10
SERVER = b"wasmctl"


class CertificateError(InputError):
    """The serving certificate or key cannot be used."""


def _context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError, ValueError) as e:
        reason = getattr(e, "strerror", None) or getattr(e, "reason", None) or str(e)
        raise CertificateError(
            f"cannot use the TLS certificate {cert} with the key {key}: {reason}",
            hint="give a PEM certificate (chain) and its PEM private key, unencrypted",
        ) from None
    return context


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class Certificates:
    """The serving certificate, reloaded when its files change. A handshake takes the
    context in force when it starts; connections already open keep theirs."""

    def __init__(self, cert: Path, key: Path, metrics: Metrics) -> None:
        self.cert, self.key, self.metrics = cert, key, metrics
        self._seen = (_stat(cert), _stat(key))
        self.current = _context(cert, key)
        self.listening = _context(cert, key)
        self.listening.sni_callback = self._pick

    def _pick(self, connection: Any, server_name: str | None, context: ssl.SSLContext) -> None:
        connection.context = self.current

    def check(self) -> bool:
        """Load the files again if they changed; True when the new pair is in force. A
        half-written pair (the certificate renewed, the key not yet) leaves the old one."""
        seen = (_stat(self.cert), _stat(self.key))
        if seen == self._seen:
            return False
        try:
            fresh = _context(self.cert, self.key)
        except CertificateError as e:
            self.metrics.reloads.inc(what="certificate", result="error")
            _log(f"certificate not reloaded, the one in force stays: {e.message}")
            return False
        self._seen = seen
        self.current = fresh
        self.metrics.reloads.inc(what="certificate", result="ok")
        _log(f"certificate reloaded from {self.cert}")
        return True


@dataclass
class _Reply:
    status: int
    body: bytes
    content_type: str = "application/json"


class Server:
    """The webhook's HTTPS endpoint (see the module docstring)."""

    def __init__(
        self,
        admission: Admission,
        certificates: Certificates,
        metrics: Metrics,
        audit: IO[str],
        poll: float = 2.0,
    ) -> None:
        self.admission = admission
        self.certificates = certificates
        self.metrics = metrics
        self.audit = audit
        self.poll = poll
        self.draining = False
        self._idle: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    async def serve(
        self,
        host: str,
        port: int,
        stop: asyncio.Event,
        started: Callable[[list[tuple[str, int]]], None] | None = None,
    ) -> None:
        """Serve until `stop` is set, then drain: no new connections, idle ones closed,
        requests in flight answered (for at most the longest admission deadline)."""
        try:
            listener = _listen(host, port)
        except OSError as e:
            raise InputError(f"cannot listen on {host or '*'}:{port}: {e.strerror}") from None
        sockname = listener.getsockname()
        if started is not None:
            started([(str(sockname[0]), int(sockname[1]))])
        accepting = asyncio.ensure_future(self._accept(listener))
        watcher = asyncio.ensure_future(self._watch(stop))
        try:
            await stop.wait()
        finally:
            watcher.cancel()
            accepting.cancel()
            self.draining = True
            listener.close()
            for writer in list(self._idle):
                # no request on it: dropped at once, not after a TLS goodbye the client
                # may never answer
                writer.transport.abort()
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=DRAIN_TIMEOUT)
            for task in self._tasks:
                task.cancel()

    async def _accept(self, listener: socket.socket) -> None:
        """Take connections, at most `MAX_CONNECTIONS` open (handshakes included): one over
        the limit is closed before its TLS handshake has cost a buffer or a signature."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = await loop.sock_accept(listener)
            except OSError as e:  # EMFILE and the like: wait, do not spin
                _log(f"accept failed: {e.strerror}")
                await asyncio.sleep(0.1)
                continue
            if len(self._tasks) >= MAX_CONNECTIONS or self.draining:
                self.metrics.refused.inc()
                conn.close()
                continue
            task = asyncio.ensure_future(self._handshake(conn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _handshake(self, conn: socket.socket) -> None:
        """TLS with the certificate in force, then the connection's requests."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=READ_CHUNK)
        protocol = asyncio.StreamReaderProtocol(reader)
        try:
            transport, _ = await loop.connect_accepted_socket(
                lambda: protocol,
                conn,
                ssl=self.certificates.listening,
                ssl_handshake_timeout=HANDSHAKE_TIMEOUT,
            )
        except (OSError, ssl.SSLError, TimeoutError):
            conn.close()
            return
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        await self._connection(reader, writer)

    def accepting(self) -> bool:
        """Whether connections are kept for more requests (not while draining)."""
        return not self.draining

    async def _watch(self, stop: asyncio.Event) -> None:
        """Reload what changed on disk: the policy and its trust material, the certificate."""
        while not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), self.poll)
            if stop.is_set():
                return
            try:
                self.certificates.check()
                await self.admission.reload()
            except Exception as e:  # keep serving with what is in force
                _log(f"reload failed: {type(e).__name__}: {e}")

    # -- connections ---------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        try:
            while not self.draining:
                request = await self._head(connection, reader, writer)
                if request is None:
                    break
                reply = await self._exchange(connection, reader, request)
                # kept alive unless draining, or the body was left unread (a refusal)
                keep = connection.their_state is h11.DONE and self.accepting()
                self._send(connection, writer, reply, keep)
                await writer.drain()
                if connection.our_state is not h11.DONE or connection.their_state is not h11.DONE:
                    break
                connection.start_next_cycle()
        except (ConnectionError, ssl.SSLError, TimeoutError, asyncio.IncompleteReadError):
            pass
        except h11.ProtocolError:
            pass
        finally:
            self._idle.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _head(
        self, connection: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> h11.Request | None:
        """The next request's head, or None when the client is done (or too slow)."""
        first = True
        while True:
            try:
                event = connection.next_event()
            except h11.RemoteProtocolError as e:
                self._refuse(connection, writer, e.error_status_hint, f"bad request: {e}")
                return None
            if isinstance(event, h11.Request):
                return event
            if event is h11.PAUSED or isinstance(event, h11.ConnectionClosed):
                return None
            if event is not h11.NEED_DATA:
                return None
            if first:
                self._idle.add(writer)
            try:
                async with asyncio.timeout(IDLE_TIMEOUT if first else HEAD_TIMEOUT):
                    data = await reader.read(READ_CHUNK)
            finally:
                self._idle.discard(writer)
            if self.draining and first and not data:
                return None
            first = False
            connection.receive_data(data)

    def _refuse(
        self, connection: h11.Connection, writer: asyncio.StreamWriter, status: int, text: str
    ) -> None:
        self.metrics.invalid.inc()
        if connection.our_state is h11.SEND_RESPONSE:
            with contextlib.suppress(h11.ProtocolError):
                self._send(connection, writer, _Reply(status, _error(text)), False)

    async def _exchange(
        self, connection: h11.Connection, reader: asyncio.StreamReader, request: h11.Request
    ) -> _Reply:
        """Read the body (bounded) and answer the request."""
        target = urlsplit(request.target.decode("ascii", "replace"))
        method = request.method.decode("ascii", "replace")
        length = _content_length(request)
        if length is not None and length > MAX_BODY_BYTES:
            self.metrics.invalid.inc()
            return _Reply(413, _error(f"a body of {length} bytes; the limit is {MAX_BODY_BYTES}"))
        body = bytearray()
        try:
            async with asyncio.timeout(HEAD_TIMEOUT):
                while True:
                    event = connection.next_event()
                    if isinstance(event, h11.Data):
                        body += event.data
                        if len(body) > MAX_BODY_BYTES:
                            self.metrics.invalid.inc()
                            return _Reply(413, _error(f"a body over {MAX_BODY_BYTES} bytes"))
                    elif isinstance(event, h11.EndOfMessage):
                        break
                    elif event is h11.NEED_DATA:
                        data = await reader.read(READ_CHUNK)
                        connection.receive_data(data)
                    else:
                        raise ConnectionError("the request ended early")
        except h11.RemoteProtocolError as e:
            self.metrics.invalid.inc()
            return _Reply(400, _error(f"bad request: {e}"))
        received = time.monotonic()
        return await self._route(method, target.path, target.query, bytes(body), received)

    async def _route(
        self, method: str, path: str, query: str, body: bytes, received: float
    ) -> _Reply:
        if path in ("/validate", "/mutate"):
            if method != "POST":
                return _Reply(405, _error(f"{path} takes POST"))
            return await self._admit(path[1:], query, body, received)
        if path in ("/healthz", "/livez", "/readyz", "/metrics") and method not in ("GET", "HEAD"):
            return _Reply(405, _error(f"{path} takes GET"))
        if path in ("/healthz", "/livez"):
            return _Reply(200, b"ok\n", "text/plain; charset=utf-8")
        if path == "/readyz":
            if self.admission.ready and not self.draining:
                return _Reply(200, b"ok\n", "text/plain; charset=utf-8")
            why = "draining" if self.draining else self.admission.load_error or "not ready"
            return _Reply(503, f"not ready: {why}\n".encode(), "text/plain; charset=utf-8")
        if path == "/metrics":
            return _Reply(200, self.metrics.render(), METRICS_TYPE)
        self.metrics.invalid.inc()
        return _Reply(404, _error(f"no such endpoint: {path[:100]}"))

    async def _admit(self, endpoint: str, query: str, body: bytes, received: float) -> _Reply:
        budget = self.admission.options.budget(_timeout(query))
        review = None
        try:
            review = parse_review(body)
        except ReviewError as e:
            self.metrics.invalid.inc()
            self.metrics.requests.inc(endpoint=endpoint, verdict="invalid")
            self._log(
                None, endpoint, Decision(_refused(), "invalid", {"error": e.message}), received
            )
            return _Reply(400, _error(e.message))
        try:
            if endpoint == "validate":
                decision = await self.admission.validate(review, budget)
            else:
                decision = await self.admission.mutate(review, budget)
        except WasmctlError as e:  # none expected: answered, never a dropped call
            decision = self.admission.undecided(review, [], "internal", e.message)
        self.metrics.requests.inc(endpoint=endpoint, verdict=decision.verdict)
        self.metrics.latency.observe(time.monotonic() - received, endpoint=endpoint)
        self._log(review, endpoint, decision, received)
        return _Reply(200, response(review.uid, decision.answer))

    def _log(self, review: Any, endpoint: str, decision: Decision, received: float) -> None:
        line = audit_line(review, endpoint, decision, time.monotonic() - received)
        try:
            self.audit.write(line + "\n")
            self.audit.flush()
        except (OSError, ValueError):
            pass  # a closed log must not stop admission

    def _send(
        self, connection: h11.Connection, writer: asyncio.StreamWriter, reply: _Reply, keep: bool
    ) -> None:
        headers = [
            (b"content-type", reply.content_type.encode()),
            (b"content-length", str(len(reply.body)).encode()),
            (b"server", SERVER),
        ]
        if not keep:
            headers.append((b"connection", b"close"))
        data = connection.send(h11.Response(status_code=reply.status, headers=headers)) or b""
        data += connection.send(h11.Data(data=reply.body)) or b""
        data += connection.send(h11.EndOfMessage()) or b""
        writer.write(data)


def _listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on `host` (an address or name; `::` takes IPv4 too)."""
    host = host or "0.0.0.0"
    family, *_, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    listener = socket.create_server(
        address[:2],
        family=family,
        backlog=1024,
        reuse_port=False,
        dualstack_ipv6=family == socket.AF_INET6 and host == "::",
    )
    listener.setblocking(False)
    return listener


def _refused() -> Any:
    from wasmctl.gate.serve.review import Answer

    return Answer(False, "not an AdmissionReview", 400)


def _content_length(request: h11.Request) -> int | None:
    for name, value in request.headers:
        if name == b"content-length":
            with contextlib.suppress(ValueError):
                return int(value)
    return None


def _timeout(query: str) -> float | None:
    """The apiserver's `?timeout=10s` (its webhook timeout, whole seconds rounded up)."""
    values = parse_qs(query).get("timeout")
    if not values:
        return None
    text = values[0].strip()
    scale = 1.0
    if text.endswith("ms"):
        text, scale = text[:-2], 0.001
    elif text.endswith("s"):
        text = text[:-1]
    elif text.endswith("m"):
        text, scale = text[:-1], 60.0
    try:
        value = float(text) * scale
    except ValueError:
        return None
    return value if 0 < value < 3600 else None


def _error(text: str) -> bytes:
    import json

    return json.dumps({"error": text}).encode() + b"\n"


def install_signals(stop: asyncio.Event) -> None:
    """SIGTERM and SIGINT drain and stop the server."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


def write_stderr(text: str) -> None:
    sys.stderr.write(text)
    sys.stderr.flush()

"""HTTP/1.1 for the registry client: h11 on plain sockets, every wait bounded by the
deadline of the exchange it belongs to.

Why not httpx here (issue 15): at the everyday size of a Wasm artifact (1-20 MB) a command's
time is its start-up, and importing httpx took ~140 ms of it on our CI machine (its CLI
module, which pulls in click, rich and pygments whenever click is installed; urllib.request
and http.cookiejar; and httpcore, which imports trio whenever that is installed). The
registry client needs little of it: HTTP/1.1 keep-alive to a handful of origins, TLS,
streamed bodies, and its own redirect, auth and retry logic (registry.py). h11, the parser
httpcore itself uses and `gate serve` speaks too, does the framing; this module does the
sockets, so a status line or headers trickled a byte at a time meet the deadline too.

httpx stays the seam for what this module does not do: `HttpxTransport` sends through an
`httpx.Client`, for proxies (httpx reads HTTP(S)_PROXY, ALL_PROXY and NO_PROXY, and speaks
to SOCKS proxies) and for the tests' in-process registries and mock transports.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, overload
from urllib.parse import urlsplit

import h11

if TYPE_CHECKING:
    import ssl

    import httpx

READ_SIZE = 256 << 10  # one recv(); h11 hands each on whole as a body piece
MAX_HEAD_BYTES = 100 << 10  # status line and headers (httpcore allows the same)
KEEPALIVE_SECONDS = 5.0  # an idle connection older than this is not reused
MAX_IDLE_PER_ORIGIN = 20
DEFAULT_PORTS = {"http": 80, "https": 443}


# -- errors: the names httpx uses, so messages read the same --------------------------------


class TransportError(Exception):
    """The exchange failed below HTTP: no connection, a broken one, a timeout, bad framing."""


class TimeoutException(TransportError):
    """A wait ran out: the per-operation timeout or the exchange's deadline."""


class ConnectTimeout(TimeoutException):
    """Connecting (TCP or the TLS handshake) took too long."""


class ReadTimeout(TimeoutException):
    """The peer sent nothing for too long, or the deadline passed while reading."""


class WriteTimeout(TimeoutException):
    """The peer took nothing for too long, or the deadline passed while writing."""


class NetworkError(TransportError):
    """The connection failed."""


class ConnectError(NetworkError):
    """No connection: refused, unreachable, unresolvable, or a failed TLS handshake."""


class ReadError(NetworkError):
    """Reading from the connection failed (reset, or closed mid-answer)."""


class WriteError(NetworkError):
    """Writing to the connection failed."""


class ProtocolError(TransportError):
    """The exchange broke HTTP/1.1's rules."""


class RemoteProtocolError(ProtocolError):
    """The peer broke them: malformed status line or headers, bad framing, no answer."""


class LocalProtocolError(ProtocolError):
    """We would have broken them (a header that cannot be sent, a body of the wrong size)."""


class UnsupportedProtocol(TransportError):
    """A URL that is not http or https, or has no host."""


class ProxyError(TransportError):
    """The proxy refused or failed the exchange."""


# -- messages --------------------------------------------------------------------------------


class Headers:
    """Header fields as received: ordered, repeatable, names compared without case.

    `get` joins repeated fields with ", " (RFC 9110 5.3), as httpx's does."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] | Headers | dict[str, str] = ()) -> None:
        if isinstance(items, Headers):
            items = items.multi_items()
        elif isinstance(items, dict):
            items = items.items()
        self._items = [(str(k), str(v)) for k, v in items]

    def get_list(self, name: str) -> list[str]:
        wanted = name.lower()
        return [v for k, v in self._items if k.lower() == wanted]

    @overload
    def get(self, name: str) -> str | None: ...
    @overload
    def get(self, name: str, default: str) -> str: ...
    def get(self, name: str, default: str | None = None) -> str | None:
        values = self.get_list(name)
        return ", ".join(values) if values else default

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and bool(self.get_list(name))

    def multi_items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def keys(self) -> list[str]:
        seen: dict[str, str] = {}
        for k, _ in self._items:
            seen.setdefault(k.lower(), k)
        return list(seen.values())

    def items(self) -> list[tuple[str, str]]:
        return [(k, self[k]) for k in self.keys()]

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def __repr__(self) -> str:  # values may be secrets (Authorization): names only
        return f"Headers({self.keys()!r})"


class ByteStream(Protocol):
    """A response body: its pieces as they arrive, once; `close` ends it early."""

    def __iter__(self) -> Iterator[bytes]: ...

    def close(self) -> None: ...


class _Empty:
    def __iter__(self) -> Iterator[bytes]:
        return iter(())

    def close(self) -> None:
        pass


class Response:
    """A status, headers, and a body that is either read (`content`) or still streaming."""

    def __init__(
        self,
        status_code: int,
        headers: Iterable[tuple[str, str]] | Headers | dict[str, str] = (),
        *,
        url: str = "",
        http_version: str = "HTTP/1.1",
        content: bytes | None = None,
        stream: ByteStream | None = None,
    ) -> None:
        self.status_code = status_code
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        self.url = url
        self.http_version = http_version
        self._content = content
        self.stream: ByteStream = stream if stream is not None else _Empty()

    @property
    def content(self) -> bytes:
        if self._content is None:
            raise RuntimeError("the body of this response is still streaming: read() it first")
        return self._content

    def iter_raw(self) -> Iterator[bytes]:
        """The body's pieces as they arrive (as received: no content coding is undone)."""
        if self._content is not None:
            if self._content:
                yield self._content
            return
        yield from self.stream

    def read(self) -> bytes:
        if self._content is None:
            try:
                self._content = b"".join(self.stream)
            finally:
                self.stream.close()
        return self._content

    def close(self) -> None:
        self.stream.close()

    def __repr__(self) -> str:
        return f"<Response {self.status_code}>"


Content = bytes | Iterable[bytes] | None


@dataclass(frozen=True)
class Timeouts:
    """Per-operation limits in seconds: connecting (TCP and TLS), and each read or write."""

    connect: float = 15.0
    read: float = 60.0


class Deadline(Protocol):
    """The end of one exchange (registry.py's `_Deadline`): seconds left, maybe negative."""

    def remaining(self) -> float: ...


class Transport(Protocol):
    """What the registry client sends through."""

    def send_request(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        content: Content,
        *,
        timeouts: Timeouts,
        deadline: Deadline | None,
    ) -> Response:
        """Send one request; the response's body streams (close it when done)."""

    def close(self) -> None:
        """Close every connection."""


def _bounded(timeout: float, deadline: Deadline | None, expired: type[TimeoutException]) -> float:
    if deadline is None:
        return timeout
    left = deadline.remaining()
    if left <= 0:
        raise expired("the registry's time is up")
    return min(left, timeout)


# -- connections -----------------------------------------------------------------------------

Connector = Callable[[str, int, float], Any]  # (host, port, timeout) -> a connected socket


def connect_tcp(host: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection, Nagle off (requests are written whole)."""
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class _Connection:
    """One socket and its HTTP/1.1 state, used by one exchange at a time."""

    def __init__(self, sock: Any, origin: tuple[str, str, int]) -> None:
        self.sock = sock
        self.origin = origin
        self.state = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
        self.idle_since = time.monotonic()
        self.reused = False
        self.eof = False  # the peer closed its side
        self.heard = False  # any byte of the current answer arrived

    def write(
        self, data: bytes | bytearray | memoryview, timeouts: Timeouts, deadline: Deadline | None
    ) -> None:
        if not data:
            return
        self.sock.settimeout(_bounded(timeouts.read, deadline, WriteTimeout))
        try:
            self.sock.sendall(data)
        except TimeoutError:
            raise WriteTimeout("timed out writing to the registry") from None
        except OSError as e:
            raise WriteError(_describe(e)) from None

    def send(self, event: Any, timeouts: Timeouts, deadline: Deadline | None) -> None:
        try:
            pieces = self.state.send_with_data_passthrough(event)
        except h11.LocalProtocolError as e:  # a body longer or shorter than announced
            raise LocalProtocolError(str(e)) from None
        for piece in pieces or ():
            self.write(piece, timeouts, deadline)

    def next_event(self, timeouts: Timeouts, deadline: Deadline | None) -> Any:
        while True:
            try:
                event = self.state.next_event()
            except h11.RemoteProtocolError as e:
                if self.eof and not self.heard:
                    raise RemoteProtocolError(
                        "the registry closed the connection without answering"
                    ) from None
                if self.eof:
                    raise RemoteProtocolError(
                        "the registry closed the connection mid-answer"
                    ) from None
                raise RemoteProtocolError(f"the registry broke HTTP/1.1: {e}") from None
            if event is not h11.NEED_DATA:
                return event
            self.sock.settimeout(_bounded(timeouts.read, deadline, ReadTimeout))
            try:
                data = self.sock.recv(READ_SIZE)
            except TimeoutError:
                raise ReadTimeout("timed out reading from the registry") from None
            except OSError as e:
                raise ReadError(_describe(e)) from None
            self.eof = not data
            self.heard = self.heard or bool(data)
            try:
                self.state.receive_data(data)
            except RuntimeError:  # data after end-of-file: h11 refuses it
                raise RemoteProtocolError("the registry sent data after closing") from None

    def reusable(self) -> bool:
        return self.state.our_state is h11.DONE and self.state.their_state is h11.DONE

    def dead(self) -> bool:
        """Whether an idle connection was closed by the peer (readable while idle means
        end-of-file or garbage: either way it cannot carry a request)."""
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def _describe(error: OSError) -> str:
    return error.strerror or type(error).__name__


class _Body:
    """A response body read from its connection; the connection goes back to the pool when
    the body ends, and is closed when the body is abandoned."""

    def __init__(
        self, pool: Connections, conn: _Connection, timeouts: Timeouts, deadline: Deadline | None
    ) -> None:
        self._pool = pool
        self._conn: _Connection | None = conn
        self._timeouts = timeouts
        self._deadline = deadline

    def __iter__(self) -> Iterator[bytes]:
        conn = self._conn
        if conn is None:
            return
        try:
            while True:
                event = conn.next_event(self._timeouts, self._deadline)
                if isinstance(event, h11.Data):
                    yield event.data
                elif isinstance(event, h11.EndOfMessage):
                    break
                else:
                    raise RemoteProtocolError("the registry closed the connection mid-answer")
        except BaseException:
            self.close()
            raise
        self._conn = None
        self._pool.release(conn)

    def close(self) -> None:
        """End the body: a connection whose answer is already complete in its buffer (a
        HEAD's, a 204's, a short error read with the head) stays for the next exchange."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            while True:
                event = conn.state.next_event()
                if isinstance(event, h11.EndOfMessage):
                    self._pool.release(conn)
                    return
                if not isinstance(event, h11.Data):
                    break
        except h11.RemoteProtocolError:
            pass
        conn.close()


class Connections:
    """Keep-alive HTTP/1.1 connections, pooled per origin (scheme, host, port).

    `ssl_context` verifies https; it may be a function that makes one, called at the first
    https request and never for a plain-HTTP registry (loading the CA bundle costs ~25 ms).
    `connect` opens the TCP connection (tests script a socket through it)."""

    def __init__(
        self,
        ssl_context: ssl.SSLContext | Callable[[], ssl.SSLContext] | None = None,
        *,
        connect: Connector = connect_tcp,
    ) -> None:
        self._ssl_context = ssl_context
        self._connect = connect
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._lock = threading.Lock()
        self._closed = False

    def send_request(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        content: Content,
        *,
        timeouts: Timeouts,
        deadline: Deadline | None,
    ) -> Response:
        scheme, host, port, target, authority = _split(url)
        conn = self._checkout((scheme, host, port), timeouts, deadline)
        fields = [("Host", authority), *headers]
        names = {k.lower() for k, _ in fields}
        if isinstance(content, bytes | bytearray):
            if "content-length" not in names and (content or method in ("POST", "PUT", "PATCH")):
                fields.append(("Content-Length", str(len(content))))
            pieces: Iterable[bytes] = (content,) if content else ()
        elif content is None:
            pieces = ()
        else:
            if "content-length" not in names and "transfer-encoding" not in names:
                fields.append(("Transfer-Encoding", "chunked"))
            pieces = content
        try:
            head = self._exchange(conn, method, target, fields, pieces, timeouts, deadline)
        except (RemoteProtocolError, ReadError, WriteError):
            conn.close()
            # A kept-alive connection the peer closed just as it was reused: it heard
            # nothing of this request, so send it again on a new one (when it can be:
            # a streamed body is gone; the registry client re-sends those from the file).
            if not (conn.reused and not conn.heard and not isinstance(pieces, Iterator)):
                raise
            conn = self._open((scheme, host, port), timeouts, deadline)
            try:
                head = self._exchange(conn, method, target, fields, pieces, timeouts, deadline)
            except BaseException:
                conn.close()
                raise
        except BaseException:
            conn.close()
            raise
        version = "HTTP/" + head.http_version.decode("ascii", "replace")
        return Response(
            head.status_code,
            [(k.decode("latin-1"), v.decode("latin-1")) for k, v in head.headers],
            url=url,
            http_version=version,
            stream=_Body(self, conn, timeouts, deadline),
        )

    def _exchange(
        self,
        conn: _Connection,
        method: str,
        target: str,
        fields: list[tuple[str, str]],
        pieces: Iterable[bytes],
        timeouts: Timeouts,
        deadline: Deadline | None,
    ) -> Any:
        try:
            request = h11.Request(method=method, target=target, headers=fields)
        except (h11.LocalProtocolError, ValueError):
            # h11's message quotes the offending value, which may be a credential
            raise LocalProtocolError(
                f"cannot send {method} {target.partition('?')[0]}: a header is not valid HTTP"
            ) from None
        conn.heard = False
        try:
            conn.send(request, timeouts, deadline)
            for piece in pieces:
                conn.send(h11.Data(data=piece), timeouts, deadline)
            conn.send(h11.EndOfMessage(), timeouts, deadline)
        except WriteError:
            # The server may have answered early and closed (a 401 or 413 before the body
            # was all sent): that answer is the one to report, if it came.
            if conn.state.their_state is not h11.SEND_RESPONSE:
                raise
            try:
                return self._head(conn, timeouts, deadline)
            except TransportError:
                pass
            raise
        return self._head(conn, timeouts, deadline)

    @staticmethod
    def _head(conn: _Connection, timeouts: Timeouts, deadline: Deadline | None) -> Any:
        while True:
            event = conn.next_event(timeouts, deadline)
            if isinstance(event, h11.Response):
                return event
            if isinstance(event, h11.InformationalResponse):
                continue  # 100 Continue and friends: the answer follows
            raise RemoteProtocolError("the registry closed the connection without answering")

    def _checkout(
        self, origin: tuple[str, str, int], timeouts: Timeouts, deadline: Deadline | None
    ) -> _Connection:
        if self._closed:
            raise TransportError("the connection pool is closed")
        now = time.monotonic()
        stale: list[_Connection] = []
        found: _Connection | None = None
        with self._lock:
            idle = self._idle.get(origin, [])
            while idle:
                conn = idle.pop()
                if now - conn.idle_since > KEEPALIVE_SECONDS or conn.dead():
                    stale.append(conn)
                    continue
                found = conn
                break
        for conn in stale:
            conn.close()
        if found is not None:
            found.reused = True
            return found
        return self._open(origin, timeouts, deadline)

    def _open(
        self, origin: tuple[str, str, int], timeouts: Timeouts, deadline: Deadline | None
    ) -> _Connection:
        scheme, host, port = origin
        context = self._tls_context() if scheme == "https" else None
        timeout = _bounded(timeouts.connect, deadline, ConnectTimeout)
        try:
            sock = self._connect(host, port, timeout)
        except TimeoutError:
            raise ConnectTimeout(f"connecting to {host}:{port} timed out") from None
        except OSError as e:
            raise ConnectError(f"cannot connect to {host}:{port}: {_describe(e)}") from None
        if context is None:
            return _Connection(sock, origin)
        try:
            sock.settimeout(_bounded(timeouts.connect, deadline, ConnectTimeout))
            return _Connection(context.wrap_socket(sock, server_hostname=host), origin)
        except TimeoutError:
            sock.close()
            raise ConnectTimeout(f"the TLS handshake with {host}:{port} timed out") from None
        except OSError as e:  # ssl.SSLError and its certificate errors are OSErrors
            sock.close()
            reason = getattr(e, "verify_message", None) or getattr(e, "reason", None)
            raise ConnectError(f"TLS with {host}:{port} failed: {reason or _describe(e)}") from None
        except BaseException:
            sock.close()
            raise

    def _tls_context(self) -> ssl.SSLContext:
        import ssl

        with self._lock:
            context = self._ssl_context
            if context is None:
                context = self._ssl_context = default_ssl_context()
            elif not isinstance(context, ssl.SSLContext):
                context = self._ssl_context = context()
            return context

    def release(self, conn: _Connection) -> None:
        """Put a connection whose exchange ended cleanly back into the pool."""
        if self._closed or not conn.reusable():
            conn.close()
            return
        try:
            conn.state.start_next_cycle()
        except h11.LocalProtocolError:  # pragma: no cover - reusable() said it was done
            conn.close()
            return
        conn.idle_since = time.monotonic()
        with self._lock:
            idle = self._idle.setdefault(conn.origin, [])
            if len(idle) < MAX_IDLE_PER_ORIGIN:
                idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pools, self._idle = list(self._idle.values()), {}
        for idle in pools:
            for conn in idle:
                conn.close()


def _split(url: str) -> tuple[str, str, int, str, str]:
    """Scheme, host, port, request target and the Host header of an http(s) URL."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsupportedProtocol("a malformed URL") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        raise UnsupportedProtocol(f"not an http(s) URL with a host: {scheme or 'relative'}:")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    authority = parts.netloc.rpartition("@")[2]
    return scheme, parts.hostname, port or DEFAULT_PORTS[scheme], target, authority


def default_ssl_context() -> ssl.SSLContext:
    """The context for https without `--ca-file`: SSL_CERT_FILE or SSL_CERT_DIR when set
    (as httpx, curl and Python's own tools honour them), else certifi's CA bundle."""
    import ssl

    cafile = os.environ.get("SSL_CERT_FILE")
    capath = os.environ.get("SSL_CERT_DIR")
    if cafile and os.path.isfile(cafile):
        context = ssl.create_default_context(cafile=cafile)
    elif capath and os.path.isdir(capath):
        context = ssl.create_default_context(capath=capath)
    else:
        import certifi

        context = ssl.create_default_context(cafile=certifi.where())
    context.set_alpn_protocols(["http/1.1"])
    return context


# -- through httpx: proxies, and the tests' transports -----------------------------------------


class HttpxTransport:
    """Sends through an `httpx.Client`, which follows no redirect (the registry client does).

    Content codings are refused (`Accept-Encoding: identity`), as on our own connections:
    a blob's or manifest's digest is over the bytes as stored."""

    def __init__(self, client: httpx.Client, *, owned: bool) -> None:
        self.client = client
        self._owned = owned

    @classmethod
    def around(cls, transport: httpx.BaseTransport) -> HttpxTransport:
        import httpx

        return cls(httpx.Client(transport=transport, follow_redirects=False), owned=True)

    @classmethod
    def with_proxies(cls, verify: ssl.SSLContext | None) -> HttpxTransport:
        """httpx's own transports, which read the proxy variables (NO_PROXY included)."""
        import httpx

        client = httpx.Client(verify=verify if verify is not None else True, follow_redirects=False)
        return cls(client, owned=True)

    def send_request(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        content: Content,
        *,
        timeouts: Timeouts,
        deadline: Deadline | None,
    ) -> Response:
        import httpx

        fields = list(headers)
        if not any(k.lower() == "accept-encoding" for k, _ in fields):
            fields.append(("Accept-Encoding", "identity"))
        kwargs: dict[str, Any] = {}
        if self._owned:
            kwargs["timeout"] = httpx.Timeout(timeouts.read, connect=timeouts.connect)
        try:
            request = self.client.build_request(
                method, url, headers=fields, content=content, **kwargs
            )
            response = self.client.send(request, stream=True, follow_redirects=False)
        except httpx.TransportError as e:
            raise _from_httpx(e) from None
        except httpx.InvalidURL as e:
            raise UnsupportedProtocol(str(e)) from None
        return Response(
            response.status_code,
            response.headers.multi_items(),
            url=str(response.url),
            http_version=response.http_version,
            stream=_HttpxBody(response),
        )

    def close(self) -> None:
        if self._owned:
            self.client.close()


class _HttpxBody:
    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    def __iter__(self) -> Iterator[bytes]:
        import httpx

        response = self._response
        if response.is_stream_consumed:  # made with its content in memory (a mock's answer)
            if response.content:
                yield response.content
            return
        try:
            yield from response.iter_raw()
        except httpx.TransportError as e:
            raise _from_httpx(e) from None
        except httpx.StreamError as e:
            raise ReadError(str(e)) from None

    def close(self) -> None:
        self._response.close()


def _from_httpx(error: Exception) -> TransportError:
    """httpx's transport error as ours: the class of the same name, nearest first."""
    for kind in type(error).__mro__:
        ours = _BY_NAME.get(kind.__name__)
        if ours is not None:
            return ours(str(error))
    return TransportError(str(error))  # pragma: no cover - every httpx error is a TransportError


_BY_NAME: dict[str, type[TransportError]] = {
    kind.__name__: kind
    for kind in (
        TransportError, TimeoutException, ConnectTimeout, ReadTimeout, WriteTimeout,
        NetworkError, ConnectError, ReadError, WriteError, ProtocolError,
        RemoteProtocolError, LocalProtocolError, UnsupportedProtocol, ProxyError,
    )
}  # fmt: skip

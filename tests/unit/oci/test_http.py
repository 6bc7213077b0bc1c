"""The registry client's own HTTP/1.1 (wasmctl/oci/http.py) against scripted loopback peers.

Each peer is a real TCP server on 127.0.0.1 that plays one script per connection, so what
the tests see is what a socket sees: keep-alive, a peer that closes an idle connection, an
early answer to an upload, framing that lies, headers that never end.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from wasmctl.oci.http import (
    MAX_HEAD_BYTES,
    Connections,
    Headers,
    LocalProtocolError,
    ReadTimeout,
    RemoteProtocolError,
    Response,
    Timeouts,
    TransportError,
)

Script = Callable[[socket.socket], None]


class Peer:
    """A loopback TCP server running `script` on each accepted connection, in turn."""

    def __init__(self, *scripts: Script, host: str = "127.0.0.1") -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.listener = socket.create_server((host, 0), family=family)
        self.host = host
        self.listener.settimeout(2)  # a script never reached ends the peer soon after
        self.scripts = list(scripts)
        self.accepted = 0
        self.received: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.listener.getsockname()[1]}"

    def _serve(self) -> None:
        while self.scripts:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            script = self.scripts.pop(0)
            conn.settimeout(5)
            try:
                script(conn)
            except OSError:
                pass
            finally:
                conn.close()

    def close(self) -> None:
        self.listener.close()
        self.thread.join(timeout=5)


@pytest.fixture
def peers() -> Iterator[Callable[..., Peer]]:
    made: list[Peer] = []

    def make(*scripts: Script, host: str = "127.0.0.1") -> Peer:
        peer = Peer(*scripts, host=host)
        made.append(peer)
        return peer

    yield make
    for peer in made:
        peer.close()


@pytest.fixture
def pool() -> Iterator[Connections]:
    connections = Connections()
    yield connections
    connections.close()


def read_request(conn: socket.socket, into: list[bytes] | None = None) -> bytes:
    """One request head and its Content-Length body (enough for these scripts)."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = conn.recv(65536)
        if not piece:
            return data
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        piece = conn.recv(65536)
        if not piece:
            break
        body += piece
    if into is not None:
        into.append(head + b"\r\n\r\n" + body)
    return head


def answer(body: bytes = b"{}", status: bytes = b"200 OK", extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 %s\r\nContent-Length: %d\r\n%s\r\n%s" % (status, len(body), extra, body)


def get(pool: Connections, url: str, *, method: str = "GET", content: object = None,
        headers: list[tuple[str, str]] | None = None, read: float = 5.0) -> Response:  # fmt: skip
    return pool.send_request(method, url, headers or [], content,  # type: ignore[arg-type]
                             timeouts=Timeouts(connect=5, read=read), deadline=None)  # fmt: skip


def answer_after(conn: socket.socket, seen: list[bytes]) -> None:
    read_request(conn, seen)
    conn.sendall(answer())


def keep_answering(times: int, body: bytes = b"{}") -> Script:
    def script(conn: socket.socket) -> None:
        for _ in range(times):
            if not read_request(conn):
                return
            conn.sendall(answer(body))

    return script


def test_one_connection_carries_consecutive_exchanges(
    pool: Connections, peers: Callable[..., Peer]
) -> None:
    peer = peers(keep_answering(3))
    for _ in range(3):
        assert get(pool, f"{peer.url}/v2/").read() == b"{}"
    assert peer.accepted == 1


def test_a_head_and_an_unread_short_answer_leave_the_connection_usable(
    pool: Connections,
    peers: Callable[..., Peer],
) -> None:
    def script(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")  # a HEAD: no body
        read_request(conn)
        conn.sendall(answer(b'{"errors":[]}', b"401 Unauthorized"))
        read_request(conn)
        conn.sendall(answer(b"ok"))

    peer = peers(script)
    head = get(pool, f"{peer.url}/v2/r/blobs/x", method="HEAD")
    assert head.headers["content-length"] == "1234"
    head.close()
    get(pool, f"{peer.url}/v2/").close()  # discarded unread, as the client does with a 401
    assert get(pool, f"{peer.url}/v2/").read() == b"ok"
    assert peer.accepted == 1


def test_an_idle_connection_the_peer_closed_is_not_reused(
    pool: Connections, peers: Callable[..., Peer]
) -> None:
    def answer_once_and_hang_up(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(answer())

    peer = peers(answer_once_and_hang_up, keep_answering(1, b"second"))
    assert get(pool, f"{peer.url}/v2/").read() == b"{}"
    deadline = time.monotonic() + 5
    while peer.accepted < 1 or (peer.thread.is_alive() and len(peer.scripts) == 2):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.1)  # the first connection is closed by now
    assert get(pool, f"{peer.url}/v2/").read() == b"second"
    assert peer.accepted == 2


def test_a_reused_connection_closed_unheard_is_retried_once_on_a_new_one(
    pool: Connections, peers: Callable[..., Peer]
) -> None:
    # The peer hangs up as the second request arrives (an idle timeout racing the reuse,
    # too close for the check before reuse to see): that request was not heard, so it goes
    # again on a new connection, at once.
    def answer_then_drop(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(answer())
        read_request(conn)  # the next one arrives, and is dropped unanswered

    peer = peers(answer_then_drop, keep_answering(1, b"again"))
    assert get(pool, f"{peer.url}/v2/").read() == b"{}"
    head = get(pool, f"{peer.url}/v2/r/manifests/v1", method="HEAD")
    head.close()
    assert head.status_code == 200
    assert peer.accepted == 2


def test_a_streamed_body_is_not_sent_twice(pool: Connections, peers: Callable[..., Peer]) -> None:
    def answer_then_drop(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(answer())
        read_request(conn)

    peer = peers(answer_then_drop, keep_answering(1))
    assert get(pool, f"{peer.url}/v2/").read() == b"{}"
    with pytest.raises(TransportError):
        get(pool, f"{peer.url}/u", method="PATCH", content=iter([b"ab"]),
            headers=[("Content-Length", "2")])  # fmt: skip
    assert peer.accepted == 1


def test_an_early_answer_to_an_upload_is_the_answer(
    pool: Connections, peers: Callable[..., Peer]
) -> None:
    # A registry may refuse an upload before it has read it (413, or 401 on a PATCH); the
    # refusal, not a broken pipe, is what the user must see.
    def refuse(conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        conn.sendall(answer(b"too big", b"413 Payload Too Large", b"Connection: close\r\n"))
        conn.shutdown(socket.SHUT_RDWR)

    peer = peers(refuse)
    body = (b"x" * (1 << 20) for _ in range(64))  # 64 MiB: far more than any socket buffer
    response = get(pool, f"{peer.url}/v2/r/blobs/uploads/u",
                   method="PUT", content=body,
                   headers=[("Content-Length", str(64 << 20))])  # fmt: skip
    assert response.status_code == 413
    assert response.read() == b"too big"


def test_a_peer_that_hangs_up_without_answering_is_a_protocol_error(
    pool: Connections,
    peers: Callable[..., Peer],
) -> None:
    peer = peers(read_request)
    with pytest.raises(RemoteProtocolError, match="without answering"):
        get(pool, f"{peer.url}/v2/")


def test_a_body_shorter_than_announced_is_an_error_not_a_short_read(
    pool: Connections,
    peers: Callable[..., Peer],
) -> None:
    def short(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 50)

    peer = peers(short)
    response = get(pool, f"{peer.url}/v2/")
    with pytest.raises(TransportError):
        response.read()


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 two hundred\r\n\r\n",
        b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nX: " + b"a" * (MAX_HEAD_BYTES + 10),  # and never ends
    ],
    ids=["status", "not-http", "two-lengths", "endless-headers"],
)
def test_malformed_answers_are_protocol_errors(
    pool: Connections, peers: Callable[..., Peer], reply: bytes
) -> None:
    def script(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(reply)

    peer = peers(script)
    with pytest.raises(RemoteProtocolError):
        get(pool, f"{peer.url}/v2/").read()


def test_a_silent_peer_meets_the_read_timeout(
    pool: Connections, peers: Callable[..., Peer]
) -> None:
    release = threading.Event()

    def silent(conn: socket.socket) -> None:
        read_request(conn)
        release.wait(5)

    peer = peers(silent)
    started = time.monotonic()
    with pytest.raises(ReadTimeout):
        get(pool, f"{peer.url}/v2/", read=0.2)
    release.set()
    assert time.monotonic() - started < 4


def test_a_streamed_body_without_a_length_goes_chunked(
    pool: Connections, peers: Callable[..., Peer]
) -> None:
    seen: list[bytes] = []

    def script(conn: socket.socket) -> None:
        data = b""
        while not data.endswith(b"0\r\n\r\n"):
            data += conn.recv(65536)
        seen.append(data)
        conn.sendall(answer(status=b"201 Created"))

    peer = peers(script)
    response = get(pool, f"{peer.url}/u", method="PATCH", content=iter([b"ab", b"cd"]))
    assert response.status_code == 201
    response.close()
    head, _, body = seen[0].partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower()
    assert body == b"2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n"


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_the_host_header_names_the_port_and_brackets_ipv6(
    pool: Connections, peers: Callable[..., Peer], host: str
) -> None:
    seen: list[bytes] = []
    try:
        peer = peers(lambda conn: answer_after(conn, seen), host=host)
    except OSError:
        pytest.skip(f"no {host} loopback on this machine")
    get(pool, f"{peer.url}/v2/?n=1").read()
    assert seen[0].startswith(b"GET /v2/?n=1 HTTP/1.1\r\n")
    assert f"host: {peer.url.removeprefix('http://')}".encode() in seen[0].lower()


def test_a_header_that_is_not_http_is_refused_without_echoing_it(
    pool: Connections,
    peers: Callable[..., Peer],
) -> None:
    peer = peers(read_request)
    with pytest.raises(LocalProtocolError) as caught:
        get(pool, f"{peer.url}/v2/", headers=[("Authorization", "Bearer s3cret\r\nX: y")])
    assert "s3cret" not in str(caught.value)


def test_headers_are_case_blind_and_join_repeats() -> None:
    headers = Headers([("Link", "<a>"), ("link", "<b>"), ("Content-Type", "x")])
    assert headers.get("LINK") == "<a>, <b>"
    assert headers.get_list("link") == ["<a>", "<b>"]
    assert "content-type" in headers and "missing" not in headers
    assert headers.get("missing", "d") == "d"
    with pytest.raises(KeyError):
        headers["missing"]
    assert "x" not in repr(Headers([("Authorization", "x")]))  # values may be secrets

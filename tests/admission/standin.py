"""A tiny admission webhook on loopback TLS, used only to test the apiserver harness.

Its paths follow the webhook test server of kubernetes/apiserver
(pkg/admission/plugin/webhook/testing/webhook_server.go), plus what the harness needs:

========================  ====================================================================
``/allow``                allowed, audit annotation ``key1: value1``
``/disallow``             denied: ``status {code: 403, message: "you shall not pass"}``
``/disallowNoReason``     denied with ``status {code: 200}`` (no message or reason)
``/internalErr``          HTTP 500, ``text/plain`` "webhook internal server error"
``/invalidPatch``         allowed, patch ``[{`` (undecodable)
``/unappliablePatch``     allowed, a JSON patch removing a label that does not exist
``/patch``                allowed, a JSON patch adding label ``patched: "true"``
``/annotate``             allowed, a JSON patch adding annotation ``standin/annotated: "true"``
``/patchWithoutType``     allowed, a valid patch but no ``patchType``
``/patchFromValidating``  allowed, a valid patch and ``patchType`` (wrong for a validating hook)
``/nilResponse``          an AdmissionReview without ``response``
``/wrongUid``             a response with another uid
``/wrongKind``            ``kind: AdmissionResponse``
``/noTypeMeta``           a response without ``apiVersion`` and ``kind``
``/slow``                 answers ``allowed`` one second after the ``?timeout=`` it was given,
                          unless the client goes away first
``/warn``                 allowed, with warnings (one repeated)
``/closeAfter``           allowed, then closes the keep-alive connection (no
                          ``Connection: close`` header: the harness must notice the close)
``/created``              allowed, but with HTTP 201
``/gzip``                 allowed, gzip-encoded
``/garbage``              writes ``bad-http`` and closes
``/badAnnotations``       allowed, annotations ``ok`` and ``gate.wasmctl.io/verdict``
``/rendezvous/N``         allowed once N requests wait here at the same time (denied
                          "rendezvous incomplete" if that does not happen within 5 s)
========================  ====================================================================

It counts accepted connections and records every request (with the connection it came on),
notes requests whose client went away before the answer (``abandoned``) and connections it
closed after answering (``closes_after_answer``); ``wait_for`` waits (bounded) for a count.
It runs on its own event loop thread, stops on ``stop()`` and stops listening after
``lifetime`` seconds in any case.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import json
import re
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

import h11

from tests.admission.apiserver import LoopThread, ServingCert

ADMISSION_API_VERSION = "admission.k8s.io/v1"
IDLE_TIMEOUT = 30.0  # a connection with no request for this long is closed
RENDEZVOUS_WAIT = 5.0


@dataclass(frozen=True)
class SeenRequest:
    """One request as the stand-in received it."""

    connection: int
    """The serial number (from 1) of the connection it came on."""
    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query, keep_blank_values=True)

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    @property
    def review(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


@dataclass(frozen=True)
class _Answer:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    extra_headers: tuple[tuple[str, str], ...] = ()
    close_after: bool = False
    raw: bytes | None = None  # written as is instead of an HTTP response, then closed


class StandinWebhook:
    """The stand-in webhook server (``with StandinWebhook(cert) as hook: hook.port``)."""

    def __init__(self, cert: ServingCert, *, lifetime: float = 300.0) -> None:
        self._context = cert.server_context()
        self._lifetime = lifetime
        self._lock = threading.Lock()
        self._requests: list[SeenRequest] = []
        self._connections = 0
        self._abandoned = 0
        self._closes_after_answer = 0
        self._loop: LoopThread | None = None
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._waiting: dict[int, int] = {}
        self._rendezvous: dict[int, asyncio.Event] = {}
        self.port = 0

    # -- life cycle --

    def start(self) -> None:
        if self._loop is not None:
            raise RuntimeError("the stand-in webhook is already running")
        self._loop = LoopThread("standin-webhook")
        self._server = self._loop.run(self._listen(), timeout=10)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _listen(self) -> asyncio.Server:
        server = await asyncio.start_server(
            self._serve, "127.0.0.1", 0, ssl=self._context, ssl_shutdown_timeout=1.0
        )
        asyncio.get_running_loop().call_later(self._lifetime, server.close)
        return server

    def stop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None:
            return
        loop.run(self._shutdown(), timeout=10)
        loop.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what it saw --

    @property
    def connections_accepted(self) -> int:
        with self._lock:
            return self._connections

    @property
    def abandoned(self) -> int:
        """Requests whose client disconnected before the answer was ready."""
        with self._lock:
            return self._abandoned

    @property
    def closes_after_answer(self) -> int:
        """Connections closed by ``/closeAfter`` (close_notify handed to the kernel)."""
        with self._lock:
            return self._closes_after_answer

    def wait_for(self, condition: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Poll ``condition`` until it holds or ``timeout`` passes; whether it held."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    @property
    def requests(self) -> list[SeenRequest]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, path: str) -> list[SeenRequest]:
        return [request for request in self.requests if request.path == path]

    # -- serving --

    def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._connection(reader, writer))
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with self._lock:
            self._connections += 1
            number = self._connections
        protocol = h11.Connection(h11.SERVER)
        try:
            while True:
                try:
                    request = await self._read_request(protocol, reader)
                except h11.RemoteProtocolError as error:
                    # Answer a malformed request with the status h11 suggests, then close.
                    answer = _Answer(
                        error.error_status_hint,
                        f"{error}\n".encode(),
                        "text/plain; charset=utf-8",
                        (("Connection", "close"),),
                    )
                    writer.write(self._render(protocol, answer))
                    await writer.drain()
                    break
                if request is None:
                    break
                method, target, headers, body = request
                seen = SeenRequest(number, method, target, headers, body)
                with self._lock:
                    self._requests.append(seen)
                answer = await self._answer(seen, reader)
                if answer is None:  # the client went away
                    with self._lock:
                        self._abandoned += 1
                    break
                if answer.raw is not None:
                    writer.write(answer.raw)
                    await writer.drain()
                    break
                writer.write(self._render(protocol, answer))
                if answer.close_after:
                    # close_notify follows the answer at once; still, a client may send its
                    # next request before it arrives (and then reads EOF, as Go would): tests
                    # wait for `closes_after_answer` before calling again.
                    writer.close()
                    with self._lock:
                        self._closes_after_answer += 1
                    break
                await writer.drain()
                if protocol.our_state is h11.MUST_CLOSE:
                    break
                protocol.start_next_cycle()
        except (ConnectionError, ssl.SSLError, h11.ProtocolError, TimeoutError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _read_request(
        self, protocol: h11.Connection, reader: asyncio.StreamReader
    ) -> tuple[str, str, tuple[tuple[str, str], ...], bytes] | None:
        method = target = ""
        headers: tuple[tuple[str, str], ...] = ()
        chunks: list[bytes] = []
        while True:
            event = protocol.next_event()
            if event is h11.NEED_DATA:
                data = await asyncio.wait_for(reader.read(65536), IDLE_TIMEOUT)
                protocol.receive_data(bytes(data))
            elif isinstance(event, h11.Request):
                method, target = event.method.decode(), event.target.decode()
                headers = tuple((k.decode(), v.decode("latin-1")) for k, v in event.headers)
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return method, target, headers, b"".join(chunks)
            elif isinstance(event, h11.ConnectionClosed):
                return None

    @staticmethod
    def _render(protocol: h11.Connection, answer: _Answer) -> bytes:
        headers = [
            ("Content-Type", answer.content_type),
            ("Content-Length", str(len(answer.body))),
            *answer.extra_headers,
        ]
        return (
            protocol.send(h11.Response(status_code=answer.status, headers=headers))
            + (protocol.send(h11.Data(data=answer.body)) or b"")
            + (protocol.send(h11.EndOfMessage()) or b"")
        )

    async def _answer(self, seen: SeenRequest, reader: asyncio.StreamReader) -> _Answer | None:
        review = seen.review
        request = review.get("request") if isinstance(review, dict) else None
        request = request if isinstance(request, dict) else {}
        uid = request.get("uid", "")
        obj = request.get("object")
        path = seen.path
        if path == "/slow":
            given = seen.query.get("timeout", ["10s"])[0]
            seconds = int(given.rstrip("s")) if given.rstrip("s").isdigit() else 10
            if not await self._sleep_unless_gone(reader, min(seconds + 1, 31)):
                return None
            return _json_answer(_response(uid, allowed=True))
        rendezvous = re.fullmatch(r"/rendezvous/(\d+)", path)
        if rendezvous:
            return await self._meet(int(rendezvous.group(1)), uid)
        handler = _PATHS.get(path)
        if handler is None:
            return _Answer(404, b"404 page not found\n", "text/plain; charset=utf-8")
        return handler(uid, obj)

    @staticmethod
    async def _sleep_unless_gone(reader: asyncio.StreamReader, seconds: float) -> bool:
        """Sleep; False as soon as the client closes the connection."""
        try:
            data = await asyncio.wait_for(reader.read(1), seconds)
        except TimeoutError:
            return True
        except (ConnectionError, ssl.SSLError):
            return False
        return bool(data)  # stray bytes (a pipelined request) are not expected here

    async def _meet(self, parties: int, uid: str) -> _Answer:
        event = self._rendezvous.setdefault(parties, asyncio.Event())
        self._waiting[parties] = self._waiting.get(parties, 0) + 1
        if self._waiting[parties] >= parties:
            event.set()
        try:
            await asyncio.wait_for(event.wait(), RENDEZVOUS_WAIT)
        except TimeoutError:
            status = {"code": 403, "message": "rendezvous incomplete"}
            return _json_answer(_response(uid, allowed=False, status=status))
        finally:
            self._waiting[parties] -= 1
            if self._waiting[parties] == 0:
                del self._rendezvous[parties]
        return _json_answer(_response(uid, allowed=True))


def _response(uid: str, **fields: Any) -> dict[str, Any]:
    return {
        "apiVersion": ADMISSION_API_VERSION,
        "kind": "AdmissionReview",
        "response": {"uid": uid, **fields},
    }


def _json_answer(document: Any, status: int = 200, **answer: Any) -> _Answer:
    return _Answer(status, json.dumps(document).encode() + b"\n", **answer)


def _patch(operations: list[dict[str, Any]]) -> str:
    return base64.b64encode(json.dumps(operations).encode()).decode()


def _add_under(obj: Any, field_name: str, key: str, value: str) -> list[dict[str, Any]]:
    """A JSON patch setting ``metadata.<field_name>[key]``, creating the map if needed."""
    metadata = obj.get("metadata", {}) if isinstance(obj, dict) else {}
    if isinstance(metadata.get(field_name), dict):
        pointer_key = key.replace("~", "~0").replace("/", "~1")
        return [{"op": "add", "path": f"/metadata/{field_name}/{pointer_key}", "value": value}]
    return [{"op": "add", "path": f"/metadata/{field_name}", "value": {key: value}}]


def _patched(uid: str, operations: list[dict[str, Any]], **extra: Any) -> _Answer:
    fields = {"allowed": True, "patch": _patch(operations), "patchType": "JSONPatch", **extra}
    return _json_answer(_response(uid, **fields))


_ANSWER = Callable[[str, Any], _Answer]
_PATHS: dict[str, _ANSWER] = {
    "/allow": lambda uid, obj: _json_answer(
        _response(uid, allowed=True, auditAnnotations={"key1": "value1"})
    ),
    "/disallow": lambda uid, obj: _json_answer(
        _response(uid, allowed=False, status={"code": 403, "message": "you shall not pass"})
    ),
    "/disallowNoReason": lambda uid, obj: _json_answer(
        _response(uid, allowed=False, status={"code": 200})
    ),
    "/internalErr": lambda uid, obj: _Answer(
        500, b"webhook internal server error\n", "text/plain; charset=utf-8"
    ),
    "/invalidPatch": lambda uid, obj: _json_answer(
        _response(uid, allowed=True, patch=base64.b64encode(b"[{").decode(), patchType="JSONPatch")
    ),
    "/unappliablePatch": lambda uid, obj: _patched(
        uid, [{"op": "remove", "path": "/metadata/labels/no-such-label"}]
    ),
    "/patch": lambda uid, obj: _patched(uid, _add_under(obj, "labels", "patched", "true")),
    "/annotate": lambda uid, obj: _patched(
        uid, _add_under(obj, "annotations", "standin/annotated", "true")
    ),
    "/patchWithoutType": lambda uid, obj: _json_answer(
        _response(uid, allowed=True, patch=_patch(_add_under(obj, "labels", "patched", "true")))
    ),
    "/patchFromValidating": lambda uid, obj: _patched(
        uid, _add_under(obj, "labels", "patched", "true")
    ),
    "/nilResponse": lambda uid, obj: _json_answer(
        {"apiVersion": ADMISSION_API_VERSION, "kind": "AdmissionReview"}
    ),
    "/wrongUid": lambda uid, obj: _json_answer(_response("not-" + uid, allowed=True)),
    "/wrongKind": lambda uid, obj: _json_answer(
        {**_response(uid, allowed=True), "kind": "AdmissionResponse"}
    ),
    "/noTypeMeta": lambda uid, obj: _json_answer({"response": {"uid": uid, "allowed": True}}),
    "/warn": lambda uid, obj: _json_answer(
        _response(
            uid,
            allowed=True,
            warnings=["module is unsigned", "module is unsigned", "tag latest is mutable"],
        )
    ),
    "/closeAfter": lambda uid, obj: _json_answer(_response(uid, allowed=True), close_after=True),
    "/created": lambda uid, obj: _json_answer(_response(uid, allowed=True), status=201),
    "/gzip": lambda uid, obj: _Answer(
        200,
        gzip.compress(json.dumps(_response(uid, allowed=True)).encode()),
        extra_headers=(("Content-Encoding", "gzip"),),
    ),
    "/garbage": lambda uid, obj: _Answer(raw=b"bad-http"),
    "/badAnnotations": lambda uid, obj: _json_answer(
        _response(
            uid,
            allowed=True,
            auditAnnotations={"ok": "kept", "gate.wasmctl.io/verdict": "dropped"},
        )
    ),
}

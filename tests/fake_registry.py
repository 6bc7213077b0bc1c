"""An in-process OCI registry (distribution-spec v1.1) as an httpx transport.

`FakeRegistry` holds blobs and manifests in memory and answers like Debian's
`docker-registry` (distribution 2.8.2) wherever wasmctl depends on it
(shared/reference/oci-formats.md §4, "what it actually does"):

- upload `Location`s are absolute, carry a signed `_state` with the offset, and a stale one
  (not the newest `Location`) is refused with 404 `BLOB_UPLOAD_INVALID`;
- a single `POST ?digest=` with a body discards the body and starts a session (202);
- a manifest PUT checks that its config, layers (or, for an index, its child manifests)
  exist in the repository (400 `MANIFEST_BLOB_UNKNOWN`), never its `subject`; stores the
  exact bytes; a `Content-Type` that is not a manifest type, or that contradicts the
  document's `mediaType`, is 400 `MANIFEST_INVALID`;
- a GET/HEAD of an OCI manifest (index) whose `Accept` does not name its type is 404
  `MANIFEST_UNKNOWN`, as 2.8 does for `*/*` or no `Accept` at all;
- `DELETE manifests/<tag>` is 400 `DIGEST_INVALID`; only deletion by digest works;
- `GET /v2/<name>/referrers/<digest>` is 404 `text/plain` and a PUT of a manifest with a
  `subject` gets no `OCI-Subject`, so clients keep the `sha256-<hex>` fallback tag.

Where distribution lacks something a test needs, it is an option: the referrers API
(`referrers_api=True`), tag deletion (`delete_tags=True`), paging of tag lists and referrers
(`page_size`: 2.8 ignores `n`; here `n` is honoured and `page_size` caps it, with
`Link: <...>; rel="next"`), Basic auth (`basic_auth`) and Bearer auth (`token_auth`: a token
endpoint at `/token` on the same host). Chunked uploads follow the spec, not 2.8: a PATCH
whose `Content-Range` does not start where the upload stands is 416 (2.8 appends it anyway).

For tests: `requests` is the access log (`count()` filters it), `token_requests` the token
endpoint's; `fail()` injects answers or dropped connections for the next N matching
requests; `delay` adds a (virtual, or small and real) delay to every request; `down` (or
`go_down_after(n)`) makes every request fail with `httpx.ConnectError`. Everything is behind
one lock: clients may call from many threads.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})

NAME_RE = re.compile(
    r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*"
)
TAG_RE = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
DIGEST_RE = re.compile(r"sha256:[a-f0-9]{64}")
# `blobs/uploads` before `blobs`: the first alternative that lets the whole path match wins.
ROUTE_RE = re.compile(
    r"/v2/(?P<name>.+?)/(?P<kind>blobs/uploads|blobs|manifests|tags/list|referrers)"
    r"(?:/(?P<rest>[^/]*))?"
)
MAX_MANIFEST_BYTES = 4 << 20
MAX_REAL_DELAY = 0.5  # seconds; a real sleep is for ordering threads, not for waiting
TOKEN_PATH = "/token"
BASIC_REALM = "basic-realm"  # what Debian's registry with htpasswd says


@dataclass(frozen=True)
class LoggedRequest:
    """One request as the fake saw it. `status` is None when it never got an answer (the
    registry was `down`, or a fault dropped the connection)."""

    method: str
    path: str
    query: str
    status: int | None
    authorization: str | None = None  # the scheme only: "Basic", "Bearer" or None

    @property
    def target(self) -> str:
        """`METHOD /path`, for compact assertions."""
        return f"{self.method} {self.path}"


@dataclass
class Fault:
    """An answer (or a dropped connection) for the next `times` requests that match `method`
    (None: any) and `path` (a regex searched in the path; None: any). `exception`, if set, is
    raised instead of answering (e.g. `httpx.ReadError`: the client may retry it)."""

    status: int = 503
    method: str | None = None
    path: str | None = None
    times: int = 1
    headers: Mapping[str, str] = field(default_factory=dict)
    exception: type[httpx.TransportError] | None = None
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.hits >= self.times:
            return False
        if self.method is not None and self.method.upper() != method:
            return False
        return self.path is None or re.search(self.path, path) is not None


# (username or None for anonymous, repository, action) -> granted?
GrantPolicy = Callable[[str | None, str, str], bool]


@dataclass
class TokenAuth:
    """Bearer auth, distribution's `auth.token` mode, with the token service in the fake.

    Unauthenticated requests get `401` with `WWW-Authenticate: Bearer realm="<scheme>://
    <host>/token",service=...,scope=...`. `GET /token?service=&scope=...` (Basic credentials
    optional) or `POST /token` (`grant_type=refresh_token` or `password`) issue an opaque
    token for the scopes asked, less what is not granted: users get every action but
    `withhold`, anonymous clients get `anonymous_actions` only, and `policy`, if set,
    decides instead. Bad credentials get 401 from the token endpoint. A token that does not
    cover a request gets 401 with `error="insufficient_scope"` and the scope needed.
    """

    users: dict[str, str] = field(default_factory=lambda: {"tester": "secret"})
    service: str = "fake-registry"
    withhold: frozenset[str] = frozenset()
    anonymous_actions: frozenset[str] = frozenset()
    policy: GrantPolicy | None = None
    refresh_tokens: dict[str, str] = field(default_factory=dict)  # token -> username
    expires_in: int = 300

    def grants(self, username: str | None, repository: str, action: str) -> bool:
        if self.policy is not None:
            return self.policy(username, repository, action)
        if username is None:
            return action in self.anonymous_actions
        return action not in self.withhold


@dataclass(frozen=True)
class TokenRequest:
    """A request the token endpoint answered: the scopes asked and the access granted."""

    method: str
    username: str | None
    service: str | None
    scopes: tuple[str, ...]
    granted: frozenset[tuple[str, str]]  # (repository, action)
    status: int


@dataclass
class _Manifest:
    media_type: str
    data: bytes
    subject: str | None
    artifact_type: str | None
    annotations: dict[str, str]


@dataclass
class _Repository:
    blobs: set[str] = field(default_factory=set)  # digests linked in this repository
    manifests: dict[str, _Manifest] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class _Upload:
    name: str
    data: bytearray = field(default_factory=bytearray)


class _Reply(Exception):
    """An answer decided deep in a handler (an error, mostly)."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def _errors(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> _Reply:
    body = json.dumps({"errors": [{"code": code, "message": message, "detail": None}]})
    return _Reply(
        httpx.Response(
            status,
            headers={"Content-Type": "application/json; charset=utf-8", **(headers or {})},
            content=body.encode(),
        )
    )


def _page_not_found() -> _Reply:
    # Go's mux, for a route distribution does not have (e.g. referrers in 2.8)
    return _Reply(
        httpx.Response(
            404, headers={"Content-Type": "text/plain; charset=utf-8"}, text="404 page not found\n"
        )
    )


class FakeRegistry(httpx.BaseTransport):
    """An OCI registry in memory, spoken to through `httpx.Client(transport=fake)`.

    `host`, if given, is the only host it answers for (others get `httpx.ConnectError`, as an
    unknown name would); by default it answers for any. Seed it with `add_blob` and
    `add_manifest`, read it back with `blob`, `manifest` and `tags`.
    """

    def __init__(
        self,
        *,
        host: str | None = None,
        referrers_api: bool = False,
        basic_auth: tuple[str, str] | None = None,
        token_auth: TokenAuth | None = None,
        delete_tags: bool = False,
        page_size: int | None = None,
        delay: float = 0.0,
        real_delay: bool = False,
    ) -> None:
        if basic_auth is not None and token_auth is not None:
            raise ValueError("a registry has Basic or Bearer auth, not both")
        self.host = host
        self.referrers_api = referrers_api
        self.basic_auth = basic_auth
        self.token_auth = token_auth
        self.delete_tags = delete_tags
        self.page_size = page_size
        self.delay = delay
        self.real_delay = real_delay
        self.down = False
        self._answers_left: int | None = None  # `go_down_after`
        self.virtual_time = 0.0  # seconds of `delay` not slept (real_delay False)
        self.requests: list[LoggedRequest] = []
        self.token_requests: list[TokenRequest] = []
        self.faults: list[Fault] = []
        self._blobs: dict[str, bytes] = {}
        self._repositories: dict[str, _Repository] = {}
        self._uploads: dict[str, _Upload] = {}
        self._tokens: dict[str, frozenset[tuple[str, str]]] = {}
        self._secret = secrets.token_bytes(16)
        self._lock = threading.RLock()

    # -- test API ------------------------------------------------------------------------

    def client(self, **kwargs: Any) -> httpx.Client:
        """An `httpx.Client` on this registry."""
        return httpx.Client(transport=self, **kwargs)

    def fail(
        self,
        status: int = 503,
        *,
        method: str | None = None,
        path: str | None = None,
        times: int = 1,
        headers: Mapping[str, str] | None = None,
        exception: type[httpx.TransportError] | None = None,
    ) -> Fault:
        """Answer `status` (or raise `exception`) to the next `times` matching requests."""
        fault = Fault(status, method, path, times, dict(headers or {}), exception)
        with self._lock:
            self.faults.append(fault)
        return fault

    def go_down_after(self, answers: int) -> None:
        """Answer `answers` more requests, then go `down` (an outage in the middle of a run)."""
        with self._lock:
            self._answers_left = answers if answers > 0 else None
            self.down = answers <= 0

    def count(self, method: str | None = None, path: str | None = None) -> int:
        """How many logged requests match `method` and the regex `path` (searched)."""
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (method is None or r.method == method.upper())
                and (path is None or re.search(path, r.path))
            )

    def clear_log(self) -> None:
        with self._lock:
            self.requests.clear()
            self.token_requests.clear()

    def add_blob(self, repository: str, data: bytes) -> str:
        """Store a blob in `repository`; returns its digest."""
        digest = _sha256(data)
        with self._lock:
            self._blobs[digest] = bytes(data)
            self._repo(repository).blobs.add(digest)
        return digest

    def add_manifest(
        self, repository: str, data: bytes, media_type: str, tag: str | None = None
    ) -> str:
        """Store a manifest as is (no checks); returns its digest."""
        digest = _sha256(data)
        with self._lock:
            repo = self._repo(repository)
            repo.manifests[digest] = _parsed_manifest(media_type, data)
            if tag is not None:
                repo.tags[tag] = digest
        return digest

    def blob(self, repository: str, digest: str) -> bytes | None:
        with self._lock:
            repo = self._repositories.get(repository)
            return self._blobs[digest] if repo and digest in repo.blobs else None

    def manifest(self, repository: str, reference: str) -> tuple[str, bytes] | None:
        """The media type and bytes stored under a tag or digest."""
        with self._lock:
            found = self._find_manifest(repository, reference)
            return (found.media_type, found.data) if found else None

    def tags(self, repository: str) -> list[str]:
        with self._lock:
            repo = self._repositories.get(repository)
            return sorted(repo.tags) if repo else []

    def repositories(self) -> list[str]:
        with self._lock:
            return sorted(self._repositories)

    # -- the transport -------------------------------------------------------------------

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()  # outside the lock: a body streamed from a file takes time
        if self.delay > 0:
            if self.real_delay:
                time.sleep(min(self.delay, MAX_REAL_DELAY))
            else:
                with self._lock:
                    self.virtual_time += self.delay
        with self._lock:
            method, path = request.method, request.url.path
            query = request.url.query.decode("ascii", "replace")
            scheme = request.headers.get("Authorization", "").partition(" ")[0] or None
            if self.down or (self.host is not None and request.url.netloc.decode() != self.host):
                self.requests.append(LoggedRequest(method, path, query, None, scheme))
                raise httpx.ConnectError(
                    "connection refused (the fake registry is down)", request=request
                )
            fault = next((f for f in self.faults if f.matches(method, path)), None)
            if fault is not None:
                fault.hits += 1
                if fault.exception is not None:
                    self.requests.append(LoggedRequest(method, path, query, None, scheme))
                    raise fault.exception("injected fault", request=request)
                response = _errors(
                    fault.status, "UNAVAILABLE", "injected fault", fault.headers
                ).response
            else:
                try:
                    response = self._route(request, body)
                except _Reply as reply:
                    response = reply.response
            self.requests.append(LoggedRequest(method, path, query, response.status_code, scheme))
            if self._answers_left is not None:
                self._answers_left -= 1
                if self._answers_left <= 0:
                    self.down, self._answers_left = True, None
        return _as_sent(response, method)

    def _route(self, request: httpx.Request, body: bytes) -> httpx.Response:
        method, path = request.method, request.url.path
        if path == TOKEN_PATH and self.token_auth is not None:
            return self._token(request, body)
        if path in ("/v2/", "/v2"):
            if method not in ("GET", "HEAD"):
                raise _page_not_found()
            self._authorize(request, [])
            return httpx.Response(200, headers={"Content-Type": "application/json"}, content=b"{}")
        match = ROUTE_RE.fullmatch(path)
        if match is None:
            raise _page_not_found()
        name, kind, rest = match["name"], match["kind"], match["rest"]
        if not NAME_RE.fullmatch(name):
            raise _errors(400, "NAME_INVALID", "invalid repository name")
        params = dict(parse_qsl(request.url.query.decode(), keep_blank_values=True))
        if kind == "blobs/uploads":
            mount_from = params.get("from") if method == "POST" and params.get("mount") else None
            self._authorize(request, [(name, "pull"), (name, "push")], mount_from)
            return self._uploads_route(request, name, rest or "", params, body)
        if kind == "blobs" and rest:
            if method == "DELETE":
                self._authorize(request, [(name, "delete")])
                raise _errors(405, "UNSUPPORTED", "blob deletion is not supported here")
            if method not in ("GET", "HEAD"):
                raise _page_not_found()
            self._authorize(request, [(name, "pull")])
            return self._get_blob(request, name, rest)
        if kind == "manifests" and rest:
            return self._manifests_route(request, name, rest, body)
        if kind == "tags/list" and rest is None and method == "GET":
            self._authorize(request, [(name, "pull")])
            return self._tags_list(name, params)
        if kind == "referrers" and rest and self.referrers_api and method == "GET":
            self._authorize(request, [(name, "pull")])
            return self._referrers(name, rest, params)
        raise _page_not_found()

    # -- auth ----------------------------------------------------------------------------

    def _authorize(
        self,
        request: httpx.Request,
        needed: list[tuple[str, str]],
        mount_from: str | None = None,
    ) -> None:
        # distribution asks pull on the source of a mount as well (registry/handlers/app.go)
        if mount_from:
            needed = [*needed, (mount_from, "pull")]
        header = request.headers.get("Authorization", "")
        if self.basic_auth is not None:
            if _basic_credentials(header) != self.basic_auth:
                raise _errors(
                    401,
                    "UNAUTHORIZED",
                    "authentication required",
                    {"WWW-Authenticate": f'Basic realm="{BASIC_REALM}"'},
                )
            return
        if self.token_auth is None:
            return
        scheme, _, token = header.partition(" ")
        granted = self._tokens.get(token) if scheme.lower() == "bearer" else None
        if granted is not None and all(
            (repository, action) in granted or (repository, "*") in granted
            for repository, action in needed
        ):
            return
        challenge = (
            f'Bearer realm="{request.url.scheme}://{request.url.netloc.decode()}{TOKEN_PATH}"'
            f',service="{self.token_auth.service}"'
        )
        if needed:
            challenge += f',scope="{_scopes_text(needed)}"'
        if granted is not None:
            challenge += ',error="insufficient_scope"'
        elif header:
            challenge += ',error="invalid_token"'
        code = "DENIED" if granted is not None else "UNAUTHORIZED"
        raise _errors(401, code, "authentication required", {"WWW-Authenticate": challenge})

    def _token(self, request: httpx.Request, body: bytes) -> httpx.Response:
        auth = self.token_auth
        assert auth is not None
        username: str | None = None
        if request.method == "POST":
            form = dict(parse_qsl(body.decode("utf-8", "replace")))
            service = form.get("service")
            scopes = tuple(form.get("scope", "").split())
            if form.get("grant_type") == "refresh_token":
                username = auth.refresh_tokens.get(form.get("refresh_token", ""))
            elif form.get("grant_type") == "password":
                user = form.get("username", "")
                if auth.users.get(user) == form.get("password"):
                    username = user
            if username is None:
                return self._token_refused(request.method, service, scopes)
        elif request.method == "GET":
            pairs = parse_qsl(request.url.query.decode(), keep_blank_values=True)
            service = next((v for k, v in pairs if k == "service"), None)
            scopes = tuple(v for k, v in pairs if k == "scope")
            credentials = _basic_credentials(request.headers.get("Authorization", ""))
            if credentials is not None:
                user, password = credentials
                if auth.users.get(user) != password:
                    return self._token_refused(request.method, service, scopes)
                username = user
        else:
            raise _page_not_found()
        granted = frozenset(
            (repository, action)
            for text in scopes
            for repository, actions in [_parse_scope(text)]
            if repository
            for action in actions
            if auth.grants(username, repository, action)
        )
        token = f"fake-{secrets.token_urlsafe(12)}"
        self._tokens[token] = granted
        self.token_requests.append(
            TokenRequest(request.method, username, service, scopes, granted, 200)
        )
        answer = {"token": token, "access_token": token, "expires_in": auth.expires_in}
        return httpx.Response(200, json=answer)

    def _token_refused(
        self, method: str, service: str | None, scopes: tuple[str, ...]
    ) -> httpx.Response:
        self.token_requests.append(TokenRequest(method, None, service, scopes, frozenset(), 401))
        return httpx.Response(401, json={"details": "invalid credentials"})

    # -- blobs ---------------------------------------------------------------------------

    def _get_blob(self, request: httpx.Request, name: str, digest: str) -> httpx.Response:
        if not DIGEST_RE.fullmatch(digest):
            raise _errors(400, "DIGEST_INVALID", "invalid digest")
        data = self.blob(name, digest)
        if data is None:
            raise _errors(404, "BLOB_UNKNOWN", "blob unknown to registry")
        headers = {
            "Content-Type": "application/octet-stream",
            "Docker-Content-Digest": digest,
            "Accept-Ranges": "bytes",
        }
        status, content = 200, data
        span = _byte_range(request.headers.get("Range", ""), len(data))
        if span is not None:
            start, end = span
            status, content = 206, data[start : end + 1]
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        headers["Content-Length"] = str(len(content))
        return httpx.Response(
            status, headers=headers, content=b"" if request.method == "HEAD" else content
        )

    def _uploads_route(
        self, request: httpx.Request, name: str, session: str, params: dict[str, str], body: bytes
    ) -> httpx.Response:
        method = request.method
        if not session:
            if method != "POST":
                raise _page_not_found()
            mount, source = params.get("mount"), params.get("from")
            if (
                mount
                and source
                and DIGEST_RE.fullmatch(mount)
                and self.blob(source, mount) is not None
            ):
                self._repo(name).blobs.add(mount)
                return _blob_created(name, mount)
            # a body sent with `?digest=` is discarded, as 2.8 does: the client must PUT it
            session = str(uuid.uuid4())
            self._uploads[session] = _Upload(name)
            return self._upload_answer(request, name, session, 202)
        upload = self._uploads.get(session)
        if upload is None or upload.name != name:
            raise _errors(404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry")
        if method == "DELETE":
            del self._uploads[session]
            return httpx.Response(204)
        if method == "GET":
            return self._upload_answer(request, name, session, 204)
        if not self._state_ok(params.get("_state", ""), name, session, len(upload.data)):
            # distribution checks the offset in `_state` against the upload: a client that
            # reuses an old Location gets this (oras-py PR #150)
            raise _errors(
                404, "BLOB_UPLOAD_INVALID", "blob upload invalid: stale or missing _state"
            )
        if method == "PATCH":
            span = request.headers.get("Content-Range")
            if span is not None:
                start, _, end = span.partition("-")
                if (
                    not (start.isdigit() and end.isdigit())
                    or int(start) != len(upload.data)
                    or (int(end) - int(start) + 1 != len(body))
                ):
                    end_range = max(len(upload.data) - 1, 0)
                    return httpx.Response(
                        416,
                        headers={
                            "Range": f"0-{end_range}",
                            "Location": self._location(request, name, session, len(upload.data)),
                        },
                    )
            upload.data += body
            return self._upload_answer(request, name, session, 202)
        if method == "PUT":
            upload.data += body
            digest = params.get("digest", "")
            if not DIGEST_RE.fullmatch(digest) or _sha256(upload.data) != digest:
                del self._uploads[session]
                raise _errors(
                    400, "DIGEST_INVALID", "provided digest did not match uploaded content"
                )
            del self._uploads[session]
            self._blobs[digest] = bytes(upload.data)
            self._repo(name).blobs.add(digest)
            return _blob_created(name, digest)
        raise _page_not_found()

    def _upload_answer(
        self, request: httpx.Request, name: str, session: str, status: int
    ) -> httpx.Response:
        size = len(self._uploads[session].data)
        return httpx.Response(
            status,
            headers={
                "Location": self._location(request, name, session, size),
                "Range": f"0-{max(size - 1, 0)}",
                "Docker-Upload-UUID": session,
                "Content-Length": "0",
            },
        )

    def _location(self, request: httpx.Request, name: str, session: str, offset: int) -> str:
        # absolute, on the host asked (distribution without `http.relativeurls`)
        origin = f"{request.url.scheme}://{request.url.netloc.decode()}"
        state = self._state(name, session, offset)
        return f"{origin}/v2/{name}/blobs/uploads/{session}?{urlencode({'_state': state})}"

    def _state(self, name: str, session: str, offset: int) -> str:
        payload = base64.urlsafe_b64encode(json.dumps([name, session, offset]).encode()).decode()
        mac = hmac.new(self._secret, payload.encode(), hashlib.sha256).hexdigest()[:16]
        return f"{payload}.{mac}"

    def _state_ok(self, state: str, name: str, session: str, offset: int) -> bool:
        return hmac.compare_digest(state, self._state(name, session, offset))

    # -- manifests -----------------------------------------------------------------------

    def _manifests_route(
        self, request: httpx.Request, name: str, reference: str, body: bytes
    ) -> httpx.Response:
        method = request.method
        by_digest = reference.startswith("sha256:")
        if by_digest and not DIGEST_RE.fullmatch(reference):
            raise _errors(400, "DIGEST_INVALID", "invalid digest")
        if not by_digest and not TAG_RE.fullmatch(reference):
            raise _errors(400, "TAG_INVALID", "manifest tag did not match URI")
        if method in ("GET", "HEAD"):
            self._authorize(request, [(name, "pull")])
            return self._get_manifest(request, name, reference)
        if method == "PUT":
            self._authorize(request, [(name, "pull"), (name, "push")])
            return self._put_manifest(request, name, reference, body)
        if method == "DELETE":
            self._authorize(request, [(name, "delete")])
            return self._delete_manifest(name, reference, by_digest)
        raise _page_not_found()

    def _get_manifest(self, request: httpx.Request, name: str, reference: str) -> httpx.Response:
        found = self._find_manifest(name, reference)
        if found is None:
            raise _errors(404, "MANIFEST_UNKNOWN", "manifest unknown")
        accepted = {
            part.split(";")[0].strip()
            for value in request.headers.get_list("Accept")
            for part in value.split(",")
        }
        # distribution 2.8 registry/handlers/manifests.go: OCI documents are served only to
        # clients that name their type; `*/*` does not count
        if found.media_type == OCI_MANIFEST and OCI_MANIFEST not in accepted:
            raise _errors(
                404,
                "MANIFEST_UNKNOWN",
                "OCI manifest found, but accept header does not support OCI manifests",
            )
        if found.media_type == OCI_INDEX and OCI_INDEX not in accepted:
            raise _errors(
                404,
                "MANIFEST_UNKNOWN",
                "OCI index found, but accept header does not support OCI indexes",
            )
        headers = {
            "Content-Type": found.media_type,
            "Docker-Content-Digest": _sha256(found.data),
            "Content-Length": str(len(found.data)),
            "ETag": f'"{_sha256(found.data)}"',
        }
        return httpx.Response(
            200, headers=headers, content=b"" if request.method == "HEAD" else found.data
        )

    def _put_manifest(
        self, request: httpx.Request, name: str, reference: str, body: bytes
    ) -> httpx.Response:
        if len(body) > MAX_MANIFEST_BYTES:
            raise _errors(413, "SIZE_INVALID", "manifest too large")
        media_type = request.headers.get("Content-Type", "").strip()
        if media_type not in MANIFEST_TYPES | INDEX_TYPES:
            raise _errors(
                400, "MANIFEST_INVALID", f"unsupported manifest media type {media_type!r}"
            )
        try:
            document = json.loads(body)
        except ValueError:
            raise _errors(400, "MANIFEST_INVALID", "manifest invalid: not JSON") from None
        if not isinstance(document, dict) or document.get("schemaVersion") != 2:
            raise _errors(400, "MANIFEST_INVALID", "manifest invalid: schemaVersion must be 2")
        declared = document.get("mediaType")
        if declared is not None and declared != media_type:
            raise _errors(
                400, "MANIFEST_INVALID", f"mediaType {declared!r} does not match Content-Type"
            )
        digest = _sha256(body)
        if reference.startswith("sha256:") and reference != digest:
            raise _errors(400, "DIGEST_INVALID", "manifest digest did not match")
        repo = self._repo(name)
        for missing in self._missing_references(repo, media_type, document):
            raise _errors(400, "MANIFEST_BLOB_UNKNOWN", f"blob unknown to registry: {missing}")
        stored = _parsed_manifest(media_type, body)
        repo.manifests[digest] = stored
        if not reference.startswith("sha256:"):
            repo.tags[reference] = digest
        headers = {
            "Location": f"/v2/{name}/manifests/{digest}",
            "Docker-Content-Digest": digest,
            "Content-Length": "0",
        }
        if self.referrers_api and stored.subject:
            headers["OCI-Subject"] = stored.subject
        return httpx.Response(201, headers=headers)

    def _missing_references(
        self, repo: _Repository, media_type: str, document: dict[str, Any]
    ) -> list[str]:
        """What a manifest names that the repository lacks: the config and layers (foreign
        layers with `urls` excepted) of a manifest, the child manifests of an index; never the
        `subject` (distribution's `References()` leaves it out)."""
        if media_type in INDEX_TYPES:
            children = document.get("manifests") or []
            return [d for c in children if (d := _digest_of(c)) not in repo.manifests]
        blobs = [document.get("config"), *(document.get("layers") or [])]
        return [
            d
            for b in blobs
            if not (isinstance(b, dict) and b.get("urls"))
            and (d := _digest_of(b)) not in repo.blobs
        ]

    def _delete_manifest(self, name: str, reference: str, by_digest: bool) -> httpx.Response:
        repo = self._repositories.get(name)
        if not by_digest:
            if not self.delete_tags:
                raise _errors(400, "DIGEST_INVALID", "tag deletion is not supported (2.8)")
            if repo is None or reference not in repo.tags:
                raise _errors(404, "MANIFEST_UNKNOWN", "manifest unknown")
            del repo.tags[reference]
            return httpx.Response(202)
        if repo is None or reference not in repo.manifests:
            raise _errors(404, "MANIFEST_UNKNOWN", "manifest unknown")
        del repo.manifests[reference]
        for tag in [t for t, d in repo.tags.items() if d == reference]:
            del repo.tags[tag]
        return httpx.Response(202)

    def _find_manifest(self, name: str, reference: str) -> _Manifest | None:
        repo = self._repositories.get(name)
        if repo is None:
            return None
        digest = reference if reference.startswith("sha256:") else repo.tags.get(reference)
        return repo.manifests.get(digest) if digest else None

    # -- listings ------------------------------------------------------------------------

    def _page(self, items: list[str], params: dict[str, str]) -> tuple[list[str], bool]:
        """The items after `last`, at most `n` (capped by `page_size`), and whether more follow."""
        last = params.get("last")
        if last is not None:
            items = [i for i in items if i > last]
        limit = int(params["n"]) if params.get("n", "").isdigit() else None
        if self.page_size is not None:
            limit = self.page_size if limit is None else min(limit, self.page_size)
        if limit is None or len(items) <= limit:
            return items, False
        return items[:limit], True

    def _tags_list(self, name: str, params: dict[str, str]) -> httpx.Response:
        repo = self._repositories.get(name)
        if repo is None:
            raise _errors(404, "NAME_UNKNOWN", "repository name not known to registry")
        page, more = self._page(sorted(repo.tags), params)
        headers = {}
        if more:
            n = len(page)
            headers["Link"] = (
                f'</v2/{name}/tags/list?{urlencode({"n": n, "last": page[-1]})}>; rel="next"'
            )
        return httpx.Response(200, headers=headers, json={"name": name, "tags": page})

    def _referrers(self, name: str, digest: str, params: dict[str, str]) -> httpx.Response:
        if not DIGEST_RE.fullmatch(digest):
            raise _errors(400, "DIGEST_INVALID", "invalid digest")
        repo = self._repositories.get(name) or _Repository()
        wanted = params.get("artifactType")
        found = {
            d: m
            for d, m in repo.manifests.items()
            if m.subject == digest and (wanted is None or m.artifact_type == wanted)
        }
        page, more = self._page(sorted(found), params)
        descriptors = []
        for d in page:
            m = found[d]
            descriptor: dict[str, Any] = {
                "mediaType": m.media_type,
                "digest": d,
                "size": len(m.data),
            }
            if m.artifact_type:
                descriptor["artifactType"] = m.artifact_type
            if m.annotations:
                descriptor["annotations"] = m.annotations
            descriptors.append(descriptor)
        headers = {"Content-Type": OCI_INDEX}
        if wanted is not None:
            headers["OCI-Filters-Applied"] = "artifactType"
        if more:
            query = {
                "n": len(page),
                "last": page[-1],
                **({"artifactType": wanted} if wanted else {}),
            }
            headers["Link"] = f'</v2/{name}/referrers/{digest}?{urlencode(query)}>; rel="next"'
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors}
        return httpx.Response(200, headers=headers, content=json.dumps(index).encode())

    def _repo(self, name: str) -> _Repository:
        return self._repositories.setdefault(name, _Repository())


def _as_sent(response: httpx.Response, method: str) -> httpx.Response:
    """The answer as a network would deliver it: a body still to be streamed (clients read
    with `iter_raw`, which a response built with `content=` has already used up), none at
    all for a HEAD, and the API version header distribution sends."""
    headers = httpx.Headers(response.headers)
    headers.setdefault("Docker-Distribution-API-Version", "registry/2.0")
    headers.setdefault("Content-Length", str(len(response.content)))
    body = b"" if method == "HEAD" else response.content
    return httpx.Response(response.status_code, headers=headers, stream=httpx.ByteStream(body))


def _sha256(data: bytes | bytearray) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _blob_created(name: str, digest: str) -> httpx.Response:
    return httpx.Response(
        201,
        headers={
            "Location": f"/v2/{name}/blobs/{digest}",
            "Docker-Content-Digest": digest,
            "Content-Length": "0",
        },
    )


def _digest_of(descriptor: object) -> str:
    digest = descriptor.get("digest") if isinstance(descriptor, dict) else None
    return digest if isinstance(digest, str) else "<no digest>"


def _parsed_manifest(media_type: str, data: bytes) -> _Manifest:
    """What the referrers API needs to know about a stored manifest (tolerant: `add_manifest`
    stores anything)."""
    try:
        document = json.loads(data)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        return _Manifest(media_type, bytes(data), None, None, {})
    subject = document.get("subject")
    config = document.get("config")
    artifact_type = document.get("artifactType")
    if not isinstance(artifact_type, str) and isinstance(config, dict):
        artifact_type = config.get("mediaType")
    annotations = document.get("annotations")
    return _Manifest(
        media_type,
        bytes(data),
        subject.get("digest") if isinstance(subject, dict) else None,
        artifact_type if isinstance(artifact_type, str) else None,
        dict(annotations) if isinstance(annotations, dict) else {},
    )


def _basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = (
            base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        )
    except (ValueError, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


def _parse_scope(text: str) -> tuple[str | None, list[str]]:
    """`repository:<name>:<actions>` as (name, actions); other resource types as (None, [])."""
    resource, _, actions = text.rpartition(":")
    kind, _, name = resource.partition(":")
    if kind != "repository" or not name:
        return None, []
    return name, [a for a in actions.split(",") if a]


def _scopes_text(needed: list[tuple[str, str]]) -> str:
    by_repository: dict[str, list[str]] = {}
    for repository, action in needed:
        by_repository.setdefault(repository, []).append(action)
    return " ".join(f"repository:{r}:{','.join(a)}" for r, a in by_repository.items())


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """`bytes=start-[end]` as an inclusive span, or None (no header, or one we ignore)."""
    match = re.fullmatch(r"bytes=(\d+)-(\d*)", header.strip())
    if match is None or size == 0:
        return None
    start = int(match[1])
    end = min(int(match[2]), size - 1) if match[2] else size - 1
    return (start, end) if start <= end else None

"""The registry client: OCI distribution-spec v1.1 over one transport (http.py).

What it does, and why (shared/reference/oci-formats.md §4):
- HEAD before every blob upload, so a blob the registry has is never sent again; cross-repo
  mount when the source repository is in the same registry.
- Uploads stream from a file with constant memory: one monolithic PUT for small blobs,
  PATCH chunks for large ones, always following the newest `Location`, merged with its query
  (distribution puts `_state` there) whether absolute or relative.
- Manifests and indexes are pushed as their exact bytes, with their own media type.
- Every manifest request sends an `Accept` listing every manifest type (distribution 2.8
  answers 404 to a request that does not name the OCI types).
- Pulled blobs are hashed while they stream, written under a temporary name, and renamed only
  when the digest matches.
- 429, 5xx and dropped connections are retried with backoff, honouring `Retry-After`, bounded
  in count and in time; a body is re-sent from its source, never from memory.
- Auth: anonymous first; a `Basic` challenge switches to Basic; a `Bearer` challenge fetches
  one token per scope set (auth.py), and `insufficient_scope` fetches a wider one.
- Hostile answers (issue 11): credentials and tokens go to the registry's own origin only,
  redirects are followed here (bounded, loops and downgrades refused, never with credentials
  to another origin), every exchange has an overall deadline (`TimeoutPolicy`), every body
  read into memory is bounded, and a size that does not match the bytes is an error.

The client sends through one seam, `transport=`: by default its own keep-alive connections
(http.py: h11 on sockets that keep the deadline byte by byte); tests hand it an
`httpx.Client` or transport (an in-process registry, a mock for protocol corners), which
`HttpxTransport` adapts, as it does httpx's own transports when a proxy is configured.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import random
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from wasmctl import _json
from wasmctl.errors import InputError, RemoteError, WasmctlError
from wasmctl.oci import media_types as mt
from wasmctl.oci.auth import (
    MAX_CHALLENGE_LENGTH,
    AuthError,
    Credentials,
    TokenCache,
    load_credentials,
    parse_challenge,
    token_lifetime,
)
from wasmctl.oci.http import (
    ByteStream,
    ConnectError,
    Connections,
    Headers,
    HttpxTransport,
    Response,
    Timeouts,
    Transport,
    TransportError,
)
from wasmctl.oci.models import (
    MAX_MANIFEST_BYTES,
    Descriptor,
    Index,
    ManifestError,
    sha256_digest,
)

if TYPE_CHECKING:
    import ssl

CHUNK = 1 << 20  # read and hash in 1 MiB pieces
MONOLITHIC_MAX = 32 << 20  # blobs up to this size go in one PUT
UPLOAD_CHUNK = 64 << 20  # larger ones in PATCHes of this size
MANIFEST_ACCEPT = ", ".join(
    (mt.OCI_MANIFEST, mt.OCI_INDEX, mt.DOCKER_MANIFEST, mt.DOCKER_MANIFEST_LIST)
)
DOCKER_HUB_API = "registry-1.docker.io"
USER_AGENT = "wasmctl"
MAX_ANSWER_BYTES = MAX_MANIFEST_BYTES  # JSON answers read into memory: errors, tokens, pages
MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_PAGES = 1000  # tag and referrer pages
MAX_TAGS = 1_000_000
MAX_REFERRERS = 10_000
MAX_LINK_LENGTH = 8192
TIMEOUT_ENV = "WASMCTL_REGISTRY_TIMEOUT"
MIN_RATE_ENV = "WASMCTL_REGISTRY_MIN_RATE"


class RegistryError(RemoteError):
    """A registry answered with an error, or could not be reached."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        codes: tuple[str, ...] = (),
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.codes = codes


class NotFoundError(InputError):
    """The repository, tag, manifest or blob does not exist."""


class DigestMismatchError(RegistryError):
    """What a registry served does not match the digest asked for."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry: 429, 5xx and connection failures only."""

    attempts: int = 5
    deadline: float = 120.0
    base_delay: float = 0.5
    max_delay: float = 20.0

    def delay(self, attempt: int, retry_after: str | None) -> float:
        """Seconds to wait before attempt number `attempt + 1`."""
        if retry_after:
            try:
                return min(self.max_delay, max(0.0, float(retry_after)))
            except ValueError:
                pass
        backoff: float = min(self.max_delay, self.base_delay * 2**attempt)
        return backoff * (0.5 + random.random() / 2)


@dataclass(frozen=True)
class TimeoutPolicy:
    """How long a registry may take over one exchange (issue 11: a registry that trickles).

    A read timeout restarts with every byte, so alone it bounds nothing: a manifest
    served a byte every 5 s would take days. So every exchange (connect, headers, body) also
    has an overall deadline:
    - `request` seconds for the rest: manifests, tokens, error answers, tag and referrer
      pages, and the answers to upload requests;
    - blob transfers (pull, push, and configs read into memory) get one more second per
      `min_rate` bytes moved, so the
      deadline grows with real progress: a large blob on a slow link finishes, while a
      registry that dribbles bytes meets the deadline about `request` seconds in. A rule on
      the bytes actually moved (not the declared size) also stops a registry that declares
      a huge blob and then trickles it. `min_rate` 0 turns the rule off (blob streams are
      then bounded by the read timeout only).
    An exchange that runs out of time is not retried: a registry that trickled once will again.
    `from_env` reads `WASMCTL_REGISTRY_TIMEOUT` (seconds) and `WASMCTL_REGISTRY_MIN_RATE`
    (bytes per second); the defaults suit CI.
    """

    request: float = 60.0
    min_rate: float = 16 * 1024
    connect: float = 15.0

    def __post_init__(self) -> None:
        if not (0 < self.request < math.inf and 0 < self.connect < math.inf):
            raise InputError("registry timeouts must be positive numbers of seconds")
        if not 0 <= self.min_rate < math.inf:
            raise InputError("the minimum transfer rate must be 0 or more bytes per second")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TimeoutPolicy:
        """The defaults, overridden by `WASMCTL_REGISTRY_TIMEOUT` / `_MIN_RATE` when set."""
        env = os.environ if environ is None else environ
        values: dict[str, float] = {}
        for name, field_name in ((TIMEOUT_ENV, "request"), (MIN_RATE_ENV, "min_rate")):
            raw = env.get(name, "").strip()
            if not raw:
                continue
            try:
                values[field_name] = float(raw)
            except ValueError:
                raise InputError(f"{name} must be a number, not {raw[:40]!r}") from None
        try:
            return cls(**values)
        except InputError as e:
            raise InputError(f"{TIMEOUT_ENV}/{MIN_RATE_ENV}: {e.message}") from None

    def transport_timeouts(self) -> Timeouts:
        """The per-operation limits (connect; each read or write), never longer than the
        overall deadline."""
        return Timeouts(connect=min(self.connect, self.request), read=min(60.0, self.request))


class _Deadline:
    """The end of one exchange: `seconds` from now, plus `1/rate` s per byte moved (blobs)."""

    def __init__(self, seconds: float, rate: float | None) -> None:
        self.seconds = seconds
        self.rate = rate  # None: a fixed deadline; 0: none at all once the stream is open
        self.started = time.monotonic()
        self.moved = 0

    def remaining(self) -> float:
        if self.rate is None:
            allowed = self.seconds
        elif self.rate <= 0:
            return math.inf
        else:
            allowed = self.seconds + self.moved / self.rate
        return self.started + allowed - time.monotonic()


def _proxied() -> bool:
    """Whether a proxy is configured that httpx would use: HTTP_PROXY, HTTPS_PROXY or
    ALL_PROXY in either case, as `urllib.request.getproxies` reads them on Linux (elsewhere
    it also asks the system's settings, so it is asked there; importing it costs ~30 ms)."""
    if sys.platform == "linux":
        return any(
            value and name.lower() in ("http_proxy", "https_proxy", "all_proxy")
            for name, value in os.environ.items()
        )
    from urllib.request import getproxies  # type: ignore[unreachable,unused-ignore]

    proxies = getproxies()
    return any(proxies.get(scheme) for scheme in ("http", "https", "all"))


def _transport(ca_file: Path | None, given: Any = None) -> tuple[Transport, bool]:
    """What a `RegistryClient` sends through, and whether it is the client's own to close.

    `given` is an `httpx.Client` or `httpx.BaseTransport` (a test's in-process registry or
    mock), or a `Transport`; else our own connections (http.py), unless a proxy is
    configured: httpx's transports then take over (they read the proxy variables, NO_PROXY
    included, and speak to HTTP and SOCKS proxies). The deadline then holds between body
    pieces (`_GuardedStream`) and the per-read timeout still bounds each wait, but a status
    line or headers trickled through the proxy are not cut off at the deadline.
    """
    if given is not None:
        if hasattr(given, "send_request"):
            return given, False
        import httpx

        if isinstance(given, httpx.Client):
            return HttpxTransport(given, owned=False), False
        return HttpxTransport.around(given), True
    context: ssl.SSLContext | None = None
    if ca_file:  # made now: an unreadable --ca-file is an error before any request
        import ssl

        context = ssl.create_default_context(cafile=str(ca_file))
        context.set_alpn_protocols(["http/1.1"])
    if _proxied():
        return HttpxTransport.with_proxies(context), True
    # Without --ca-file the CA bundle is loaded at the first https connection (http.py):
    # a plain-HTTP registry never loads it.
    return Connections(context), True


class _GuardedStream:
    """A response body that counts what it moves and stops at the deadline (for transports
    other than our own connections, e.g. a test's or a proxy's, this is the only check)."""

    def __init__(
        self,
        inner: ByteStream,
        deadline: _Deadline,
        expired: Callable[[], WasmctlError],
    ) -> None:
        self._inner = inner
        self.deadline = deadline
        self._expired = expired

    def __iter__(self) -> Iterator[bytes]:
        for piece in self._inner:
            self.deadline.moved += len(piece)
            if self.deadline.remaining() <= 0:
                raise self._expired()
            yield piece

    def close(self) -> None:
        self._inner.close()


Body = bytes | Callable[[], Iterator[bytes]] | None


class Progress(Protocol):
    """Where transfer progress goes (the command line draws bars; the library only reports)."""

    def start(self, key: str, label: str, total: int) -> None:
        """A transfer of `total` bytes begins."""

    def advance(self, key: str, amount: int) -> None:
        """`amount` more bytes moved."""

    def finish(self, key: str) -> None:
        """The transfer ended (done or failed)."""


def file_body(
    path: Path,
    offset: int = 0,
    length: int | None = None,
    on_chunk: Callable[[int], None] | None = None,
) -> Callable[[], Iterator[bytes]]:
    """A re-startable body that streams `length` bytes of a file from `offset`."""

    def chunks() -> Iterator[bytes]:
        with path.open("rb") as f:
            f.seek(offset)
            left = length if length is not None else os.fstat(f.fileno()).st_size - offset
            while left > 0:
                piece = f.read(min(CHUNK, left))
                if not piece:
                    raise InputError(f"{path} shrank while it was being uploaded")
                left -= len(piece)
                if on_chunk is not None:
                    on_chunk(len(piece))
                yield piece

    return chunks


class RegistryClient:
    """One registry; every method takes the repository it works on."""

    def __init__(
        self,
        registry: str,
        *,
        http: Any = None,
        plain_http: bool = False,
        ca_file: Path | None = None,
        credentials: Credentials | None = None,
        use_config: bool = True,
        retry: RetryPolicy | None = None,
        timeouts: TimeoutPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        progress: Progress | None = None,
        transport: Any = None,
    ) -> None:
        self.registry = registry
        host = DOCKER_HUB_API if registry == "docker.io" else registry
        self.base = f"{'http' if plain_http else 'https'}://{host}"
        self.origin = _origin(self.base)
        self.timeouts = timeouts or TimeoutPolicy.from_env()
        self.transport, self._own_transport = _transport(ca_file, http or transport)
        self._credentials = credentials
        self._credentials_given = credentials is not None  # by `login`, which checks them
        if credentials is None and use_config:
            self._credentials = load_credentials(registry)
        self._basic = False
        self._tokens = TokenCache()
        self.retry = retry or RetryPolicy()
        self.progress = progress
        self._sleep = sleep

    def close(self) -> None:
        """Close the connection pool (if this client made it)."""
        if self._own_transport:
            self.transport.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests ------------------------------------------------------------------------

    def _url(self, repository: str, tail: str) -> str:
        return f"{self.base}/v2/{repository}/{tail}"

    def _authorization(self, scopes: tuple[str, ...]) -> str | None:
        if self._basic and self._credentials:
            return self._credentials.basic()
        token = self._tokens.get(self.registry, scopes)
        return f"Bearer {token}" if token else None

    def request(
        self,
        method: str,
        url: str,
        *,
        scopes: tuple[str, ...],
        headers: dict[str, str] | None = None,
        body: Body = None,
        stream: bool = False,
        ok: tuple[int, ...] = (200, 201, 202, 204),
        not_found_ok: bool = False,
        limit: int = MAX_ANSWER_BYTES,
        blob: bool = False,
    ) -> Response:
        """Send with auth, redirects and retries; an answer outside `ok` (and 404 unless
        allowed) raises. Without `stream`, the body is read, at most `limit` bytes of it.
        A `blob` download, like any upload from a file, has the deadline that grows with
        the bytes moved (`TimeoutPolicy`)."""
        started = time.monotonic()
        auth_rounds = 0
        attempt = 0
        while True:
            deadline = self._deadline(blob or callable(body))
            try:
                response = self._send(method, url, scopes, headers or {}, body, deadline)
            except TransportError as e:
                if deadline.remaining() <= 0:
                    raise self._too_slow(method, url, deadline) from None
                # A refused connection or a failed TLS handshake will not mend in seconds;
                # a connection reset or a timeout mid-request may.
                if isinstance(e, ConnectError) or not self._may_retry(attempt, started, None):
                    raise RegistryError(
                        f"{method} {_redact(url)}: {type(e).__name__}: {_safe_text(e)}",
                        hint="is the registry up and reachable? --plain-http HOST for an HTTP "
                        "registry (loopback ones are plain HTTP already, unless --ca-file)",
                    ) from None
                self._sleep(self.retry.delay(attempt, None))
                attempt += 1
                continue
            if response.status_code == 401 and auth_rounds < 2:
                _discard(response)
                if _origin(str(response.url)) != self.origin:
                    raise AuthError(
                        f"{_host(str(response.url))} asked for credentials on behalf of "
                        f"{self.registry}; they are sent to {self.registry} only",
                        hint="the registry handed this request to another host",
                    )
                auth_rounds += 1
                self._authenticate(response, scopes)
                continue
            if response.status_code == 429 or response.status_code >= 500:
                retry_after = response.headers.get("Retry-After")
                if self._may_retry(attempt, started, retry_after):
                    _discard(response)
                    self._sleep(self.retry.delay(attempt, retry_after))
                    attempt += 1
                    continue
            if response.status_code in ok or (not_found_ok and response.status_code == 404):
                if stream:
                    return response
                return self._read_answer(method, url, response, limit)
            raise self._error(method, url, response)

    def _deadline(self, scales: bool) -> _Deadline:
        return _Deadline(self.timeouts.request, self.timeouts.min_rate if scales else None)

    def _broken(self, url: str, response: Response, error: Exception, what: str) -> RegistryError:
        """A body that stopped while it streamed: the deadline's doing, or the network's."""
        deadline = _deadline_of(response)
        if deadline is not None and deadline.remaining() <= 0:
            return self._too_slow("GET", url, deadline)
        return RegistryError(f"GET {_redact(url)}: {what} ({type(error).__name__})")

    def _too_slow(self, method: str, url: str, deadline: _Deadline) -> RegistryError:
        moved = f" ({deadline.moved} bytes moved)" if deadline.moved else ""
        return RegistryError(
            f"{method} {_redact(url)}: no complete answer within the deadline{moved}",
            hint=f"the registry is too slow or stalling; {TIMEOUT_ENV} (seconds, now "
            f"{self.timeouts.request:g}) and {MIN_RATE_ENV} (bytes/s for blobs, now "
            f"{self.timeouts.min_rate:g}) set the limits",
        )

    def _send(
        self,
        method: str,
        url: str,
        scopes: tuple[str, ...],
        headers: dict[str, str],
        body: Body,
        deadline: _Deadline,
    ) -> Response:
        """One exchange, following redirects by hand (a streamed, guarded response).

        Credentials (Basic, Bearer, identity-token grants) were issued for this registry,
        so they go to its origin (scheme, host, port) only: not to a `Location` on another
        host, not to a redirect target (a blob's storage, S3 or a CDN, authorises by a
        signed URL, not by our header), and never over a downgrade to plain HTTP, which
        is refused outright. This is what docker does: its client attaches credentials per
        host it has seen a challenge from (distribution registry/client/auth), and Go's
        http client drops `Authorization` on a redirect to another host. httpx would strip
        it too, but not on an http-to-https hop; so redirects are handled here, whatever
        the transport.
        """
        seen: set[str] = set()
        current_method, current_url, current_body = method, url, body
        for hop in range(MAX_REDIRECTS + 1):
            request_headers = dict(headers)
            if _origin(current_url) == self.origin:
                authorization = self._authorization(scopes)
                if authorization:
                    request_headers["Authorization"] = authorization
            response = self._exchange(
                current_method, current_url, request_headers, current_body, deadline
            )
            location = response.headers.get("Location")
            if response.status_code not in REDIRECT_STATUSES or not location:
                return response
            _discard(response)
            seen.add(current_url)
            target = self._check_url(urljoin(current_url, location), current_url, "redirect")
            if target in seen:
                raise RegistryError(f"{method} {_redact(url)}: a redirect loop")
            if hop == MAX_REDIRECTS:
                raise RegistryError(f"{method} {_redact(url)}: more than {MAX_REDIRECTS} redirects")
            if response.status_code == 303 or (
                response.status_code in (301, 302) and current_method == "POST"
            ):  # RFC 9110 15.4: these turn into a GET without a body
                current_method = "HEAD" if current_method == "HEAD" else "GET"
                current_body = None
                headers = {
                    k: v
                    for k, v in headers.items()
                    if k.lower() not in ("content-length", "content-type", "content-range")
                }
            current_url = target
        raise AssertionError("unreachable")  # pragma: no cover

    def _exchange(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: Body,
        deadline: _Deadline,
    ) -> Response:
        """Send one request under `deadline`; the response streams through a guard."""
        content = _metered(body(), deadline) if callable(body) else body
        fields = [("User-Agent", USER_AGENT), *headers.items()]
        response = self.transport.send_request(
            method,
            url,
            fields,
            content,
            timeouts=self.timeouts.transport_timeouts(),
            deadline=deadline,
        )
        response.stream = _GuardedStream(
            response.stream, deadline, lambda: self._too_slow(method, url, deadline)
        )
        return response

    def _check_url(self, url: str, came_from: str, what: str) -> str:
        """`url` if the registry may send us there: http(s), no user:password inside, and
        no step down from https to http."""
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - parsed for the ValueError a bad port raises
        except ValueError:
            raise RegistryError(f"{self.registry}: a {what} to a malformed URL") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RegistryError(
                f"{self.registry}: a {what} to a {parts.scheme or 'relative'}: URL was refused"
            )
        if "@" in parts.netloc:
            raise RegistryError(
                f"{self.registry}: a {what} to a URL with credentials in it was refused"
            )
        if parts.scheme == "http" and urlsplit(came_from).scheme == "https":
            raise RegistryError(
                f"{self.registry}: a {what} from https to http ({_host(url)}) was refused",
                hint="the registry tried to move the transfer off TLS",
            )
        return url

    def _read_answer(self, method: str, url: str, response: Response, limit: int) -> Response:
        """The answer with its body read: at most `limit` bytes after decoding."""
        data = bytearray()
        try:
            for piece in response.iter_raw():
                data += piece
                if len(data) > limit:
                    raise RegistryError(
                        f"{method} {_redact(url)}: the answer is larger than {limit} bytes"
                    )
        except TransportError as e:
            deadline = _deadline_of(response)
            if deadline is not None and deadline.remaining() <= 0:
                raise self._too_slow(method, url, deadline) from None
            raise RegistryError(
                f"{method} {_redact(url)}: the answer broke off ({type(e).__name__})"
            ) from None
        finally:
            response.close()
        # the body is decoded now, so its framing headers go; a HEAD keeps Content-Length,
        # which is the only size it gives (of the blob or manifest it stands for)
        dropped: tuple[str, ...] = ("content-encoding", "transfer-encoding")
        if method != "HEAD":
            dropped += ("content-length",)
        headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in dropped]
        return Response(
            response.status_code,
            headers,
            url=response.url,
            http_version=response.http_version,
            content=bytes(data),
        )

    def _may_retry(self, attempt: int, started: float, retry_after: str | None) -> bool:
        if attempt + 1 >= self.retry.attempts:
            return False
        elapsed = time.monotonic() - started
        return elapsed + self.retry.delay(attempt, retry_after) < self.retry.deadline

    def _error(self, method: str, url: str, response: Response) -> WasmctlError:
        codes: tuple[str, ...] = ()
        detail = ""
        try:
            raw = self._read_answer(method, url, response, 64 << 10).content
        except RegistryError:
            raw = b""
        try:
            document = _json.loads(raw, "error answer", RegistryError)
            errors = document.get("errors") or [] if isinstance(document, dict) else []
            if not isinstance(errors, list):
                errors = []
            codes = tuple(str(e.get("code", ""))[:64] for e in errors if isinstance(e, dict))
            detail = "; ".join(
                f"{e.get('code')}: {e.get('message')}" for e in errors[:5] if isinstance(e, dict)
            )
        except RegistryError:
            detail = raw[:200].decode("utf-8", "replace")
        detail = self._scrub(detail)
        status = response.status_code
        hint = None
        if (
            status == 400
            and self.base.startswith("http:")
            and (b"HTTPS" in raw[:512] or response.http_version == "HTTP/1.0")
        ):
            # Go's and nginx's answer to plain HTTP on a TLS port ("Client sent an HTTP
            # request to an HTTPS server"; Go's a bare HTTP/1.0 reply, bodiless to a HEAD):
            # a loopback registry that speaks TLS.
            return RegistryError(
                f"{self.registry} speaks HTTPS and was sent plain HTTP",
                hint="loopback registries are plain HTTP unless --ca-file FILE is given: "
                "give the CA that signed its certificate",
            )
        if status == 401:
            hint = self._credentials_hint()
        elif status == 403:
            hint = "the credentials lack permission for this repository"
        message = f"{method} {_redact(url)}: HTTP {status}" + (f" ({detail})" if detail else "")
        if status == 404:
            return NotFoundError(message)
        if 400 <= status < 500 and status not in (401, 403, 408, 429):
            return InputError(message)  # the registry refused what was sent: retrying won't help
        return RegistryError(message, status=status, codes=codes, hint=hint)

    def _credentials_hint(self, realm: str | None = None) -> str:
        """What to try when credentials are missing or refused: `wasmctl login` when they
        came from the config, and otherwise (they are the ones `login` is checking) what to
        check about them."""
        if not self._credentials_given:
            return f"log in first: wasmctl login {self.registry}"
        checked = f" (checked by its token service at {_host(realm)})" if realm else ""
        return (
            f"check the user name and the password or token{checked}; many registries "
            "want an access token with the needed scopes, not the account password"
        )

    def _scrub(self, text: str) -> str:
        """Registry-chosen text fit for a terminal: printable, short, without our secrets."""
        text = "".join(c if c.isprintable() else " " for c in text).strip()[:300]
        credentials = self._credentials
        secrets = [t.value for t in self._tokens.tokens.values()]
        if credentials:
            secrets += [credentials.password, credentials.identity_token, credentials.basic()]
        for secret in secrets:
            if len(secret) >= 4:
                text = text.replace(secret, "[redacted]")
        return text

    def _authenticate(self, response: Response, scopes: tuple[str, ...]) -> None:
        header = response.headers.get("WWW-Authenticate", "")
        if len(header) > MAX_CHALLENGE_LENGTH:
            raise AuthError(f"{self.registry} sent a malformed authentication challenge")
        challenge = parse_challenge(header)
        if challenge is None:
            raise AuthError(f"{self.registry} asked for authentication without saying how")
        if challenge.scheme == "basic":
            if not self._credentials or not self._credentials.username:
                raise AuthError(
                    f"{self.registry} needs credentials", hint=f"wasmctl login {self.registry}"
                )
            if self._basic:
                raise AuthError(
                    f"{self.registry} refused the credentials", hint=self._credentials_hint()
                )
            self._basic = True
            return
        if challenge.scheme != "bearer" or "realm" not in challenge.params:
            scheme = self._scrub(challenge.scheme)[:40]
            raise AuthError(f"{self.registry}: unsupported authentication {scheme}")
        wanted = set(scopes)
        if challenge.params.get("error") == "insufficient_scope" and challenge.params.get("scope"):
            wanted.update(challenge.params["scope"].split(" "))
        self._tokens.drop(self.registry, scopes)
        token, lifetime = self._fetch_token(challenge.params, sorted(wanted))
        self._tokens.put(self.registry, scopes, token, lifetime)

    def _check_realm(self, realm: str) -> str:
        """The token realm, if credentials may go there.

        The realm is often on another host (Docker Hub: auth.docker.io), and the token
        spec has the client send its credentials there (distribution docs/spec/auth/
        token.md: the token server "should first attempt to authenticate the client using
        any authentication credentials provided", Basic in docker's client). So the realm
        named by the registry we were asked to talk to is trusted as its auth server, as
        docker does; but only over https (plain http only when the registry itself is
        plain http, i.e. a local one named by --plain-http, which already sees the
        credentials in clear), never with user:password in it, and never through a
        redirect (`_fetch_token` does not follow one: the identity-token grant carries
        its secret in the body, which a 307 would re-send anywhere).
        """
        try:
            parts = urlsplit(realm)
            parts.port  # noqa: B018 - parsed for the ValueError a bad port raises
        except ValueError:
            raise AuthError(f"{self.registry} named a malformed token realm") from None
        if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
            raise AuthError(f"{self.registry} named a token realm that is not an http(s) URL")
        if parts.scheme == "http" and urlsplit(self.base).scheme == "https":
            raise AuthError(
                f"{self.registry} named a token realm over plain http ({_host(realm)}); "
                "credentials are not sent there",
                hint="an https registry must have an https token service",
            )
        return realm

    def _fetch_token(self, params: dict[str, str], scopes: list[str]) -> tuple[str, float]:
        realm = self._check_realm(params["realm"])
        service = params.get("service", "")
        credentials = self._credentials
        deadline = self._deadline(False)
        try:
            if credentials and credentials.identity_token:
                form = {
                    "grant_type": "refresh_token",
                    "refresh_token": credentials.identity_token,
                    "service": service,
                    "client_id": USER_AGENT,
                    "scope": " ".join(scopes),
                }
                body = urlencode(form).encode()
                headers = {"Content-Type": "application/x-www-form-urlencoded"}
                response = self._exchange("POST", realm, headers, body, deadline)
            else:
                query = [("service", service)] if service else []
                query += [("scope", s) for s in scopes]
                url = _with_pairs(realm, query)
                headers = {"Authorization": credentials.basic()} if credentials else {}
                response = self._exchange("GET", url, headers, None, deadline)
        except TransportError as e:
            if deadline.remaining() <= 0:
                raise AuthError(
                    f"token endpoint {_redact(realm)}: no answer within the deadline",
                    hint=f"{TIMEOUT_ENV} sets it (seconds)",
                ) from None
            raise AuthError(f"token endpoint {_redact(realm)}: {type(e).__name__}") from None
        status = response.status_code
        if status != 200:
            _discard(response)
        if status in (401, 403):
            raise AuthError(
                f"{self.registry} refused the credentials", hint=self._credentials_hint(realm)
            )
        if status in REDIRECT_STATUSES:
            raise AuthError(
                f"token endpoint {_redact(realm)} answered with a redirect; credentials are "
                "not sent on"
            )
        if status != 200:
            raise AuthError(f"token endpoint {_redact(realm)}: HTTP {status}")
        try:
            raw = self._read_answer("GET", realm, response, MAX_ANSWER_BYTES).content
        except RegistryError as e:
            raise AuthError(f"token endpoint {_redact(realm)}: {e.message}") from None
        data = _json.loads(raw, f"the answer of token endpoint {_redact(realm)}", AuthError)
        if not isinstance(data, dict):
            raise AuthError(f"token endpoint {_redact(realm)} answered without a JSON object")
        token = data.get("token") or data.get("access_token")
        if not isinstance(token, str) or not _TOKEN.fullmatch(token):
            raise AuthError(f"token endpoint {_redact(realm)} gave no usable token")
        return token, token_lifetime(data.get("expires_in"))

    # -- scopes --------------------------------------------------------------------------

    @staticmethod
    def pull_scope(repository: str) -> tuple[str, ...]:
        """Read access to one repository."""
        return (f"repository:{repository}:pull",)

    @staticmethod
    def push_scope(repository: str, mount_from: str | None = None) -> tuple[str, ...]:
        """Write access; a mount also needs read access to the source repository."""
        scopes = [f"repository:{repository}:pull,push"]
        if mount_from and mount_from != repository:
            scopes.append(f"repository:{mount_from}:pull")
        return tuple(scopes)

    # -- API -----------------------------------------------------------------------------

    def ping(self) -> None:
        """`GET /v2/`: reachable, and the credentials (if any) accepted."""
        self.request("GET", f"{self.base}/v2/", scopes=())

    def blob_exists(self, repository: str, digest: str) -> bool:
        """HEAD the blob."""
        return self._stored_size(repository, digest) is not None

    def _stored_size(self, repository: str, digest: str) -> int | None:
        """The size the registry stores the blob at (HEAD), or None when it lacks it."""
        response = self.request(
            "HEAD",
            self._url(repository, f"blobs/{digest}"),
            scopes=self.pull_scope(repository),
            not_found_ok=True,
        )
        if response.status_code != 200:
            return None
        length = response.headers.get("Content-Length", "")
        return int(length) if length.isdigit() else -1

    def push_blob(
        self,
        repository: str,
        descriptor: Descriptor,
        source: Path | Callable[[], Path],
        *,
        mount_from: str | None = None,
    ) -> int:
        """Upload a blob from a file unless the registry has it; returns bytes sent.

        `source` may be a function giving the file: it is called only when the blob must be
        sent, after the HEAD and the mount, so a copy within a registry downloads nothing.
        The file must be exactly `descriptor.size` bytes: a longer one would be cut to the
        size and refused by the registry as another digest, a shorter one would break off. A
        blob the registry has at another size than the descriptor says is refused too.
        """
        if isinstance(source, Path):  # a file at hand is checked before anything is sent
            _check_size(source, descriptor)
        stored_size = self._stored_size(repository, descriptor.digest)
        if stored_size is not None:
            if stored_size >= 0 and stored_size != descriptor.size:
                raise InputError(
                    f"{self.registry}/{repository} has {descriptor.digest} at {stored_size} "
                    f"bytes, but its descriptor says {descriptor.size}",
                    hint="the manifest naming this blob is damaged",
                )
            return 0
        scopes = self.push_scope(repository, mount_from)
        uploads = self._url(repository, "blobs/uploads/")
        if mount_from and mount_from != repository:
            query = urlencode({"mount": descriptor.digest, "from": mount_from})
            response = self.request(
                "POST",
                f"{uploads}?{query}",
                scopes=scopes,
                headers={"Content-Length": "0"},
                ok=(201, 202),
            )
            if response.status_code == 201:
                return 0
        else:
            response = self.request(
                "POST", uploads, scopes=scopes, headers={"Content-Length": "0"}, ok=(202,)
            )
        path = source if isinstance(source, Path) else _check_size(source(), descriptor)
        location = self._location(response, uploads)
        size = descriptor.size
        key = f"push {descriptor.digest}"
        tick = self._progress_start(key, f"push {_short(descriptor)}", size)
        try:
            response = self._upload(descriptor, path, location, scopes, tick)
        finally:
            if self.progress is not None:
                self.progress.finish(key)
        stored = response.headers.get("Docker-Content-Digest")
        if stored and stored != descriptor.digest:
            raise DigestMismatchError(
                f"{self.registry}/{repository}: stored {stored}, sent {descriptor.digest}"
            )
        return size

    def _progress_start(self, key: str, label: str, total: int) -> Callable[[int], None] | None:
        if self.progress is None:
            return None
        progress = self.progress
        progress.start(key, label, total)
        return lambda amount: progress.advance(key, amount)

    def _upload(
        self,
        descriptor: Descriptor,
        source: Path,
        location: str,
        scopes: tuple[str, ...],
        tick: Callable[[int], None] | None,
    ) -> Response:
        size = descriptor.size
        if size <= MONOLITHIC_MAX:
            final = _with_query(location, digest=descriptor.digest)
            response = self.request(
                "PUT",
                final,
                scopes=scopes,
                body=file_body(source, 0, size, tick),
                ok=(201,),
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
            )
        else:
            offset = 0
            while offset < size:
                length = min(UPLOAD_CHUNK, size - offset)
                response = self.request(
                    "PATCH",
                    location,
                    scopes=scopes,
                    body=file_body(source, offset, length, tick),
                    ok=(202,),
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Length": str(length),
                        "Content-Range": f"{offset}-{offset + length - 1}",
                    },
                )
                location = self._location(response, location)
                offset += length
            response = self.request(
                "PUT",
                _with_query(location, digest=descriptor.digest),
                scopes=scopes,
                headers={"Content-Length": "0"},
                ok=(201,),
            )
        return response

    def _location(self, response: Response, base: str) -> str:
        """Where the upload goes on. Another host is allowed (it gets no credentials:
        `_send`), a non-http(s) URL, one with user:password in it, or a step down from
        https to http is not."""
        location = str(response.headers.get("Location", ""))
        if not location:
            raise RegistryError(f"{self.registry}: an upload answer without Location")
        return self._check_url(urljoin(base, location), base, "upload Location")

    def fetch_blob(self, repository: str, descriptor: Descriptor, target: Path) -> None:
        """Download a blob to `target`: hashed while it streams, renamed only when verified."""
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                digest = self._stream_blob(repository, descriptor, out)
            if digest != descriptor.digest:
                raise DigestMismatchError(
                    f"{self.registry}/{repository}: blob {descriptor.digest} arrived as {digest}",
                    hint="the registry served other bytes for this digest; nothing was kept",
                )
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _stream_blob(self, repository: str, descriptor: Descriptor, out: BinaryIO) -> str:
        algorithm, _, _ = descriptor.digest.partition(":")
        if algorithm != "sha256":
            raise ManifestError(f"unsupported digest algorithm {algorithm}")
        url = self._url(repository, f"blobs/{descriptor.digest}")
        response = self.request(
            "GET", url, scopes=self.pull_scope(repository), stream=True, ok=(200,), blob=True
        )
        declared = _content_length(response)
        if declared is not None and declared != descriptor.size:
            _discard(response)
            raise DigestMismatchError(
                f"{self.registry}/{repository}: blob {descriptor.digest} is announced as "
                f"{declared} bytes, but its descriptor says {descriptor.size}",
                hint="the registry serves other bytes for this digest; nothing was kept",
            )
        hasher = hashlib.sha256()
        received = 0
        key = f"pull {descriptor.digest}"
        tick = self._progress_start(key, f"pull {_short(descriptor)}", descriptor.size)
        try:
            # the pieces as the socket gave them: re-chunking to 1 MiB made httpx copy every
            # piece into a growing buffer (0.4 s of CPU per 512 MiB)
            for piece in response.iter_raw():
                if tick is not None:
                    tick(len(piece))
                received += len(piece)
                if received > descriptor.size:
                    raise DigestMismatchError(
                        f"{self.registry}/{repository}: blob {descriptor.digest} is longer "
                        f"than its {descriptor.size} bytes"
                    )
                hasher.update(piece)
                out.write(piece)
        except TransportError as e:
            raise self._broken(
                url, response, e, f"the transfer broke after {received} bytes"
            ) from None
        finally:
            response.close()
            if self.progress is not None:
                self.progress.finish(key)
        if received != descriptor.size:
            raise DigestMismatchError(
                f"{self.registry}/{repository}: blob {descriptor.digest} ended after {received} "
                f"of {descriptor.size} bytes"
            )
        digest: str = "sha256:" + hasher.hexdigest()
        return digest

    def read_blob(self, repository: str, descriptor: Descriptor, *, limit: int = 64 << 20) -> bytes:
        """A small blob (a config) in memory, checked against its digest and size."""
        if descriptor.media_type in (*mt.MANIFEST_TYPES, *mt.INDEX_TYPES):
            raw, _, _ = self.get_manifest(repository, descriptor.digest, size=descriptor.size)
            return raw
        if descriptor.size > limit:
            raise RegistryError(
                f"blob {descriptor.digest} is {descriptor.size} bytes; limit {limit}"
            )
        buffer = io.BytesIO()
        digest = self._stream_blob(repository, descriptor, buffer)
        if digest != descriptor.digest:
            raise DigestMismatchError(
                f"{self.registry}/{repository}: blob {descriptor.digest} arrived as {digest}"
            )
        return buffer.getvalue()

    def referrers(
        self, repository: str, digest: str, artifact_type: str | None = None
    ) -> list[Descriptor] | None:
        """The referrers API's answer, or None when the registry has no referrers API."""
        url = self._url(repository, f"referrers/{digest}")
        if artifact_type:
            url = _with_query(url, artifactType=artifact_type)
        found: list[Descriptor] = []
        for response in self._pages(url, repository, {"Accept": mt.OCI_INDEX}, not_found_ok=True):
            if response.status_code == 404:
                return None
            found.extend(Index.from_bytes(response.content).manifests)
            if len(found) > MAX_REFERRERS:
                raise RegistryError(
                    f"{self.registry}/{repository}: more than {MAX_REFERRERS} referrers of "
                    f"{digest}; not listing them all"
                )
        return found

    def _pages(
        self,
        url: str,
        repository: str,
        headers: dict[str, str] | None = None,
        *,
        not_found_ok: bool = False,
    ) -> Iterator[Response]:
        """The pages of a `Link: <...>; rel="next"` listing: on this registry only, each
        page once, at most `MAX_PAGES`."""
        seen: set[str] = set()
        next_url: str | None = url
        while next_url:
            if next_url in seen:
                raise RegistryError(f"{self.registry}: the pages of {_redact(url)} loop")
            if len(seen) >= MAX_PAGES:
                raise RegistryError(f"{self.registry}: {_redact(url)} has over {MAX_PAGES} pages")
            if _origin(next_url) != self.origin:
                raise RegistryError(
                    f"{self.registry}: the next page of {_redact(url)} is on another host "
                    f"({_host(next_url)}); not followed"
                )
            seen.add(next_url)
            response = self.request(
                "GET",
                next_url,
                scopes=self.pull_scope(repository),
                headers=headers,
                ok=(200,),
                not_found_ok=not_found_ok,
            )
            yield response
            next_url = _next_link(response.headers.get("Link", ""), next_url)

    def get_manifest(
        self, repository: str, reference: str, *, size: int | None = None
    ) -> tuple[bytes, str, str]:
        """The manifest or index bytes, their media type and digest (checked); with the
        `size` of a descriptor naming it, that is checked too (a lie is an error)."""
        url = self._url(repository, f"manifests/{reference}")
        response = self.request(
            "GET",
            url,
            scopes=self.pull_scope(repository),
            headers={"Accept": MANIFEST_ACCEPT},
            stream=True,
            ok=(200,),
        )
        try:
            declared = _content_length(response) or 0
            if declared > MAX_MANIFEST_BYTES:
                raise ManifestError(f"{repository}:{reference}: manifest of {declared} bytes")
            data = bytearray()
            for piece in response.iter_raw():
                data += piece
                if len(data) > MAX_MANIFEST_BYTES:
                    raise ManifestError(f"{repository}:{reference}: manifest too large")
        except TransportError as e:
            raise self._broken(url, response, e, "the manifest broke off") from None
        finally:
            response.close()
        raw = bytes(data)
        digest = sha256_digest(raw)
        expected = reference if reference.startswith("sha256:") else None
        stated = response.headers.get("Docker-Content-Digest", "")
        if stated.startswith("sha256:") and expected is None:
            expected = stated
        if expected is not None and digest != expected:
            raise DigestMismatchError(
                f"{self.registry}/{repository}@{reference}: manifest digest {digest}, "
                f"expected {expected}"
            )
        if size is not None and size != len(raw):
            raise ManifestError(
                f"{self.registry}/{repository}@{digest}: a descriptor says {size} bytes, "
                f"the manifest is {len(raw)}",
                hint="the index or manifest naming it lies about its size",
            )
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        return raw, media_type, digest

    def head_manifest(self, repository: str, reference: str) -> Descriptor | None:
        """The descriptor of a manifest, or None when it is not there.

        Measured from the manifest itself (a GET, digest checked): a HEAD's Content-Length
        and Docker-Content-Digest are the registry's word, and a descriptor made of them
        (the subject of a signature or SBOM) would carry a lie into what we write.
        """
        try:
            raw, media_type, digest = self.get_manifest(repository, reference)
        except NotFoundError:
            return None
        return Descriptor(media_type, digest, len(raw))

    def put_manifest(
        self, repository: str, reference: str, media_type: str, data: bytes
    ) -> Headers:
        """PUT the exact bytes under a tag or digest; returns the answer's headers."""
        response = self.request(
            "PUT",
            self._url(repository, f"manifests/{reference}"),
            scopes=self.push_scope(repository),
            headers={"Content-Type": media_type},
            body=data,
            ok=(201, 200, 202),
        )
        stored = response.headers.get("Docker-Content-Digest")
        if stored and stored != sha256_digest(data):
            raise DigestMismatchError(f"{repository}:{reference}: the registry stored {stored}")
        return response.headers

    def list_tags(self, repository: str) -> list[str]:
        """Every tag, following `Link: <...>; rel="next"` pagination."""
        tags: list[str] = []
        for response in self._pages(self._url(repository, "tags/list?n=1000"), repository):
            document = _json.loads(response.content, f"the tag list of {repository}", RegistryError)
            page = document.get("tags") if isinstance(document, dict) else None
            if page is None:
                continue
            if not isinstance(page, list) or not all(isinstance(t, str) for t in page):
                raise RegistryError(f"{self.registry}: the tag list of {repository} is malformed")
            tags.extend(page)
            if len(tags) > MAX_TAGS:
                raise RegistryError(f"{self.registry}/{repository}: more than {MAX_TAGS} tags")
        return tags


def _check_size(path: Path, descriptor: Descriptor) -> Path:
    """`path`, if it holds exactly the descriptor's size; else an error before any upload."""
    try:
        actual = path.stat().st_size
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror}") from None
    if actual != descriptor.size:
        raise InputError(
            f"{path} is {actual} bytes, but its descriptor ({descriptor.digest}) says "
            f"{descriptor.size}; nothing was sent",
            hint="the layout's blob or the manifest naming it is damaged",
        )
    return path


def _with_query(url: str, **params: str) -> str:
    """`url` with `params` merged into its query (distribution's `_state` stays)."""
    return _with_pairs(url, list(params.items()))


def _with_pairs(url: str, pairs: list[tuple[str, str]]) -> str:
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), *pairs]
    return urlunsplit(parts._replace(query=urlencode(query)))


# A bearer token as it goes into a header: visible ASCII only (RFC 6750's b64token and the
# JWTs registries issue are narrower), so a hostile token endpoint cannot inject headers.
_TOKEN = re.compile(r"[\x21-\x7e]{1,65536}")


def _metered(chunks: Iterator[bytes], deadline: _Deadline) -> Iterator[bytes]:
    """An upload body that moves its deadline with every piece sent."""
    for piece in chunks:
        deadline.moved += len(piece)
        yield piece


def _origin(url: str) -> tuple[str, str, int | None]:
    """Scheme, host and port (default ports made explicit): what credentials are bound to."""
    try:
        parts = urlsplit(url)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
    except ValueError:
        return ("", "", None)
    return (parts.scheme.lower(), (parts.hostname or "").lower(), port)


def _host(url: str) -> str:
    """`host[:port]` of a URL, for messages (no user:password, path or query)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{host}:{parts.port}" if parts.port else host


def _next_link(header: str, base: str) -> str | None:
    """The `rel="next"` target of a `Link` header (RFC 8288), parsed without a regex that
    could backtrack over a hostile header."""
    if len(header) > MAX_LINK_LENGTH:
        raise RegistryError("the registry sent a Link header too long to be real")
    for part in header.split(","):
        target, sep, params = part.strip().partition(">")
        if not sep or not target.startswith("<"):
            continue
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "rel" and "next" in value.strip().strip('"').split():
                return urljoin(base, target[1:].strip())
    return None


def _redact(url: str) -> str:
    """A URL without user:password and query (upload state, tokens), for messages."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=netloc, query="", fragment=""))


def _safe_text(error: Exception) -> str:
    return re.sub(r"(?i)(authorization|token|password)\S*", "[redacted]", str(error))[:200]


def _short(descriptor: Descriptor) -> str:
    title = descriptor.annotations.get(mt.ANNOTATION_TITLE)
    return title or descriptor.digest[7:19]


def _discard(response: Response) -> None:
    response.close()


def _content_length(response: Response) -> int | None:
    """The declared body length, if the header is a plain number."""
    value = response.headers.get("Content-Length", "").strip()
    return int(value) if value.isdigit() and len(value) < 20 else None


def _deadline_of(response: Response) -> _Deadline | None:
    stream = response.stream
    return stream.deadline if isinstance(stream, _GuardedStream) else None

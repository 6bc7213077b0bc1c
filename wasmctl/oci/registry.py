"""The registry client: OCI distribution-spec v1.1 on one `httpx.Client`.

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

The client takes an `httpx.Client` (the one I/O seam): tests hand it a real one pointed at a
local registry, or a respx-routed one for what cannot run here.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import re
import ssl
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import httpx

from wasmctl.errors import InputError, RemoteError, WasmctlError
from wasmctl.oci import media_types as mt
from wasmctl.oci.auth import AuthError, Credentials, TokenCache, load_credentials, parse_challenge
from wasmctl.oci.models import (
    MAX_MANIFEST_BYTES,
    Descriptor,
    Index,
    ManifestError,
    sha256_digest,
)

CHUNK = 1 << 20  # read and hash in 1 MiB pieces
MONOLITHIC_MAX = 32 << 20  # blobs up to this size go in one PUT
UPLOAD_CHUNK = 64 << 20  # larger ones in PATCHes of this size
MANIFEST_ACCEPT = ", ".join(
    (mt.OCI_MANIFEST, mt.OCI_INDEX, mt.DOCKER_MANIFEST, mt.DOCKER_MANIFEST_LIST)
)
DOCKER_HUB_API = "registry-1.docker.io"
USER_AGENT = "wasmctl"


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
                    raise RegistryError(f"{path} shrank while it was being uploaded")
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
        http: httpx.Client | None = None,
        plain_http: bool = False,
        ca_file: Path | None = None,
        credentials: Credentials | None = None,
        use_config: bool = True,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        progress: Progress | None = None,
    ) -> None:
        self.registry = registry
        host = DOCKER_HUB_API if registry == "docker.io" else registry
        self.base = f"{'http' if plain_http else 'https'}://{host}"
        self.http = http or httpx.Client(
            verify=ssl.create_default_context(cafile=str(ca_file)) if ca_file else True,
            timeout=httpx.Timeout(60.0, connect=15.0),
            follow_redirects=True,
            headers={"User-Agent": USER_AGENT},
        )
        self._own_http = http is None
        self._credentials = credentials
        if credentials is None and use_config:
            self._credentials = load_credentials(registry)
        self._basic = False
        self._tokens = TokenCache()
        self.retry = retry or RetryPolicy()
        self.progress = progress
        self._sleep = sleep

    def close(self) -> None:
        """Close the connection pool (if this client made it)."""
        if self._own_http:
            self.http.close()

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
    ) -> httpx.Response:
        """Send with auth and retries; an answer outside `ok` (and 404 unless allowed) raises."""
        started = time.monotonic()
        auth_rounds = 0
        attempt = 0
        while True:
            request_headers = dict(headers or {})
            authorization = self._authorization(scopes)
            if authorization:
                request_headers["Authorization"] = authorization
            content: Any = body() if callable(body) else body
            request = self.http.build_request(method, url, headers=request_headers, content=content)
            try:
                response = self.http.send(request, stream=stream)
            except httpx.TransportError as e:
                # A refused connection or a failed TLS handshake will not mend in seconds;
                # a connection reset or a timeout mid-request may.
                if isinstance(e, httpx.ConnectError) or not self._may_retry(attempt, started, None):
                    raise RegistryError(
                        f"{method} {_redact(url)}: {type(e).__name__}: {_safe_text(e)}",
                        hint="is the registry up and reachable? --plain-http for HTTP registries",
                    ) from None
                self._sleep(self.retry.delay(attempt, None))
                attempt += 1
                continue
            if response.status_code == 401 and auth_rounds < 2:
                _discard(response)
                auth_rounds += 1
                self._authenticate(response, scopes)
                continue
            if response.status_code == 429 or response.status_code >= 500:
                retry_after = response.headers.get("Retry-After")
                _discard(response)
                if self._may_retry(attempt, started, retry_after):
                    self._sleep(self.retry.delay(attempt, retry_after))
                    attempt += 1
                    continue
            if response.status_code in ok or (not_found_ok and response.status_code == 404):
                return response
            raise self._error(method, url, response)

    def _may_retry(self, attempt: int, started: float, retry_after: str | None) -> bool:
        if attempt + 1 >= self.retry.attempts:
            return False
        elapsed = time.monotonic() - started
        return elapsed + self.retry.delay(attempt, retry_after) < self.retry.deadline

    def _error(self, method: str, url: str, response: httpx.Response) -> WasmctlError:
        if not response.is_closed:
            response.read()
        codes: tuple[str, ...] = ()
        detail = ""
        try:
            errors = response.json().get("errors") or []
            codes = tuple(str(e.get("code", "")) for e in errors if isinstance(e, dict))
            detail = "; ".join(
                f"{e.get('code')}: {e.get('message')}" for e in errors if isinstance(e, dict)
            )
        except (ValueError, AttributeError):
            detail = response.text[:200].strip()
        status = response.status_code
        hint = None
        if status == 401:
            hint = "log in first: wasmctl login " + self.registry
        elif status == 403:
            hint = "the credentials lack permission for this repository"
        message = f"{method} {_redact(url)}: HTTP {status}" + (f" ({detail})" if detail else "")
        if status == 404:
            return NotFoundError(message)
        if 400 <= status < 500 and status not in (401, 403, 408, 429):
            return InputError(message)  # the registry refused what was sent: retrying won't help
        return RegistryError(message, status=status, codes=codes, hint=hint)

    def _authenticate(self, response: httpx.Response, scopes: tuple[str, ...]) -> None:
        challenge = parse_challenge(response.headers.get("WWW-Authenticate", ""))
        if challenge is None:
            raise AuthError(f"{self.registry} asked for authentication without saying how")
        if challenge.scheme == "basic":
            if not self._credentials or not self._credentials.username:
                raise AuthError(
                    f"{self.registry} needs credentials", hint=f"wasmctl login {self.registry}"
                )
            if self._basic:
                raise AuthError(
                    f"{self.registry} refused the credentials",
                    hint=f"wasmctl login {self.registry}",
                )
            self._basic = True
            return
        if challenge.scheme != "bearer" or "realm" not in challenge.params:
            raise AuthError(f"{self.registry}: unsupported authentication {challenge.scheme}")
        wanted = set(scopes)
        if challenge.params.get("error") == "insufficient_scope" and challenge.params.get("scope"):
            wanted.update(challenge.params["scope"].split(" "))
        self._tokens.drop(self.registry, scopes)
        token, lifetime = self._fetch_token(challenge.params, sorted(wanted))
        self._tokens.put(self.registry, scopes, token, lifetime)

    def _fetch_token(self, params: dict[str, str], scopes: list[str]) -> tuple[str, float]:
        realm = params["realm"]
        service = params.get("service", "")
        credentials = self._credentials
        try:
            if credentials and credentials.identity_token:
                form = {
                    "grant_type": "refresh_token",
                    "refresh_token": credentials.identity_token,
                    "service": service,
                    "client_id": USER_AGENT,
                    "scope": " ".join(scopes),
                }
                response = self.http.post(realm, data=form)
            else:
                query: list[tuple[str, str | int | float | bool | None]] = (
                    [("service", service)] if service else []
                )
                query += [("scope", s) for s in scopes]
                headers = {"Authorization": credentials.basic()} if credentials else {}
                response = self.http.get(realm, params=query, headers=headers)
        except httpx.TransportError as e:
            raise AuthError(f"token endpoint {_redact(realm)}: {type(e).__name__}") from None
        if response.status_code in (401, 403):
            raise AuthError(
                f"{self.registry} refused the credentials", hint=f"wasmctl login {self.registry}"
            )
        if response.status_code != 200:
            raise AuthError(f"token endpoint {_redact(realm)}: HTTP {response.status_code}")
        try:
            data = response.json()
        except ValueError:
            raise AuthError(f"token endpoint {_redact(realm)} answered without JSON") from None
        token = data.get("token") or data.get("access_token")
        if not isinstance(token, str) or not token:
            raise AuthError(f"token endpoint {_redact(realm)} gave no token")
        lifetime = data.get("expires_in")
        return token, float(lifetime) if isinstance(lifetime, int | float) and lifetime > 0 else 60

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
        response = self.request(
            "HEAD",
            self._url(repository, f"blobs/{digest}"),
            scopes=self.pull_scope(repository),
            not_found_ok=True,
        )
        return response.status_code == 200

    def push_blob(
        self,
        repository: str,
        descriptor: Descriptor,
        source: Path,
        *,
        mount_from: str | None = None,
    ) -> int:
        """Upload a blob from a file unless the registry has it; returns bytes sent."""
        if self.blob_exists(repository, descriptor.digest):
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
        location = self._location(response, uploads)
        size = descriptor.size
        key = f"push {descriptor.digest}"
        tick = self._progress_start(key, f"push {_short(descriptor)}", size)
        try:
            response = self._upload(descriptor, source, location, scopes, tick)
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
    ) -> httpx.Response:
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

    def _location(self, response: httpx.Response, base: str) -> str:
        location = str(response.headers.get("Location", ""))
        if not location:
            raise RegistryError(f"{self.registry}: an upload answer without Location")
        return urljoin(base, location)

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
            "GET", url, scopes=self.pull_scope(repository), stream=True, ok=(200,)
        )
        hasher = hashlib.sha256()
        received = 0
        key = f"pull {descriptor.digest}"
        tick = self._progress_start(key, f"pull {_short(descriptor)}", descriptor.size)
        try:
            # iter_raw() without a size hands over what the socket gave: re-chunking to 1 MiB
            # made httpx copy every piece into a growing buffer (0.4 s of CPU per 512 MiB).
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
        except httpx.TransportError as e:
            raise RegistryError(
                f"GET {_redact(url)}: the transfer broke after {received} bytes "
                f"({type(e).__name__})"
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
            raw, _, _ = self.get_manifest(repository, descriptor.digest)
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
        url: str | None = self._url(repository, f"referrers/{digest}")
        if artifact_type:
            url = _with_query(url or "", artifactType=artifact_type)
        found: list[Descriptor] = []
        pages = 0
        while url and pages < 1000:
            response = self.request(
                "GET",
                url,
                scopes=self.pull_scope(repository),
                headers={"Accept": mt.OCI_INDEX},
                not_found_ok=True,
            )
            if response.status_code == 404:
                return None
            index = Index.from_bytes(response.content)
            found.extend(index.manifests)
            url = _next_link(response.headers.get("Link", ""), url)
            pages += 1
        return found

    def get_manifest(self, repository: str, reference: str) -> tuple[bytes, str, str]:
        """The manifest or index bytes, their media type and digest (checked)."""
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
            declared = int(response.headers.get("Content-Length", "0") or 0)
            if declared > MAX_MANIFEST_BYTES:
                raise ManifestError(f"{repository}:{reference}: manifest of {declared} bytes")
            data = bytearray()
            for piece in response.iter_bytes(CHUNK):
                data += piece
                if len(data) > MAX_MANIFEST_BYTES:
                    raise ManifestError(f"{repository}:{reference}: manifest too large")
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
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        return raw, media_type, digest

    def head_manifest(self, repository: str, reference: str) -> Descriptor | None:
        """The descriptor of a manifest, or None when it is not there."""
        response = self.request(
            "HEAD",
            self._url(repository, f"manifests/{reference}"),
            scopes=self.pull_scope(repository),
            headers={"Accept": MANIFEST_ACCEPT},
            not_found_ok=True,
        )
        if response.status_code == 404:
            return None
        digest = response.headers.get("Docker-Content-Digest", "")
        size = int(response.headers.get("Content-Length", "0") or 0)
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        if not digest:
            raw, media_type, digest = self.get_manifest(repository, reference)
            size = len(raw)
        return Descriptor(media_type, digest, size)

    def put_manifest(
        self, repository: str, reference: str, media_type: str, data: bytes
    ) -> httpx.Headers:
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
        url: str | None = self._url(repository, "tags/list?n=1000")
        tags: list[str] = []
        pages = 0
        while url and pages < 10_000:
            response = self.request("GET", url, scopes=self.pull_scope(repository), ok=(200,))
            tags.extend(response.json().get("tags") or [])
            url = _next_link(response.headers.get("Link", ""), url)
            pages += 1
        return tags


def _with_query(url: str, **params: str) -> str:
    """`url` with `params` merged into its query (distribution's `_state` stays)."""
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), *params.items()]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _next_link(header: str, base: str) -> str | None:
    match = re.search(r'<([^>]+)>\s*;\s*rel="?next"?', header)
    return urljoin(base, match.group(1)) if match else None


def _redact(url: str) -> str:
    """A URL without its query (upload state, tokens) for messages."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(query="", fragment=""))


def _safe_text(error: Exception) -> str:
    return re.sub(r"(?i)(authorization|token|password)\S*", "[redacted]", str(error))[:200]


def _short(descriptor: Descriptor) -> str:
    title = descriptor.annotations.get(mt.ANNOTATION_TITLE)
    return title or descriptor.digest[7:19]


def _discard(response: httpx.Response) -> None:
    response.close()

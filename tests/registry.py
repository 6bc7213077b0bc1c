"""A real OCI registry for the tests: Debian's ``docker-registry`` (distribution 2.8.2).

Helpers only; the fixtures that use them live in ``tests/conftest.py``.

- :func:`run_registry` starts ``/usr/bin/docker-registry serve CONFIG.yml`` on a free loopback
  port with a temporary storage directory (never as a system service), optionally with TLS
  (a ``trustme`` CA), htpasswd Basic auth (bcrypt cost 4) or Bearer token auth, and yields a
  :class:`RegistryServer` describing it.
- :class:`TokenIssuer` is the token service for the Bearer configuration: the docker token
  protocol (``GET /token`` with Basic credentials) and its OAuth2 variant (``POST /token`` with
  ``grant_type=password`` or ``refresh_token``), recording every request so tests can assert
  which scopes a client asked for.
- :func:`unique_repo` names a repository no other test uses, so session-wide registries can be
  shared.

Distribution quirks relied on here (probed against 2.8.2): htpasswd auth works over plain HTTP
(no TLS needed); the token verifier only needs the signing certificate in the JWT's ``x5c``
header to chain to ``rootcertbundle`` (no libtrust ``kid``); ``Location`` headers are absolute
unless ``http.relativeurls`` is set, which is deliberately left off.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import itertools
import json
import os
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar, Final
from urllib.parse import parse_qs, urlsplit

import bcrypt
import httpx
import jwt
import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.loopback import LoopbackService, QuietHandler, ServerThread

REGISTRY_BINARY: Final = "/usr/bin/docker-registry"
USERNAME: Final = "wasmctl-tester"
PASSWORD: Final = "correct horse battery staple"
SERVICE: Final = "wasmctl-test-registry"
ISSUER: Final = "wasmctl-test-token-issuer"
STARTUP_TIMEOUT: Final = 15.0
# distribution accepts a token until 60 s after its ``exp`` (and 60 s before ``nbf``).
REGISTRY_TOKEN_LEEWAY: Final = 60

# -- Repository names ---------------------------------------------------------------

_repo_counter = itertools.count()


def unique_repo(hint: str = "test") -> str:
    """A repository name no other caller in this process gets, valid per the distribution spec.

    ``hint`` (e.g. a test's name) is reduced to ``[a-z0-9-]`` and shortened so the name stays
    readable in registry logs: ``wasmctl-tests/<hint>-<n>-<random>``.
    """
    slug = re.sub(r"[^a-z0-9]+", "-", hint.lower()).strip("-")[:48].strip("-") or "test"
    return f"wasmctl-tests/{slug}-{next(_repo_counter)}-{uuid.uuid4().hex[:8]}"


# -- The registry process -----------------------------------------------------------


@dataclass(frozen=True)
class RegistryServer:
    """A running registry, as the tests see it.

    ``host`` is ``127.0.0.1:PORT`` (what goes into a reference), ``url`` the base URL with its
    scheme. ``ca_file`` is the PEM bundle to verify TLS with (``None`` for plain HTTP).
    ``username``/``password`` are set when the registry needs credentials (Basic or token).
    ``issuer`` is the token service of a Bearer registry. ``storage`` is the registry's
    filesystem root, ``log`` its combined stdout/stderr, ``config`` its YAML configuration.
    """

    host: str
    url: str
    scheme: str
    ca_file: Path | None
    username: str | None
    password: str | None
    issuer: TokenIssuer | None
    storage: Path
    log: Path
    config: Path

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """What to pass as ``httpx.Client(verify=...)`` for this registry."""
        if self.ca_file is None:
            return True
        return ssl.create_default_context(cafile=str(self.ca_file))

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the registry's log, for failure messages."""
        return log_tail(self.log, lines)


@dataclass(frozen=True)
class TlsFiles:
    """A server certificate for 127.0.0.1/localhost and the CA bundle that verifies it."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def make_tls_files(directory: Path) -> TlsFiles:
    """Write a fresh ``trustme`` CA and a server certificate for the loopback names."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    files = TlsFiles(
        ca_file=directory / "ca.pem",
        cert_file=directory / "server-chain.pem",
        key_file=directory / "server-key.pem",
    )
    ca.cert_pem.write_to_path(str(files.ca_file))
    files.cert_file.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(files.key_file))
    return files


def htpasswd_line(username: str, password: str, *, cost: int = 4) -> str:
    """An htpasswd entry with a bcrypt hash (``$2b$04$...`` by default).

    Cost 4 keeps Basic auth cheap: distribution checks the hash on every request, and at the
    default cost 12 one tiny push takes seconds.
    """
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=cost)).decode()
    return f"{username}:{hashed}\n"


def registry_binary() -> str:
    """The path of ``docker-registry``, or fail the test saying how to install it."""
    if not os.access(REGISTRY_BINARY, os.X_OK):
        found = shutil.which("docker-registry")
        if found is None:
            pytest.fail(
                "docker-registry (Debian's CNCF distribution 2.8) is not installed; "
                "`scripts/setup --test` installs it (apt-get install docker-registry)",
                pytrace=False,
            )
        return found
    return REGISTRY_BINARY


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join(text.splitlines()[-lines:])


def registry_config(
    *,
    port: int,
    storage: Path,
    tls: TlsFiles | None = None,
    htpasswd: Path | None = None,
    token_auth: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The distribution configuration for one test registry."""
    http: dict[str, Any] = {
        "addr": f"127.0.0.1:{port}",
        # An explicit secret keeps the log quiet (otherwise one is generated with a warning).
        "secret": secrets.token_hex(16),
        "headers": {"X-Content-Type-Options": ["nosniff"]},
    }
    if tls is not None:
        http["tls"] = {"certificate": str(tls.cert_file), "key": str(tls.key_file)}
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "info", "formatter": "text", "accesslog": {"disabled": False}},
        "storage": {
            "filesystem": {"rootdirectory": str(storage)},
            "delete": {"enabled": True},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": http,
    }
    if htpasswd is not None and token_auth is not None:
        raise ValueError("a registry has one auth scheme: htpasswd or token")
    if htpasswd is not None:
        config["auth"] = {"htpasswd": {"realm": "basic-realm", "path": str(htpasswd)}}
    if token_auth is not None:
        config["auth"] = {"token": token_auth}
    return config


@contextlib.contextmanager
def run_registry(
    workdir: Path,
    *,
    tls: bool = False,
    basic_auth: bool = False,
    issuer: TokenIssuer | None = None,
    username: str = USERNAME,
    password: str = PASSWORD,
) -> Iterator[RegistryServer]:
    """Run one ``docker-registry`` process for the duration of the ``with`` block.

    ``workdir`` receives the configuration, storage, certificates and the log. The block is
    entered once ``GET /v2/`` answers (200, or 401 when auth is configured); the process is
    terminated on exit.
    """
    binary = registry_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    storage = workdir / "storage"
    storage.mkdir(exist_ok=True)
    log = workdir / "registry.log"
    tls_files = make_tls_files(workdir / "tls") if tls else None
    htpasswd = None
    if basic_auth:
        htpasswd = workdir / "htpasswd"
        htpasswd.write_text(htpasswd_line(username, password), encoding="utf-8")
    token_auth = issuer.registry_auth_config() if issuer is not None else None
    scheme = "https" if tls else "http"

    # The port is chosen before the process binds it; on the rare collision, try another.
    for attempt in itertools.count(1):
        port = free_port()
        config = workdir / "config.yml"
        config.write_text(
            json.dumps(  # JSON is YAML
                registry_config(
                    port=port, storage=storage, tls=tls_files, htpasswd=htpasswd,
                    token_auth=token_auth,
                ),
                indent=2,
            ),
            encoding="utf-8",
        )  # fmt: skip
        server = RegistryServer(
            host=f"127.0.0.1:{port}",
            url=f"{scheme}://127.0.0.1:{port}",
            scheme=scheme,
            ca_file=tls_files.ca_file if tls_files else None,
            username=username if (basic_auth or issuer is not None) else None,
            password=password if (basic_auth or issuer is not None) else None,
            issuer=issuer,
            storage=storage,
            log=log,
            config=config,
        )
        with log.open("ab") as log_file:
            process = subprocess.Popen(
                [binary, "serve", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                # REGISTRY_* variables would override the configuration file.
                env={k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")},
            )
        try:
            if _wait_until_ready(server, process):
                break
            if attempt >= 3 or "address already in use" not in log_tail(log):
                pytest.fail(
                    f"docker-registry exited with {process.returncode} before serving "
                    f"{server.url}/v2/; log tail:\n{log_tail(log)}",
                    pytrace=False,
                )
        except BaseException:
            _stop(process)
            raise
    try:
        yield server
    finally:
        _stop(process)


def _wait_until_ready(server: RegistryServer, process: subprocess.Popen[bytes]) -> bool:
    """True once ``/v2/`` answers; False if the process died first; fails on timeout."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    with httpx.Client(verify=server.verify, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            try:
                status = client.get(f"{server.url}/v2/").status_code
            except httpx.TransportError:
                time.sleep(0.02)
                continue
            if status in (200, 401):
                return True
            pytest.fail(
                f"docker-registry answered GET /v2/ with {status}; log tail:\n"
                f"{log_tail(server.log)}",
                pytrace=False,
            )
    pytest.fail(
        f"docker-registry did not answer {server.url}/v2/ within {STARTUP_TIMEOUT:.0f} s; "
        f"log tail:\n{log_tail(server.log)}",
        pytrace=False,
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- The token issuer ---------------------------------------------------------------


@dataclass(frozen=True)
class TokenRequest:
    """One request the token issuer answered, as recorded for assertions.

    ``method`` is ``GET`` (docker token protocol) or ``POST`` (OAuth2). ``grant_type`` is the
    POST's ``grant_type`` (``None`` for GET). ``scopes`` are the scope strings exactly as asked,
    in order (e.g. ``"repository:a/b:pull,push"``). ``credentials`` says what the client
    presented: ``"basic"``, ``"password"`` (POST form), ``"refresh_token"`` or ``"none"``.
    ``username`` is the authenticated subject (``None`` if anonymous or rejected). ``granted``
    lists the access put in the token, as scope strings (empty when nothing was granted or the
    request was refused). ``status`` is the HTTP status answered.
    """

    method: str
    grant_type: str | None
    service: str | None
    scopes: tuple[str, ...]
    credentials: str
    username: str | None
    status: int
    granted: tuple[str, ...]
    client_id: str | None = None
    offline: bool = False
    refresh_token_issued: bool = False
    scope_params: tuple[str, ...] = ()

    @property
    def scope_set(self) -> frozenset[str]:
        return frozenset(self.scopes)


@dataclass(frozen=True)
class Scope:
    """A parsed ``type:name:actions`` scope (``repository:a/b:pull,push``)."""

    type: str
    name: str
    actions: frozenset[str]

    @classmethod
    def parse(cls, text: str) -> Scope | None:
        resource, sep, actions = text.rpartition(":")
        kind, sep2, name = resource.partition(":")
        if not (sep and sep2 and kind and name):
            return None
        return cls(kind, name, frozenset(a for a in actions.split(",") if a))

    def render(self, actions: frozenset[str] | None = None) -> str:
        chosen = self.actions if actions is None else actions
        return f"{self.type}:{self.name}:{','.join(sorted(chosen))}"


# (username or None for anonymous, scope asked) -> actions granted
GrantPolicy = Callable[[str | None, Scope], frozenset[str]]


@dataclass
class TokenIssuer(LoopbackService):
    """A loopback token service for distribution's ``auth.token`` mode.

    Endpoints (``realm`` is ``http://127.0.0.1:PORT/token``):

    - ``GET /token?service=S&scope=repository:NAME:pull,push&scope=...`` with optional Basic
      credentials: the docker token protocol. Answers ``{"token", "access_token",
      "expires_in", "issued_at"}`` (fields selectable with ``response_fields``); with
      ``offline_token=true`` and valid credentials also a ``refresh_token``.
    - ``POST /token`` form ``grant_type=password&username&password`` or
      ``grant_type=refresh_token&refresh_token``, plus ``service``, ``client_id``, ``scope``
      (space-separated, or repeated) and ``access_type=offline`` (password grant: also return a
      ``refresh_token``). Answers ``{"access_token", "expires_in", "scope", "issued_at"}``.

    Bad credentials get 401; a malformed POST (unknown grant type, missing fields) gets 400.

    Knobs for tests (reset with :meth:`reset`):

    - ``expires_in``: seconds announced and put in the JWT's ``exp`` (``None``: field omitted,
      the JWT lives 60 s, the protocol's default);
    - ``exp_offset``: seconds added to the JWT's ``exp`` only, e.g. ``-3600`` for tokens that
      the registry already rejects (401 ``error="invalid_token"``) while ``expires_in`` still
      looks fine. Note the registry's leeway (:data:`REGISTRY_TOKEN_LEEWAY`): a token with
      ``expires_in=1`` is still accepted for a minute, so short ``expires_in`` values test a
      client's own bookkeeping, and ``exp_offset`` tests its reaction to a rejected token;
    - ``withhold``: actions never granted (``{"push"}`` makes every token pull-only, which
      provokes ``insufficient_scope`` on push);
    - ``anonymous_actions``: what a client without credentials gets (default: nothing — the
      token is valid for ``/v2/`` only);
    - ``policy``: a function ``(username, Scope) -> actions`` overriding all of the above;
    - ``oauth_enabled``: when false, ``POST`` answers 404 (a token server without OAuth2);
    - ``response_fields``: which of ``token``/``access_token`` a GET answer carries.
    """

    workdir: Path
    service: str = SERVICE
    issuer_name: str = ISSUER
    users: dict[str, str] = field(default_factory=lambda: {USERNAME: PASSWORD})
    expires_in: int | None = 300
    exp_offset: int = 0
    withhold: frozenset[str] = frozenset()
    anonymous_actions: frozenset[str] = frozenset()
    policy: GrantPolicy | None = None
    oauth_enabled: bool = True
    response_fields: tuple[str, ...] = ("token", "access_token")
    refresh_tokens: dict[str, str] = field(default_factory=dict)
    _requests: list[TokenRequest] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _serving: ServerThread | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._cert = _self_signed_certificate(self._key, self.issuer_name)
        self.cert_file = self.workdir / "token-signer.pem"
        self.cert_file.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))
        self._x5c = base64.b64encode(self._cert.public_bytes(serialization.Encoding.DER)).decode()

    # lifecycle (LoopbackService: start, stop, with, url)

    service_name: ClassVar[str] = "token-issuer"

    def make_handler(self) -> type[BaseHTTPRequestHandler]:
        return _token_handler(self)

    @property
    def realm(self) -> str:
        return f"{self.url}/token"

    def registry_auth_config(self) -> dict[str, str]:
        """distribution's ``auth.token`` section for a registry trusting this issuer."""
        return {
            "realm": self.realm,
            "service": self.service,
            "issuer": self.issuer_name,
            "rootcertbundle": str(self.cert_file),
        }

    # test API

    def reset(self) -> None:
        """Forget recorded requests and identity tokens; restore every knob's default."""
        with self._lock:
            self._requests.clear()
            self.refresh_tokens.clear()
        self.users = {USERNAME: PASSWORD}
        self.expires_in = 300
        self.exp_offset = 0
        self.withhold = frozenset()
        self.anonymous_actions = frozenset()
        self.policy = None
        self.oauth_enabled = True
        self.response_fields = ("token", "access_token")

    @property
    def requests(self) -> list[TokenRequest]:
        """Every token request so far, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def new_refresh_token(self, username: str = USERNAME) -> str:
        """An identity (refresh) token for ``username``, as ``docker login`` would store."""
        token = f"idt-{secrets.token_urlsafe(24)}"
        with self._lock:
            self.refresh_tokens[token] = username
        return token

    def mint(
        self, subject: str | None, access: list[dict[str, Any]], *, service: str | None = None
    ) -> str:
        """A signed JWT the registry accepts (what a token response carries)."""
        now = int(time.time())
        lifetime = self.expires_in if self.expires_in is not None else 60
        claims = {
            "iss": self.issuer_name,
            "sub": subject or "",
            "aud": service or self.service,
            "exp": now + lifetime + self.exp_offset,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        # PyJWT writes ES256 signatures as raw r||s, as JWS requires (and distribution checks).
        return jwt.encode(claims, self._key, algorithm="ES256", headers={"x5c": [self._x5c]})

    # the protocol

    def grant(self, username: str | None, scopes: list[str]) -> list[dict[str, Any]]:
        access: list[dict[str, Any]] = []
        for text in scopes:
            scope = Scope.parse(text)
            if scope is None:
                continue
            if self.policy is not None:
                actions = self.policy(username, scope)
            elif username is None:
                actions = scope.actions & self.anonymous_actions
            else:
                actions = scope.actions - self.withhold
            if actions:
                access.append({"type": scope.type, "name": scope.name, "actions": sorted(actions)})
        return access

    def record(self, request: TokenRequest) -> None:
        with self._lock:
            self._requests.append(request)


_CA_KEY_USAGE: Final = dict.fromkeys(
    (
        "content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
        "encipher_only", "decipher_only",
    ),
    False,
) | dict.fromkeys(("digital_signature", "key_cert_sign", "crl_sign"), True)  # fmt: skip


def _self_signed_certificate(key: ec.EllipticCurvePrivateKey, name: str) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(**_CA_KEY_USAGE), critical=True)
        .sign(key, hashes.SHA256())
    )


def _render_access(access: list[dict[str, Any]]) -> tuple[str, ...]:
    return tuple(f"{a['type']}:{a['name']}:{','.join(a['actions'])}" for a in access)


def _token_handler(issuer: TokenIssuer) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        server_version = "wasmctl-test-token-issuer"

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path != "/token":
                self._reply(HTTPStatus.NOT_FOUND, {"errors": "not found"})
                return
            query = parse_qs(url.query, keep_blank_values=True)
            service = query.get("service", [None])[0]
            scopes = [s for value in query.get("scope", []) for s in value.split(" ") if s]
            offline = query.get("offline_token", ["false"])[0].lower() == "true"
            credentials, username, ok = self._basic_credentials()

            def log(status: int, granted: tuple[str, ...] = (), refresh: bool = False) -> None:
                issuer.record(
                    TokenRequest(
                        method="GET", grant_type=None, service=service, scopes=tuple(scopes),
                        credentials=credentials, username=username if ok else None,
                        status=status, granted=granted,
                        client_id=query.get("client_id", [None])[0], offline=offline,
                        refresh_token_issued=refresh,
                        scope_params=tuple(query.get("scope", [])),
                    )
                )  # fmt: skip

            if not ok:
                log(401)
                self._reply(
                    HTTPStatus.UNAUTHORIZED,
                    {"details": "incorrect username or password"},
                    {"WWW-Authenticate": 'Basic realm="wasmctl-test-token-issuer"'},
                )
                return
            access = issuer.grant(username, scopes)
            token = issuer.mint(username, access, service=service)
            body: dict[str, Any] = dict.fromkeys(issuer.response_fields, token)
            body["issued_at"] = _now_iso()
            if issuer.expires_in is not None:
                body["expires_in"] = issuer.expires_in
            refresh = offline and username is not None
            if refresh:
                body["refresh_token"] = issuer.new_refresh_token(username or "")
            log(200, _render_access(access), refresh)
            self._reply(HTTPStatus.OK, body)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode("utf-8", errors="replace")
            url = urlsplit(self.path)
            if url.path != "/token" or not issuer.oauth_enabled:
                self._reply(HTTPStatus.NOT_FOUND, {"errors": "not found"})
                return
            form = parse_qs(raw, keep_blank_values=True)

            def one(name: str) -> str | None:
                return form.get(name, [None])[0]

            grant_type = one("grant_type")
            service = one("service")
            scopes = [s for value in form.get("scope", []) for s in value.split(" ") if s]
            offline = one("access_type") == "offline"
            username: str | None = None
            credentials = "none"
            status = HTTPStatus.OK
            if grant_type == "password":
                credentials = "password"
                name, secret = one("username"), one("password")
                if name is None or secret is None:
                    status = HTTPStatus.BAD_REQUEST
                elif issuer.users.get(name) == secret:
                    username = name
                else:
                    status = HTTPStatus.UNAUTHORIZED
            elif grant_type == "refresh_token":
                credentials = "refresh_token"
                presented = one("refresh_token")
                if presented is None:
                    status = HTTPStatus.BAD_REQUEST
                else:
                    with issuer._lock:
                        username = issuer.refresh_tokens.get(presented)
                    if username is None:
                        status = HTTPStatus.UNAUTHORIZED
            else:
                status = HTTPStatus.BAD_REQUEST
            access = issuer.grant(username, scopes) if status == HTTPStatus.OK else []
            refresh = status == HTTPStatus.OK and grant_type == "password" and offline
            issuer.record(
                TokenRequest(
                    method="POST", grant_type=grant_type, service=service, scopes=tuple(scopes),
                    credentials=credentials, username=username, status=status,
                    granted=_render_access(access), client_id=one("client_id"),
                    offline=offline, refresh_token_issued=refresh,
                    scope_params=tuple(form.get("scope", [])),
                )
            )  # fmt: skip
            if status != HTTPStatus.OK:
                error = "invalid_request" if status == HTTPStatus.BAD_REQUEST else "invalid_grant"
                self._reply(status, {"error": error})
                return
            body: dict[str, Any] = {
                "access_token": issuer.mint(username, access, service=service),
                "scope": " ".join(_render_access(access)),
                "issued_at": _now_iso(),
            }
            if issuer.expires_in is not None:
                body["expires_in"] = issuer.expires_in
            if refresh:
                body["refresh_token"] = issuer.new_refresh_token(username or "")
            self._reply(HTTPStatus.OK, body)

        def _basic_credentials(self) -> tuple[str, str | None, bool]:
            """(kind presented, username, accepted)."""
            header = self.headers.get("Authorization")
            if header is None:
                return "none", None, True
            scheme, _, value = header.partition(" ")
            if scheme.lower() != "basic":
                return scheme.lower(), None, False
            try:
                name, _, secret = base64.b64decode(value.strip()).decode().partition(":")
            except ValueError:
                return "basic", None, False
            return "basic", name, issuer.users.get(name) == secret

        def _reply(
            self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
        ) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

    return Handler


def _now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

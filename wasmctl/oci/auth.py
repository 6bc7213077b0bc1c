"""Registry credentials and the token handshake.

Credentials come from docker's `config.json` (docker/cli configfile: `credHelpers[host]`,
then `credsStore`, then `auths[host]`; Docker Hub's key is `https://index.docker.io/v1/`),
found through `REGISTRY_AUTH_FILE`, `DOCKER_CONFIG` or `~/.docker/config.json`. Tokens follow
distribution's token spec (docs/spec/auth/token.md, oauth.md): a `Bearer` challenge names a
realm and service; a token is fetched per set of scopes (GET with Basic credentials, or the
OAuth2 POST for identity tokens), cached until `expires_in` runs out, and fetched again for an
`insufficient_scope` challenge. Secrets never appear in `repr`, messages or logs.

Where credentials may go (the realm, the registry's own origin, never a redirect to another
host) is decided by the registry client (registry.py `_send`, `_check_realm`).
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wasmctl import _json
from wasmctl._files import read_limited, replace_atomically
from wasmctl.errors import InputError, RemoteError

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
DOCKER_HUB_HOSTS = ("docker.io", "index.docker.io", "registry-1.docker.io")
HELPER_TIMEOUT = 30
DEFAULT_TOKEN_LIFETIME = 60  # seconds, when the token endpoint does not say (token.md)
MAX_TOKEN_LIFETIME = 3600  # a longer `expires_in` is believed for an hour
MAX_CHALLENGE_LENGTH = 8192  # a real WWW-Authenticate is well under 1 KiB
MAX_HELPER_OUTPUT = 1 << 20
MAX_CONFIG_BYTES = 4 << 20  # a docker config.json with many registries is a few KiB


class AuthError(RemoteError):
    """Credentials were refused, or a token could not be had."""


@dataclass(frozen=True)
class Credentials:
    """A username and a secret (password or token), or an identity (refresh) token."""

    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)

    def basic(self) -> str:
        """The `Authorization: Basic` value."""
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def config_key(registry: str) -> str:
    """The `auths` / `credHelpers` key of a registry (Docker Hub has its historic one)."""
    return DOCKER_HUB_KEY if registry in DOCKER_HUB_HOSTS else registry


def config_path() -> Path:
    """Where docker-style credentials are read and written."""
    explicit = os.environ.get("REGISTRY_AUTH_FILE")
    if explicit:
        return Path(explicit)
    directory = os.environ.get("DOCKER_CONFIG")
    if directory:
        return Path(directory) / "config.json"
    return Path.home() / ".docker" / "config.json"


def _read_config(path: Path) -> dict[str, Any]:
    if not path.exists() and not path.is_symlink():
        return {}
    raw = read_limited(path, MAX_CONFIG_BYTES, "credentials file")
    data = _json.loads(raw, f"credentials file {path}", InputError)
    if not isinstance(data, dict):
        raise InputError(f"credentials file {path} is not a JSON object")
    return data


def _auth_entry(auths: dict[str, Any], registry: str) -> dict[str, Any] | None:
    """`auths[key]`, also under the `https://host` and `http://host` spellings."""
    key = config_key(registry)
    for candidate in (key, f"https://{key}", f"http://{key}", f"https://{key}/v1/"):
        entry = auths.get(candidate)
        if isinstance(entry, dict):
            return entry
    return None


def load_credentials(registry: str, path: Path | None = None) -> Credentials | None:
    """The credentials docker would use for `registry`, or None."""
    config = _read_config(path or config_path())
    key = config_key(registry)
    helpers = config.get("credHelpers") or {}
    helper = helpers.get(key) if isinstance(helpers, dict) else None
    if not helper and isinstance(config.get("credsStore"), str):
        helper = config["credsStore"]
    if helper:
        found = run_helper(str(helper), "get", key)
        if found is not None:
            return found
    entry = _auth_entry(config.get("auths") or {}, registry)
    if entry is None:
        return None
    identity = entry.get("identitytoken")
    if isinstance(identity, str) and identity:
        return Credentials(identity_token=identity)
    if isinstance(entry.get("auth"), str) and entry["auth"]:
        try:
            decoded = base64.b64decode(entry["auth"], validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            raise InputError(
                f"the stored credentials for {registry} are not valid base64"
            ) from None
        username, sep, password = decoded.partition(":")
        if not sep:
            raise InputError(f"the stored credentials for {registry} have no ':'")
        return Credentials(username, password)
    if isinstance(entry.get("username"), str):
        return Credentials(entry["username"], str(entry.get("password", "")))
    return None


def run_helper(
    helper: str, action: str, server: str, payload: str | None = None
) -> Credentials | None:
    """Run `docker-credential-HELPER ACTION`; for `get`, the credentials it returns."""
    program = shutil.which(f"docker-credential-{helper}")
    if program is None:
        raise InputError(
            f"credential helper docker-credential-{helper} is not installed",
            hint=f"install it, or remove it from {config_path()}",
        )
    try:
        proc = subprocess.run(
            [program, action],
            input=payload if payload is not None else server,
            capture_output=True,
            text=True,
            timeout=HELPER_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise AuthError(f"docker-credential-{helper} {action} timed out") from None
    if proc.returncode != 0:
        if action == "get" and "credentials not found" in (proc.stdout + proc.stderr).lower():
            return None
        # the helper's own output may echo what it was given: never show it
        raise AuthError(f"docker-credential-{helper} {action} failed (exit {proc.returncode})")
    if action != "get":
        return None
    # never quote the helper's output in a message: it holds the secret
    if len(proc.stdout) > MAX_HELPER_OUTPUT:
        raise AuthError(f"docker-credential-{helper} get returned too much output")
    try:
        data = json.loads(proc.stdout)
    except (ValueError, RecursionError):
        raise AuthError(f"docker-credential-{helper} get returned no JSON") from None
    if not isinstance(data, dict):
        raise AuthError(f"docker-credential-{helper} get returned no JSON object")
    username, secret = data.get("Username", ""), data.get("Secret", "")
    if not isinstance(username, str) or not isinstance(secret, str):
        raise AuthError(f"docker-credential-{helper} get returned malformed credentials")
    if username == "<token>":
        return Credentials(identity_token=secret)
    return Credentials(username, secret)


def store_credentials(registry: str, credentials: Credentials, path: Path | None = None) -> str:
    """Save credentials as docker does (the credential store if one is configured)."""
    target = path or config_path()
    config = _read_config(target)
    key = config_key(registry)
    helper = (config.get("credHelpers") or {}).get(key) or config.get("credsStore")
    auths = config.setdefault("auths", {})
    if helper:
        payload = json.dumps(
            {"ServerURL": key, "Username": credentials.username, "Secret": credentials.password}
        )
        run_helper(str(helper), "store", key, payload)
        auths[key] = {}
        where = f"docker-credential-{helper}"
    else:
        raw = f"{credentials.username}:{credentials.password}".encode()
        auths[key] = {"auth": base64.b64encode(raw).decode()}
        where = str(target)
    _write_private(target, config)
    return where


def remove_credentials(registry: str, path: Path | None = None) -> bool:
    """Forget credentials; True when there were any."""
    target = path or config_path()
    config = _read_config(target)
    key = config_key(registry)
    helper = (config.get("credHelpers") or {}).get(key) or config.get("credsStore")
    found = False
    if helper:
        run_helper(str(helper), "erase", key)
        found = True
    auths = config.get("auths") or {}
    for candidate in (key, f"https://{key}", f"http://{key}"):
        if candidate in auths:
            del auths[candidate]
            found = True
    if found:
        _write_private(target, config)
    return found


def _write_private(path: Path, data: dict[str, Any]) -> None:
    """Write a credentials file readable by its owner only (0600, as docker does), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    text = json.dumps(data, indent="\t") + "\n"
    replace_atomically(path, text.encode("utf-8"), mode=0o600)


# -- challenges and tokens -------------------------------------------------------------------

# Linear on hostile input: a key starts only where no key character precedes it, and the
# quantifiers are possessive (the old pattern backtracked: 0.7 s of CPU for an 8 KiB header
# of one word, 9 s for 30 KiB). Callers also bound the header (MAX_CHALLENGE_LENGTH).
_PARAM = re.compile(
    r'(?<![A-Za-z0-9_-])([A-Za-z_][A-Za-z0-9_-]*+)\s*+=\s*+(?:"((?:[^"\\]|\\.)*+)"|([^\s,]*+))'
)


@dataclass(frozen=True)
class Challenge:
    """A parsed `WWW-Authenticate` header."""

    scheme: str
    params: dict[str, str]


def parse_challenge(header: str) -> Challenge | None:
    """The first challenge of a `WWW-Authenticate` value (quoted values may hold commas)."""
    match = re.match(r"\s*([A-Za-z]+)\s*(.*)", header or "")
    if not match:
        return None
    params = {
        m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3)).replace(
            '\\"', '"'
        )
        for m in _PARAM.finditer(match.group(2))
    }
    return Challenge(match.group(1).lower(), params)


@dataclass
class _Token:
    value: str = field(repr=False)
    expires: float


@dataclass
class TokenCache:
    """Tokens by (registry, sorted scopes), with their expiry."""

    tokens: dict[tuple[str, tuple[str, ...]], _Token] = field(default_factory=dict)

    def get(self, registry: str, scopes: Iterable[str]) -> str | None:
        """A token still valid for exactly this scope set."""
        token = self.tokens.get((registry, tuple(sorted(scopes))))
        if token is None or token.expires <= time.monotonic():
            return None
        return token.value

    def put(self, registry: str, scopes: Iterable[str], value: str, lifetime: float) -> None:
        """Remember a token; it is dropped a little before it expires."""
        lifetime = token_lifetime(lifetime)
        expires = time.monotonic() + max(0.0, lifetime - min(10.0, lifetime / 10))
        self.tokens[(registry, tuple(sorted(scopes)))] = _Token(value, expires)

    def drop(self, registry: str, scopes: Iterable[str]) -> None:
        """Forget a token the registry refused."""
        self.tokens.pop((registry, tuple(sorted(scopes))), None)


def token_lifetime(expires_in: object) -> float:
    """Seconds a token may be used: `expires_in` when it is a sane number, else the spec's
    default; never more than an hour (a cached token outliving its revocation is worse than
    one more token request)."""
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float):
        return DEFAULT_TOKEN_LIFETIME
    if not math.isfinite(expires_in) or expires_in <= 0:
        return DEFAULT_TOKEN_LIFETIME
    return float(min(expires_in, MAX_TOKEN_LIFETIME))

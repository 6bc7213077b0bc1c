"""References: `oci:PATH[:TAG|@DIGEST]`, `oci-archive:FILE[:TAG]` and registry references.

Registry references follow docker's rules (distribution/reference): `[REGISTRY/]REPO[:TAG]
[@DIGEST]`, where the first path component is a registry when it contains `.` or `:` or is
`localhost`; otherwise the registry is `docker.io` and a one-component repository gets the
`library/` prefix. Layout references split the path from the tag at the first `:`, as skopeo's
`oci:` transport does, so a path cannot contain `:`.

Reading and writing differ (DESIGN.md §1): a bare name (`app:v1`) is docker's, Docker Hub,
for reading; for writing, `parse_destination` refuses it, since a user who typed
`build -t out:v1` as with docker means a local image, and with Docker Hub credentials would
otherwise publish it. Docker Hub as a destination is written out: `docker.io/library/out:v1`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from wasmctl.errors import InputError

DEFAULT_TAG = "latest"
DOCKER_HUB = "docker.io"
_LEGACY_HUBS = ("index.docker.io", "registry-1.docker.io")

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
REPOSITORY_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
# An OCI layout's `org.opencontainers.image.ref.name` (image-spec annotations.md): components
# of alphanumerics joined by [-._:@+] or "--", separated by "/"; wide enough to hold a whole
# registry reference, as `copy REF oci:DIR:REF` writes it. `@` is left out: it marks a digest.
_REF_COMPONENT = r"[A-Za-z0-9]+(?:(?:[-._:+]|--)[A-Za-z0-9]+)*"
LAYOUT_TAG_RE = re.compile(rf"^{_REF_COMPONENT}(?:/{_REF_COMPONENT})*$")
DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-fA-F0-9]{32,}$")
_HOST_RE = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]+)?$"
)
MAX_NAME_LENGTH = 255


class InvalidReferenceError(InputError):
    """A reference that cannot be parsed."""


@dataclass(frozen=True, slots=True)
class LayoutReference:
    """An image in an OCI layout directory (`oci:`) or a tar of one (`oci-archive:`)."""

    path: Path
    tag: str | None = None
    digest: str | None = None
    archive: bool = False

    @property
    def transport(self) -> str:
        """`oci` or `oci-archive`."""
        return "oci-archive" if self.archive else "oci"

    def with_tag(self, tag: str | None) -> LayoutReference:
        """The same layout, another tag."""
        return LayoutReference(self.path, tag, None, self.archive)

    def __str__(self) -> str:
        suffix = f"@{self.digest}" if self.digest else f":{self.tag}" if self.tag else ""
        return f"{self.transport}:{self.path}{suffix}"


@dataclass(frozen=True, slots=True)
class RegistryReference:
    """An image in a registry, normalised (`docker.io/library/alpine:latest`)."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """`registry/repository`."""
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


Reference = LayoutReference | RegistryReference


def manifest_reference(ref: RegistryReference) -> str:
    """What a read asks a registry for: the digest when pinned, else the tag, else `latest`."""
    return ref.digest or ref.tag or DEFAULT_TAG


def destination_tag(ref: Reference) -> str:
    """The tag a write puts its root under: the tag, else (a registry) the digest, else
    `latest`."""
    if isinstance(ref, RegistryReference):
        return ref.tag or ref.digest or DEFAULT_TAG
    return ref.tag or DEFAULT_TAG


def parse_reference(text: str) -> Reference:
    """Any reference wasmctl understands."""
    if text.startswith("oci-archive:"):
        return _parse_layout(text[len("oci-archive:") :], text, archive=True)
    if text.startswith("oci:"):
        return _parse_layout(text[len("oci:") :], text, archive=False)
    if text.startswith("docker://"):
        text = text[len("docker://") :]
    return parse_registry_reference(text)


def parse_destination(text: str) -> Reference:
    """A reference to write to: a layout, or a registry reference that names its host.

    A registry reference without a host (`out:v1`, `acme/app`) is refused: the error names
    the layout (`oci:out:v1`) and the Docker Hub spelling (`docker.io/library/out:v1`).
    """
    ref = parse_reference(text)
    if isinstance(ref, RegistryReference) and registry_host(text) is None:
        raise InvalidReferenceError(
            f"{text}: no registry host; wasmctl does not write to Docker Hub by default",
            hint=f"write oci:{_without_scheme(text)} for a local layout, or {ref} to mean "
            "Docker Hub",
        )
    return ref


def registry_host(text: str) -> str | None:
    """The registry host written in a registry reference, or None when it has none (docker's
    rule: a first path component with `.` or `:`, or `localhost`, followed by more path)."""
    text = _without_scheme(text).split("@", 1)[0]
    first, slash, _ = text.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first
    return None


def _without_scheme(text: str) -> str:
    return text[len("docker://") :] if text.startswith("docker://") else text


def _parse_layout(rest: str, original: str, *, archive: bool) -> LayoutReference:
    digest = None
    tag = None
    if "@" in rest:
        rest, digest = rest.rsplit("@", 1)
        if not DIGEST_RE.match(digest):
            raise InvalidReferenceError(f"{original}: bad digest {digest!r}")
        if archive:
            raise InvalidReferenceError(
                f"{original}: oci-archive references take a tag, not a digest"
            )
    elif ":" in rest:
        rest, tag = rest.split(":", 1)
        if not (TAG_RE.match(tag) or (len(tag) <= 512 and LAYOUT_TAG_RE.match(tag))):
            raise InvalidReferenceError(
                f"{original}: bad tag {tag!r}",
                hint="a layout tag is letters and digits joined by '-', '.', '_', ':', '+' "
                "and '/'; a layout path cannot contain ':'",
            )
    if not rest:
        raise InvalidReferenceError(f"{original}: no path")
    return LayoutReference(Path(rest), tag, digest, archive)


def parse_registry_reference(text: str) -> RegistryReference:
    """A docker-style reference, normalised."""
    original = text
    if not text or len(text) > 2 * MAX_NAME_LENGTH:
        raise InvalidReferenceError(f"invalid reference {original!r}")
    digest = None
    if "@" in text:
        text, digest = text.split("@", 1)
        if not DIGEST_RE.match(digest):
            raise InvalidReferenceError(f"{original}: bad digest {digest!r}")
    tag = None
    slash = text.rfind("/")
    colon = text.rfind(":")
    if colon > slash:
        text, tag = text[:colon], text[colon + 1 :]
        if not TAG_RE.match(tag):
            raise InvalidReferenceError(f"{original}: bad tag {tag!r}")
    host = registry_host(text)
    if host is not None:
        registry, repository = host, text[len(host) + 1 :]
        if not _HOST_RE.match(registry):
            raise InvalidReferenceError(f"{original}: bad registry host {registry!r}")
    else:
        registry, repository = DOCKER_HUB, text
    if registry in _LEGACY_HUBS:
        registry = DOCKER_HUB
    if registry == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"
    if not REPOSITORY_RE.match(repository):
        hint = "repository names are lowercase" if repository.lower() != repository else None
        raise InvalidReferenceError(f"{original}: bad repository name {repository!r}", hint=hint)
    if len(registry) + 1 + len(repository) > MAX_NAME_LENGTH:
        raise InvalidReferenceError(f"{original}: name longer than {MAX_NAME_LENGTH} characters")
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return RegistryReference(registry, repository, tag, digest)


def looks_like_reference(target: str) -> bool:
    """True for `oci:`/`oci-archive:` references, and for registry references that are not
    an existing path (`ghcr.io/acme/app:v1`; a bare `app.wasm` stays a file)."""
    if target.startswith(("oci:", "oci-archive:", "docker://")):
        return True
    if os.path.exists(target) or target.endswith(".wasm"):
        return False
    return "/" in target and ("." in target.split("/", 1)[0] or ":" in target or "@" in target)


# -- which registries speak plain HTTP ------------------------------------------------------

PLAIN_HTTP_HINT = (
    "--plain-http takes a registry host such as localhost:5000; loopback registries "
    "(localhost, 127.0.0.0/8, ::1) are plain HTTP already"
)
# What a user may type after a flag they took for a switch (`--plain-http true`, as oras's
# and skopeo's boolean flags read); a host named `1` or `no` is not worth the confusion.
_SWITCH_WORDS = frozenset({"true", "false", "1", "0", "yes", "no", "on", "off"})
_FILE_SUFFIXES = (".wasm", ".tar", ".tar.gz", ".tgz", ".json", ".yaml", ".yml")


def split_host_port(registry: str) -> tuple[str, str | None]:
    """`host[:port]` (`[::1]:5000` for IPv6) as the host, lowercased, and the port or None."""
    if registry.startswith("["):
        end = registry.find("]")
        host, rest = registry[1:end], registry[end + 1 :]
        return host.lower(), rest[1:] if rest.startswith(":") and len(rest) > 1 else None
    host, _, port = registry.partition(":")
    return host.lower(), port or None


def is_loopback_registry(registry: str) -> bool:
    """True for `localhost`, `127.0.0.0/8` and `::1`, with any port: the registries docker
    and crane reach over plain HTTP without being told. `localhost.example.com` and
    `127.0.0.1.nip.io` are ordinary names (they resolve wherever their DNS says)."""
    import ipaddress

    host, _ = split_host_port(registry)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def plain_http_host(value: str) -> str:
    """A `--plain-http` value as the registry host it names: `host[:port]`, or an
    `http://host[:port]` URL. Anything else (a reference, a path, a file, a switch word such
    as `true`, an https URL) is refused, so the flag never takes the next argument silently."""
    text = value.strip()
    lowered = text.lower()
    if lowered.startswith("https://"):
        raise InvalidReferenceError(
            f"{value!r} is an https registry, which needs no --plain-http",
            hint=PLAIN_HTTP_HINT,
        )
    if lowered.startswith("http://"):
        text = text[len("http://") :].rstrip("/")
    elif lowered in _SWITCH_WORDS:
        raise InvalidReferenceError(
            f"{value!r}: --plain-http names a registry host, it is not a switch",
            hint=PLAIN_HTTP_HINT,
        )
    elif lowered.startswith(("oci:", "oci-archive:", "docker://")):
        raise InvalidReferenceError(
            f"{value!r} is a reference, not a registry host",
            hint=PLAIN_HTTP_HINT,
        )
    elif lowered.endswith(_FILE_SUFFIXES):
        raise InvalidReferenceError(
            f"{value!r} is a file, not a registry host", hint=PLAIN_HTTP_HINT
        )
    if "/" in text or "@" in text:
        raise InvalidReferenceError(
            f"{value!r} is a reference or a path, not a registry host",
            hint=PLAIN_HTTP_HINT,
        )
    if not text or not _HOST_RE.match(text):
        raise InvalidReferenceError(f"{value!r} is not a registry host", hint=PLAIN_HTTP_HINT)
    host, port = split_host_port(text)
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}" if port else host


def speaks_plain_http(registry: str, named: frozenset[str], *, ca_file: bool = False) -> bool:
    """Whether `registry` is reached over plain HTTP.

    Yes when `--plain-http` named it (`host:port` for that port, `host` for any port), and
    for a loopback registry unless a CA file was given (`ca_file`), which says it speaks TLS;
    otherwise TLS, verified."""
    if registry in named:
        return True
    host, port = split_host_port(registry)
    bracketed = f"[{host}]" if ":" in host else host
    if bracketed in named or (port and f"{bracketed}:{port}" in named):
        return True
    return not ca_file and is_loopback_registry(registry)

"""Versions as OSV's `SEMVER` ranges compare them, parsed by the `semver` library (SemVer
2.0: pre-releases sort before their release, build metadata is ignored).

What each ecosystem writes, normalised here before parsing (ossf/osv-schema docs/schema.md,
"Evaluation"; ../shared/reference/vulnerabilities.md §3):
- crates.io: SemVer as it is (`1.5.4`, RustSec's lower bound `0.0.0-0`).
- Go modules: `v1.2.3`, `v2.0.0+incompatible`, pseudo-versions
  `v0.0.0-20210101000000-abcdef123456` (a pre-release of the version they follow, which is
  what SemVer ordering gives); OSV's Go records write them without the `v`.
- Go's toolchain (`go1.22.1`, `go1.21rc2`, `go1.22`) is the package `stdlib` at `1.22.1`,
  `1.21.0-rc.2`, `1.22.0`.
"""

from __future__ import annotations

import re
from functools import lru_cache

import semver

from wasmctl.errors import InputError

_GO_TOOLCHAIN = re.compile(r"^go(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:(rc|beta)(\d+))?$")


class VersionError(InputError):
    """A version no SemVer reading applies to."""


@lru_cache(maxsize=65536)
def parse(ecosystem: str, text: str) -> semver.Version:
    """`text` as the SemVer it means in `ecosystem` (`crates.io`, `Go`)."""
    value = text.strip()
    if ecosystem == "Go":
        if value.startswith("go"):
            return go_toolchain(value)
        value = value.removeprefix("v").removesuffix("+incompatible")
    if value == "0":  # OSV's "from the very start": below every version, pre-releases too
        value = "0.0.0-0"
    try:
        return semver.Version.parse(value)
    except (ValueError, TypeError):
        raise VersionError(f"{ecosystem} version {text[:80]!r} is not SemVer") from None


def go_toolchain(text: str) -> semver.Version:
    """`go1.22.1` as stdlib's `1.22.1` (`go1.22` is `1.22.0`; `go1.21rc2` `1.21.0-rc.2`)."""
    found = _GO_TOOLCHAIN.match(text.strip())
    if found is None:
        raise VersionError(f"Go toolchain version {text[:80]!r} is not goMAJOR.MINOR[.PATCH]")
    major, minor, patch, kind, number = found.groups()
    prerelease = f"{kind}.{number}" if kind else None
    return semver.Version(int(major), int(minor or 0), int(patch or 0), prerelease)

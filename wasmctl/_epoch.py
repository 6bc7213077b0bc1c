"""`SOURCE_DATE_EPOCH` (reproducible-builds.org): the one time every reproducible output uses.

Read in one place, so build, sbom and sign agree on what a valid value is; a value that is
not a whole number of seconds, or is beyond what a date can hold, is bad input (exit 2).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime

from wasmctl.errors import InputError

VARIABLE = "SOURCE_DATE_EPOCH"


def source_date_epoch(environ: Mapping[str, str] | None = None) -> datetime | None:
    """The time `SOURCE_DATE_EPOCH` names (UTC), or None when it is unset or empty."""
    env = os.environ if environ is None else environ
    raw = env.get(VARIABLE, "").strip()
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit()):
        raise InputError(f"{VARIABLE} must be a whole number of seconds, not {raw[:40]!r}")
    try:
        return datetime.fromtimestamp(int(raw), UTC)
    except (OverflowError, OSError, ValueError):
        raise InputError(f"{VARIABLE} is out of range: {raw[:40]}") from None


def rfc3339(when: datetime) -> str:
    """`2024-01-02T03:04:05Z`: the form OCI's `created` fields use."""
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")

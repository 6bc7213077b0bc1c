"""Reading small input files (policies, manifests, trust roots, bundles) with a size bound."""

from __future__ import annotations

from pathlib import Path

from wasmctl.errors import InputError


def read_limited(path: Path, limit: int, what: str, error: type[InputError] = InputError) -> bytes:
    """The bytes of `path`, refusing a file larger than `limit` without reading it all.

    Errors name the file and `what` it should have been ("gate policy", "manifest").
    """
    try:
        with path.open("rb") as f:
            raw = f.read(limit + 1)
    except OSError as e:
        raise error(f"cannot read {what} {path}: {e.strerror or e}") from None
    if len(raw) > limit:
        raise error(f"{what} {path} is larger than {limit} bytes")
    return raw

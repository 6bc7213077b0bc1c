"""In-toto predicates given by users: what `attest` reads, and the predicate it signs.

The rules are `cosign attest`'s (sigstore/cosign pkg/cosign/attestation/attestation.go):
`--type` is an alias or a URI; a predicate of any type but `custom` is the JSON object the
file holds, put in the statement as it is; `custom` (predicate type
`https://cosign.sigstore.dev/attestation/v1`) wraps the file's text, whatever it is, as
`{"Data": TEXT, "Timestamp": RFC3339}` (cosign's COSIGN_PREDICATE_SPEC.md).

Where cosign reads a predicate into its own structs and drops what they lack, this keeps
the document whole, and checks only what a reader of the type cannot do without: for SLSA
provenance, the fields SLSA marks REQUIRED, which also tell v0.2 from v1, the mix-up a
gate would otherwise find only later.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from wasmctl import _json
from wasmctl._epoch import rfc3339, source_date_epoch
from wasmctl._files import read_limited
from wasmctl.errors import InputError
from wasmctl.sign import PREDICATE_ALIASES, predicate_type

# Under what a referrer's reader takes (16 MiB bundles, base64 inside): a predicate this
# size still fits once signed, unless escaping inflates it; `check_statement_size` is final.
MAX_PREDICATE = 8 << 20
# The statement around the predicate is one more level, and statements are read with
# `_json.MAX_DEPTH`.
MAX_PREDICATE_DEPTH = _json.MAX_DEPTH - 1
CUSTOM_PREDICATE = PREDICATE_ALIASES["custom"]
SLSA_V02 = PREDICATE_ALIASES["slsaprovenance"]
SLSA_V1 = PREDICATE_ALIASES["slsaprovenance1"]
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+")

# What SLSA marks REQUIRED (slsa.dev/spec/v1.0/provenance, slsa.dev/provenance/v0.2),
# as paths of keys.
REQUIRED_FIELDS: dict[str, tuple[tuple[str, ...], ...]] = {
    SLSA_V1: (
        ("buildDefinition", "buildType"),
        ("buildDefinition", "externalParameters"),
        ("runDetails", "builder", "id"),
    ),
    SLSA_V02: (("builder", "id"), ("buildType",)),
}


class PredicateError(InputError):
    """A predicate file that cannot be attested: unreadable, too large, or not the
    document its type needs."""


@dataclass(frozen=True)
class Predicate:
    """A statement's predicate: its type (a URI) and the JSON value signed as it."""

    type: str
    content: Any


def attestation_type(name: str) -> str:
    """The predicate type to write for `--type`: an alias, or an absolute URI (in-toto's
    TypeURI, as cosign's `ParsePredicateType` asks); anything else is refused."""
    uri = predicate_type(name)
    if uri != name or _URI.fullmatch(name):
        return uri
    raise InputError(
        f"predicate type {name!r} is not a URI (with a scheme, as https://...)",
        hint=f"give an absolute URI, or one of {', '.join(PREDICATE_ALIASES)}",
    )


def read_predicate(source: Path | BinaryIO, kind: str, *, now: datetime | None = None) -> Predicate:
    """The predicate of type `kind` (an alias or a URI) that `source` holds: a regular file,
    or a stream (standard input), read up to `MAX_PREDICATE` bytes."""
    uri = attestation_type(kind)
    if isinstance(source, Path):
        raw = read_limited(source, MAX_PREDICATE, "predicate", PredicateError)
        origin = f"predicate {source}"
    else:
        try:
            raw = source.read(MAX_PREDICATE + 1)
        except OSError as e:
            raise PredicateError(f"cannot read the predicate: {e.strerror or e}") from None
        origin = "the predicate on standard input"
        if len(raw) > MAX_PREDICATE:
            raise PredicateError(f"{origin} is larger than {MAX_PREDICATE} bytes")
    return parse_predicate(raw, uri, origin, now=now)


def parse_predicate(
    raw: bytes, uri: str, origin: str = "predicate", *, now: datetime | None = None
) -> Predicate:
    """The predicate of type `uri` made from a file's bytes: cosign's `{Data, Timestamp}`
    around the text for its custom type (the time is `now`, else `SOURCE_DATE_EPOCH`, else
    the current time), the JSON object itself for any other."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise PredicateError(f"{origin} is not UTF-8 text (byte {e.start})") from None
    if uri == CUSTOM_PREDICATE:
        when = now or source_date_epoch() or datetime.now(UTC)
        return Predicate(uri, {"Data": text, "Timestamp": rfc3339(when.astimezone(UTC))})
    content = _json_object(text, origin)
    missing = [".".join(path) for path in REQUIRED_FIELDS.get(uri, ()) if not _has(content, path)]
    if missing:
        raise PredicateError(
            f"{origin} is not a {uri} predicate: it has no {', '.join(missing)}",
            hint=_slsa_hint(uri, content),
        )
    return Predicate(uri, content)


def _json_object(text: str, origin: str) -> dict[str, Any]:
    if not text.strip():
        raise PredicateError(f"{origin} is empty", hint="a predicate is a JSON object")
    try:
        # NaN and Infinity are Python's, not JSON's: other readers refuse the statement
        data = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise PredicateError(f"{origin} is nested too deep") from None
    except ValueError as e:
        raise PredicateError(
            f"{origin} is not JSON: {e}",
            hint="a predicate is a JSON object (YAML is not read, as with cosign); "
            "any text can be attested with --type custom",
        ) from None
    if not isinstance(data, dict):
        raise PredicateError(f"{origin} is {_json_kind(data)}, not a JSON object")
    if _json.too_deep(data, MAX_PREDICATE_DEPTH):
        raise PredicateError(f"{origin} is nested deeper than {MAX_PREDICATE_DEPTH} levels")
    return data


def _json_kind(data: Any) -> str:
    if isinstance(data, list):
        return "an array"
    if isinstance(data, str):
        return "a string"
    if isinstance(data, bool) or data is None:
        return json.dumps(data)
    return "a number"


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _has(data: Any, path: tuple[str, ...]) -> bool:
    for key in path:
        if not isinstance(data, Mapping) or data.get(key) in (None, ""):
            return False
        data = data[key]
    return True


def _slsa_hint(uri: str, content: Mapping[str, Any]) -> str | None:
    """When a SLSA predicate of one version is given as the other."""
    if uri == SLSA_V1 and all(_has(content, p) for p in REQUIRED_FIELDS[SLSA_V02]):
        return "this looks like SLSA v0.2 provenance: --type slsaprovenance"
    if uri == SLSA_V02 and all(_has(content, p) for p in REQUIRED_FIELDS[SLSA_V1]):
        return "this looks like SLSA v1 provenance: --type slsaprovenance1"
    return None

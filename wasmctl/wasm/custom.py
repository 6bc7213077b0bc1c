"""Decoders for the custom sections wasmctl reads: `name`, `component-name`, `producers`,
`target_features` (WebAssembly/tool-conventions: ProducersSection.md, Linking.md)."""

from __future__ import annotations

from wasmctl.wasm._reader import Reader
from wasmctl.wasm.model import ProducerField, ProducerValue, TargetFeature

MAX_PRODUCER_FIELDS = 1_000
MAX_PRODUCER_VALUES = 10_000
MAX_TARGET_FEATURES = 10_000


def read_module_name(r: Reader) -> str | None:
    """The module (or component) name from a `name` / `component-name` payload.

    Subsection 0 holds it; the other subsections (function, local, sort names ...) are
    skipped by their length, never decoded.
    """
    while not r.at_end():
        sub_id = r.byte()
        size = r.uleb()
        body = r.sub(size)
        if sub_id == 0:
            return body.name()
    return None


def read_producers(r: Reader) -> tuple[ProducerField, ...]:
    """The `producers` payload: fields of (name, version) values."""
    fields = []
    for _ in range(r.count("producers fields", MAX_PRODUCER_FIELDS, 2)):
        field_name = r.name()
        values = tuple(
            ProducerValue(r.name(), r.name())
            for _ in range(r.count("producers values", MAX_PRODUCER_VALUES, 2))
        )
        fields.append(ProducerField(field_name, values))
    if not r.at_end():
        raise r.error("trailing bytes after the producers fields")
    return tuple(fields)


def read_target_features(r: Reader) -> tuple[TargetFeature, ...]:
    """The `target_features` payload: a vector of (prefix, feature name)."""
    features = []
    for _ in range(r.count("target features", MAX_TARGET_FEATURES, 2)):
        at = r.pos
        prefix = chr(r.byte())
        if prefix not in "+-=":
            raise r.error(f"unknown target feature prefix {prefix!r}", at)
        features.append(TargetFeature(prefix, r.name()))
    if not r.at_end():
        raise r.error("trailing bytes after the target features")
    return tuple(features)

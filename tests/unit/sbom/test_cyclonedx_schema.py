"""The CycloneDX schema check (jsonschema-rs, issue 15) is as strict as cyclonedx-python-lib's
own `JsonStrictValidator` (jsonschema with every format checker): the same documents pass
and fail both, formats included."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.sbom_fixtures import HELLO
from wasmctl.sbom import SbomFormat, render
from wasmctl.sbom.cyclonedx import _schema_validator
from wasmctl.sbom.facts import Subject, file_facts

Document = dict[str, Any]


def hello() -> Document:
    document: Document = json.loads(
        render(Subject((file_facts(HELLO),)), SbomFormat.CYCLONEDX_JSON).text
    )
    return document


def url(value: str) -> Callable[[Document], None]:
    def change(d: Document) -> None:
        d["metadata"]["component"]["externalReferences"] = [{"type": "website", "url": value}]

    return change


def timestamp(value: str) -> Callable[[Document], None]:
    def change(d: Document) -> None:
        d["metadata"]["timestamp"] = value

    return change


def email(value: str) -> Callable[[Document], None]:
    def change(d: Document) -> None:
        d["metadata"]["authors"] = [{"name": "A. Author", "email": value}]

    return change


def unknown_property(d: Document) -> None:
    d["metadata"]["component"]["mimeType"] = "application/wasm"  # 1.6 says mime-type


def repeated_component(d: Document) -> None:
    d["components"] = [dict(d["metadata"]["component"]), dict(d["metadata"]["component"])]


def unknown_type(d: Document) -> None:
    d["metadata"]["component"]["type"] = "wasm-module"


def unchanged(d: Document) -> None:
    pass


CASES: list[tuple[str, Callable[[Document], None], bool]] = [
    ("as rendered", unchanged, True),
    ("an https URL", url("https://example.com/a/b?c=d#e"), True),
    ("an IRI with non-ASCII letters", url("https://bücher.example/straße"), True),
    ("a relative reference", url("../docs/readme.md?x=1#top"), True),
    ("percent-encoding", url("https://example.com/%41%42"), True),
    ("a space in a URL", url("https://example.com/a b"), False),
    ("bad percent-encoding", url("https://example.com/%zz"), False),
    ("an unclosed IPv6 literal", url("http://[::1/v2/"), False),
    ("a space in the scheme", url("ht tp://example.com/"), False),
    ("a date-time with an offset", timestamp("2026-01-02T03:04:05+02:00"), True),
    ("month 13", timestamp("2026-13-02T03:04:05Z"), False),
    ("a date without time", timestamp("2026-01-02"), False),
    ("an e-mail address", email("dev@example.com"), True),
    ("an e-mail address without @", email("dev.example.com"), False),
    ("a property 1.6 does not define", unknown_property, False),
    ("the same component twice", repeated_component, False),
    ("a component type 1.6 does not define", unknown_type, False),
]


@pytest.fixture(scope="module")
def base() -> Document:
    return hello()


@pytest.mark.parametrize(("change", "valid"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_the_schema_check_agrees_with_the_librarys_strict_validator(
    base: Document, change: Callable[[Document], None], valid: bool
) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    document = copy.deepcopy(base)
    change(document)
    library = JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(document)) is None
    ours = not list(_schema_validator().iter_errors(document))
    assert (ours, library) == (valid, valid)


def test_an_ipv6_literal_host_is_an_iri_as_rfc_3987_says() -> None:
    # `ihost = IP-literal / IPv4address / ireg-name` (RFC 3987 §2.2); rfc3987-syntax 1.1,
    # the library validator's checker, refuses `[::1]`, so here only the RFC is the judge.
    document = hello()
    url("http://[::1]:5000/v2/")(document)
    assert not list(_schema_validator().iter_errors(document))

"""Each SBOM format names the media type and the predicate type the rest of wasmctl looks
for (issue 12): what `sbom --attach` and `--attest` store is what `inspect` and
`verify --attestation cyclonedx|spdx` find."""

from __future__ import annotations

import pytest

from wasmctl.oci import media_types as mt
from wasmctl.sbom import SbomFormat
from wasmctl.sign import CYCLONEDX_PREDICATE, SPDX_PREDICATE, predicate_type


@pytest.mark.parametrize(
    ("fmt", "media_type", "predicate", "alias"),
    [
        (SbomFormat.CYCLONEDX_JSON, mt.CYCLONEDX_JSON, CYCLONEDX_PREDICATE, "cyclonedx"),
        (SbomFormat.SPDX_JSON, mt.SPDX_JSON, SPDX_PREDICATE, "spdxjson"),
    ],
)
def test_a_format_names_the_oci_media_type_and_the_cosign_predicate_type(
    fmt: SbomFormat, media_type: str, predicate: str, alias: str
) -> None:
    assert fmt.media_type == media_type
    assert fmt.predicate_type == predicate == predicate_type(alias)


def test_the_sbom_media_types_are_those_of_the_formats() -> None:
    assert set(mt.SBOM_TYPES) == {fmt.media_type for fmt in SbomFormat}

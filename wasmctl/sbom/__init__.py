"""SBOMs that see inside Wasm modules: CycloneDX 1.6 and SPDX 2.3 JSON, attached to an
artifact as a referrer or signed into an in-toto attestation."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from wasmctl._epoch import rfc3339, source_date_epoch
from wasmctl.oci import media_types as mt

if TYPE_CHECKING:
    from wasmctl.audit.osv import Database
    from wasmctl.oci.models import Descriptor
    from wasmctl.oci.reference import Reference
    from wasmctl.oci.source import RegistryOptions
    from wasmctl.sbom.facts import Subject
    from wasmctl.sign.signer import SigningBackend
    from wasmctl.sign.targets import SignedArtifact


class SbomFormat(enum.StrEnum):
    """The SBOM formats, named as syft and trivy name them."""

    CYCLONEDX_JSON = "cyclonedx-json"
    SPDX_JSON = "spdx-json"

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self]

    @property
    def predicate_type(self) -> str:
        return PREDICATE_TYPES[self]


MEDIA_TYPES = {SbomFormat.CYCLONEDX_JSON: mt.CYCLONEDX_JSON, SbomFormat.SPDX_JSON: mt.SPDX_JSON}
# in-toto predicate types, as `cosign attest --type cyclonedx|spdxjson` writes them
PREDICATE_TYPES = {
    SbomFormat.CYCLONEDX_JSON: mt.CYCLONEDX_PREDICATE,
    SbomFormat.SPDX_JSON: mt.SPDX_PREDICATE,
}


@dataclass(frozen=True)
class Sbom:
    """A rendered, validated SBOM and what it describes."""

    format: SbomFormat
    text: str
    subject: Subject


def creation_time() -> datetime:
    """`SOURCE_DATE_EPOCH`, else the epoch: the same input gives the same bytes (as `build`)."""
    return source_date_epoch() or datetime.fromtimestamp(0, UTC)


def render(subject: Subject, fmt: SbomFormat, vulnerabilities: Database | None = None) -> Sbom:
    """The SBOM of `subject` in `fmt`, validated before it is returned; with the known
    vulnerabilities `wasmctl audit` finds in `vulnerabilities` (CycloneDX only: SPDX 2.3
    has no place for them), the document `audit --format cyclonedx` writes."""
    if vulnerabilities is not None:
        if fmt is not SbomFormat.CYCLONEDX_JSON:
            from wasmctl.errors import InputError

            raise InputError("vulnerabilities go into CycloneDX only (SPDX 2.3 has no place "
                             "for them)", hint="use --format cyclonedx-json")  # fmt: skip
        return Sbom(fmt, _with_vulnerabilities(subject, vulnerabilities), subject)
    if fmt is SbomFormat.CYCLONEDX_JSON:
        from wasmctl.sbom.cyclonedx import render as render_cyclonedx

        return Sbom(fmt, render_cyclonedx(subject, creation_time()), subject)
    from wasmctl.sbom.spdx import render as render_spdx

    return Sbom(fmt, render_spdx(subject, creation_time()), subject)


def _with_vulnerabilities(subject: Subject, database: Database) -> str:
    from wasmctl.audit import AuditOptions, audit_subject, database_info
    from wasmctl.sbom.cyclonedx import render as render_cyclonedx

    today = datetime.now(UTC).date()
    audited = audit_subject("", subject, database, AuditOptions(), today)
    return render_cyclonedx(subject, creation_time(), vulnerabilities=audited.findings,
                            database=database_info(database))  # fmt: skip


def sbom_for_file(path: Path, fmt: SbomFormat, vulnerabilities: Database | None = None) -> Sbom:
    """The SBOM of a module file."""
    from wasmctl.sbom.facts import Subject, file_facts

    return render(Subject((file_facts(path),)), fmt, vulnerabilities)


def sbom_for_reference(
    ref: Reference,
    fmt: SbomFormat,
    options: RegistryOptions | None = None,
    vulnerabilities: Database | None = None,
) -> Sbom:
    """The SBOM of every Wasm module in an artifact (layout or registry)."""
    from wasmctl.sbom.facts import reference_facts

    return render(reference_facts(ref, options), fmt, vulnerabilities)


def attach(sbom: Sbom, ref: Reference, options: RegistryOptions | None = None) -> Descriptor:
    """Store the SBOM as a referrer of the artifact `ref` resolves to (artifactType the SBOM's
    media type, as `oras attach --artifact-type` would)."""
    from wasmctl.oci import media_types as mt
    from wasmctl.oci.models import Descriptor, Manifest
    from wasmctl.oci.source import open_source

    data = sbom.text.encode()
    config = Descriptor.of(mt.OCI_EMPTY, mt.EMPTY_JSON)
    layer = Descriptor.of(sbom.format.media_type, data)
    with open_source(ref, options, write=True) as store:
        subject = store.subject()
        manifest = Manifest(
            config=config,
            layers=(layer,),
            artifact_type=sbom.format.media_type,
            subject=Descriptor(subject.media_type, subject.digest, subject.size),
            annotations={"org.opencontainers.image.created": _created()},
        )
        return store.attach([(config, mt.EMPTY_JSON), (layer, data)], manifest.to_bytes())


def attest(
    sbom: Sbom,
    ref: Reference,
    backend: SigningBackend,
    options: RegistryOptions | None = None,
) -> SignedArtifact:
    """Sign the SBOM into an in-toto attestation about the artifact and store it as a
    referrer (cosign v3's layout, predicate type by format): `attest_reference` with the
    SBOM as the predicate, as `wasmctl attest --type cyclonedx|spdx` would sign its file."""
    import json

    from wasmctl.sign.predicate import Predicate
    from wasmctl.sign.targets import attest_reference

    predicate = Predicate(sbom.format.predicate_type, json.loads(sbom.text))
    return attest_reference(ref, predicate, backend, options)


def _created() -> str:
    return rfc3339(creation_time())

"""SPDX 2.3 JSON through spdx-tools, validated through its Python API before it is returned
(its command line exits 0 even on validation errors).

spdx-tools' whole-document validation is quadratic: for every package and relationship it
lists every element of the document again (10,000 crates took minutes). Its per-element
validators are used instead, and what needs the whole document (identifiers unique, every
relationship naming an element that exists, something described) is checked here with
sets, in one pass.

One package per module and nested module or component (`CONTAINS` from parent to child),
one per embedded crate or Go module (`DEPENDS_ON`; build-time crates `BUILD_DEPENDENCY_OF`),
all with purls where they have one. The document `DESCRIBES` the top modules. SPDX 2.3 has
no free-form properties: a module's kind, capability classes, imports and exports go in the
package comment, one `wasmctl:KEY=VALUE` per line.
"""

from __future__ import annotations

import io
import re
import uuid
from datetime import datetime
from typing import Any

from wasmctl import __version__
from wasmctl.errors import InternalError
from wasmctl.sbom.deps import CargoDependencies, GoBuildInfo, GoModule
from wasmctl.sbom.facts import ModuleFacts, Subject, cargo_purl, golang_purl

SERIAL_NAMESPACE = uuid.UUID("6f1b0c52-5a0c-4c8b-9d6e-2f8f4b2b7a11")


def render(subject: Subject, created: datetime) -> str:
    """The SBOM as SPDX 2.3 JSON text (validated; a validation failure is a bug)."""
    from spdx_tools.spdx.model.actor import Actor, ActorType
    from spdx_tools.spdx.model.document import CreationInfo, Document
    from spdx_tools.spdx.writer.json.json_writer import write_document_to_stream

    builder = _Builder(subject)
    for index, module in enumerate(subject.modules):
        builder.module(module, index, parent=None)
    primary = subject.primary
    serial = uuid.uuid5(SERIAL_NAMESPACE, f"spdx:{subject.content_digest}")
    info = CreationInfo(
        spdx_version="SPDX-2.3",
        spdx_id="SPDXRef-DOCUMENT",
        name=f"{subject.artifact.reference if subject.artifact else primary.name}",
        document_namespace=f"https://wasmctl.dev/spdx/{_safe(primary.name)}-{serial}",
        creators=[Actor(ActorType.TOOL, f"wasmctl-{__version__}")],
        created=created,
    )
    document = Document(info, packages=builder.packages, relationships=builder.relationships)
    problems = _validate(document)
    if problems:
        raise InternalError(f"the SPDX SBOM does not validate: {problems[0]}")
    out = io.StringIO()
    write_document_to_stream(document, out, validate=False)
    return out.getvalue() + "\n"


class _Builder:
    def __init__(self, subject: Subject) -> None:
        self.subject = subject
        self.packages: list[Any] = []
        self.relationships: list[Any] = []

    def _relate(self, a: str, kind: str, b: str) -> None:
        from spdx_tools.spdx.model.relationship import Relationship, RelationshipType

        self.relationships.append(Relationship(a, RelationshipType[kind], b))

    def module(self, facts: ModuleFacts, index: int, parent: str | None) -> None:
        from spdx_tools.spdx.model.checksum import Checksum, ChecksumAlgorithm
        from spdx_tools.spdx.model.package import (
            ExternalPackageRef,
            ExternalPackageRefCategory,
            Package,
            PackagePurpose,
        )
        from spdx_tools.spdx.model.spdx_no_assertion import SpdxNoAssertion

        nested = facts.position.strip("/").replace("/", "-")
        spdx_id = f"SPDXRef-Module-{index}" + (f"-{nested}" if nested else "")
        refs = []
        artifact = self.subject.artifact
        top = index == 0 and parent is None
        if artifact is not None and top:
            refs.append(
                ExternalPackageRef(
                    ExternalPackageRefCategory.PACKAGE_MANAGER, "purl", artifact.purl()
                )
            )
        homepage = facts.field("homepage")
        self.packages.append(
            Package(
                spdx_id=spdx_id,
                name=facts.name,
                download_location=SpdxNoAssertion(),
                version=facts.field("version"),
                files_analyzed=False,
                checksums=[
                    Checksum(ChecksumAlgorithm.SHA256, facts.sha256),
                    Checksum(ChecksumAlgorithm.SHA512, facts.sha512),
                ],
                homepage=homepage if homepage and homepage.startswith("http") else None,
                license_declared=_license(facts.field("licenses")),
                description=facts.field("description"),
                comment=_comment(facts, artifact.digest if artifact and top else None),
                external_references=refs,
                primary_package_purpose=(
                    PackagePurpose.APPLICATION
                    if facts.role == "application"
                    else PackagePurpose.LIBRARY
                ),
            )
        )
        if parent is None:
            self._relate("SPDXRef-DOCUMENT", "DESCRIBES", spdx_id)
        else:
            self._relate(parent, "CONTAINS", spdx_id)
        for child in facts.nested:
            self.module(child, index, parent=spdx_id)
        if facts.cargo is not None:
            self._cargo(facts.cargo, spdx_id)
        if facts.go is not None:
            self._go(facts.go, spdx_id)

    def _dependency(self, spdx_id: str, name: str, version: str | None, purl: str,
                    comment: str | None = None) -> None:  # fmt: skip
        from spdx_tools.spdx.model.package import (
            ExternalPackageRef,
            ExternalPackageRefCategory,
            Package,
        )
        from spdx_tools.spdx.model.spdx_no_assertion import SpdxNoAssertion

        self.packages.append(
            Package(
                spdx_id=spdx_id,
                name=name,
                download_location=SpdxNoAssertion(),
                version=version,
                files_analyzed=False,
                comment=comment,
                external_references=[
                    ExternalPackageRef(ExternalPackageRefCategory.PACKAGE_MANAGER, "purl", purl)
                ],
            )
        )

    def _cargo(self, deps: CargoDependencies, owner: str) -> None:
        ids = [f"{owner}-cargo-{i}-{_safe(p.name)}" for i, p in enumerate(deps.packages)]
        for package, spdx_id in zip(deps.packages, ids, strict=True):
            comment = (
                None if package.source == "crates.io" else f"wasmctl:cargo:source={package.source}"
            )
            purl = cargo_purl(package.name, package.version)
            self._dependency(spdx_id, package.name, package.version, purl, comment)
            if package.root:
                self._relate(owner, "DEPENDS_ON", spdx_id)
        for package, spdx_id in zip(deps.packages, ids, strict=True):
            for child in package.dependencies:
                if deps.packages[child].kind == "build":
                    self._relate(ids[child], "BUILD_DEPENDENCY_OF", spdx_id)
                else:
                    self._relate(spdx_id, "DEPENDS_ON", ids[child])

    def _go(self, info: GoBuildInfo, owner: str) -> None:
        deps = [self._go_module(m, f"{owner}-golang-{i}") for i, m in enumerate(info.deps)]
        if info.main is None:
            for spdx_id in deps:
                self._relate(owner, "DEPENDS_ON", spdx_id)
            return
        main = self._go_module(info.main, f"{owner}-golang-main")
        self._relate(owner, "DEPENDS_ON", main)
        for spdx_id in deps:
            self._relate(main, "DEPENDS_ON", spdx_id)

    def _go_module(self, module: GoModule, spdx_id: str) -> str:
        used = module.replaced_by or module
        version = used.version if used.version and used.version != "(devel)" else None
        purl = golang_purl(used.path, version)
        comment = f"wasmctl:go:replaces={module.path} {module.version}".strip() if (
            module.replaced_by) else None  # fmt: skip
        self._dependency(f"{spdx_id}-{_safe(used.path)}", used.path, version, purl, comment)
        return f"{spdx_id}-{_safe(used.path)}"


def _validate(document: Any) -> list[str]:
    """What `validate_full_spdx_document` reports for the documents written here, in
    linear time: every element through spdx-tools' own validators, the cross-references
    with sets."""
    from spdx_tools.spdx.model.relationship import RelationshipType
    from spdx_tools.spdx.validation.creation_info_validator import validate_creation_info
    from spdx_tools.spdx.validation.license_expression_validator import (
        validate_license_expression,
    )
    from spdx_tools.spdx.validation.package_validator import validate_package
    from spdx_tools.spdx.validation.spdx_id_validators import is_valid_internal_spdx_id

    version = document.creation_info.spdx_version
    problems = [m.validation_message for m in validate_creation_info(document.creation_info,
                                                                     version)]  # fmt: skip
    document_id = document.creation_info.spdx_id
    ids = {document_id}
    for package in document.packages:
        if package.spdx_id in ids:
            problems.append(f"every spdx_id must be unique, {package.spdx_id} is not")
        ids.add(package.spdx_id)
        if not is_valid_internal_spdx_id(package.spdx_id):
            problems.append(f"{package.spdx_id} is not a valid SPDX id")
        problems += [m.validation_message for m in validate_package(package, version)]
        problems += [
            m.validation_message
            for m in validate_license_expression(
                package.license_declared, document, package.spdx_id
            )
        ]
    described = False
    for relationship in document.relationships:
        for end in (relationship.spdx_element_id, relationship.related_spdx_element_id):
            if end not in ids:
                problems.append(f"a relationship names {end}, which is not in the document")
        described = described or (
            relationship.relationship_type is RelationshipType.DESCRIBES
            and relationship.spdx_element_id == document_id
        )
    if not described and len(document.packages) > 1:
        problems.append(f"nothing is described by {document_id}")
    return problems


def _comment(facts: ModuleFacts, manifest_digest: str | None) -> str:
    lines = [f"wasmctl:wasm:kind={facts.kind.value}", f"wasmctl:wasm:size={facts.size}"]
    if manifest_digest:
        lines.append(f"wasmctl:oci:manifest-digest={manifest_digest}")
    for field in facts.producers:
        lines += [f"wasmctl:wasm:producers:{field.name}={v.name} {v.version}".rstrip()
                  for v in field.values]  # fmt: skip
    lines += [f"wasmctl:capability={c}" for c in facts.capabilities]
    lines += [f"wasmctl:wasm:import={name}" for name, _ in facts.imports]
    lines += [f"wasmctl:wasm:export={name}" for name in facts.exports]
    return "\n".join(lines)


def _license(expression: str | None) -> Any:
    if not expression:
        return None
    from license_expression import (  # type: ignore[import-untyped]
        ExpressionError,
        get_spdx_licensing,
    )

    try:
        return get_spdx_licensing().parse(expression, validate=True)
    except ExpressionError:
        return None  # not an SPDX expression: leave it out rather than write an invalid one


def _safe(text: str) -> str:
    """What an SPDX ID may hold: letters, digits, `.` and `-`."""
    return re.sub(r"[^A-Za-z0-9.-]+", "-", text).strip("-") or "x"

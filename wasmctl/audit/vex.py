"""OpenVEX for `wasmctl audit` and the gate: documents read (files, verified attestations),
their statements matched to findings, and the document `audit --emit-vex` writes.

The format is OpenVEX 0.2.0: the specification is openvex/spec `OPENVEX-SPEC.md`, its JSON
schema `openvex_json_schema.json` (kept beside this module, byte for byte, as
`openvex-0.2.0.schema.json`, from openvex/spec at d29fab0c, under the Community
Specification License 1.0), and attestations are described in `ATTESTING.md`.

Reading is as strict as the schema, so that a typo never widens a statement (a misspelt
`subcomponents` would otherwise make it cover every package): a document has `@context`
(`https://openvex.dev/ns/v0.2.0`), `@id`, `author`, `timestamp` and `version`, and at least
one statement; no key the specification does not define; a `not_affected` statement
has a `justification` (one of five labels) or an `impact_statement` ("Statement Fields":
"a VEX statement MUST include either a status justification or an impact_statement"); an
`affected` one an `action_statement` (the schema requires it); timestamps are RFC 3339.
Size and nesting are bounded before anything is walked. A document that breaks a rule is
an input error (exit 2) naming the file and the field.

Matching, for one finding (an advisory in a package of a module):
- the vulnerability: the statement's `vulnerability.name` or one of its `aliases` is the
  advisory's id or one of its aliases;
- the product: one of `products` names the artifact (a `pkg:oci/...@sha256:...` purl, the
  manifest digest `sha256:...`, or `REPOSITORY@sha256:...`) or the module (its SHA-256 or
  SHA-512 in `hashes`, a digest, or a purl whose `checksum` qualifier holds one: what
  `--emit-vex` writes for a module file, which has no purl of its own);
- the subcomponents: when the product lists any, the finding's package is among them by
  purl (`pkg:cargo/NAME@VERSION`, `pkg:golang/PATH@VERSION`; one without a version names
  every version). A statement about another product or package says nothing of this one.
- time: a statement's `timestamp`, else its document's, is when it was known ("Inheritance
  Flow"); of the statements that apply, the newest is in force ("each overriding ... the
  previous ones"); at equal times the one read last.

An attestation (`ATTESTING.md`) carries a document as its predicate; a statement that names
no products is about the attestation's subjects, which verification has checked are the
artifact's digest. Only attestations that verify under the trust given are read
(`attested`); the others are reported and never used.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wasmctl.errors import InputError

if TYPE_CHECKING:
    from packageurl import PackageURL

    from wasmctl.audit.findings import Finding, Package
    from wasmctl.audit.model import AuditReport
    from wasmctl.sbom.facts import ModuleFacts, Subject
    from wasmctl.sign.policy import Policy
    from wasmctl.sign.targets import SignatureCandidates
    from wasmctl.sign.verifier import TrustSource

CONTEXT = "https://openvex.dev/ns/v0.2.0"
NAMESPACE = "https://openvex.dev/ns"  # cosign's `--type openvex` predicate type
SCHEMA_FILE = "openvex-0.2.0.schema.json"
MAX_BYTES = 4 << 20
MAX_DEPTH = 16  # a valid document nests 8 levels (statements, products, subcomponents)

# the fields the specification defines ("Document Struct Fields", "Statement Fields",
# "Vulnerability Struct Fields", "Component Fields"), as the schema's additionalProperties
_DOCUMENT_KEYS = {"@context", "@id", "author", "role", "timestamp", "last_updated", "version",
                  "tooling", "statements"}  # fmt: skip
_STATEMENT_KEYS = {"@id", "version", "vulnerability", "timestamp", "last_updated", "products",
                   "status", "supplier", "status_notes", "justification", "impact_statement",
                   "action_statement", "action_statement_timestamp"}  # fmt: skip
_VULNERABILITY_KEYS = {"@id", "name", "description", "aliases"}
_IDENTIFIER_KEYS = {"purl", "cpe22", "cpe23"}
# Appendix A, "Hash Names Table"; those a module or an artifact is known by, as digests
HASH_NAMES = ("md5", "sha1", "sha-256", "sha-384", "sha-512", "sha3-224", "sha3-256",
              "sha3-384", "sha3-512", "blake2s-256", "blake2b-256", "blake2b-512")  # fmt: skip
_DIGEST_OF_HASH = {"sha-256": "sha256", "sha-512": "sha512"}
# RFC 3339 date-time (the schema's `format: date-time`)
_TIMESTAMP = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})"
)


class VexError(InputError):
    """A VEX document that is not OpenVEX 0.2.0 as the specification writes it (exit 2)."""


class Status(enum.StrEnum):
    """What a statement says of a product ("Status Labels")."""

    NOT_AFFECTED = "not_affected"
    AFFECTED = "affected"
    FIXED = "fixed"
    UNDER_INVESTIGATION = "under_investigation"


class Justification(enum.StrEnum):
    """Why a product is `not_affected` ("Status Justifications")."""

    COMPONENT_NOT_PRESENT = "component_not_present"
    VULNERABLE_CODE_NOT_PRESENT = "vulnerable_code_not_present"
    VULNERABLE_CODE_NOT_IN_EXECUTE_PATH = "vulnerable_code_not_in_execute_path"
    VULNERABLE_CODE_CANNOT_BE_CONTROLLED_BY_ADVERSARY = (
        "vulnerable_code_cannot_be_controlled_by_adversary"
    )
    INLINE_MITIGATIONS_ALREADY_EXIST = "inline_mitigations_already_exist"


@dataclass(frozen=True)
class Component:
    """A product or a subcomponent ("Product Data Structure"): how it is identified."""

    id: str | None = None
    identifiers: tuple[tuple[str, str], ...] = ()  # (purl | cpe22 | cpe23, value)
    hashes: tuple[tuple[str, str], ...] = ()  # (hash label, hex value)
    subcomponents: tuple[Component, ...] = ()

    @property
    def purl(self) -> str | None:
        return next((v for k, v in self.identifiers if k == "purl"), None)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.id is not None:
            out["@id"] = self.id
        if self.identifiers:
            out["identifiers"] = dict(self.identifiers)
        if self.hashes:
            out["hashes"] = dict(self.hashes)
        if self.subcomponents:
            out["subcomponents"] = [s.to_json() for s in self.subcomponents]
        return out


@dataclass(frozen=True)
class Origin:
    """Where a statement was read: a file or an attestation, its document and author, and
    for an attestation who signed it."""

    source: str
    document: str  # the document's @id
    author: str
    role: str | None = None
    signer: str | None = None


@dataclass(frozen=True)
class Statement:
    """One statement, its timestamp resolved (its own, else its document's)."""

    origin: Origin
    index: int  # its place in the document
    vulnerability: str
    aliases: tuple[str, ...]
    products: tuple[Component, ...]
    status: Status
    timestamp: datetime
    justification: Justification | None = None
    impact_statement: str | None = None
    action_statement: str | None = None
    status_notes: str | None = None
    vulnerability_id: str | None = None
    id: str | None = None

    @property
    def suppresses(self) -> bool:
        """`not_affected` (always with a justification or an impact statement: reading
        refuses one without)."""
        return self.status is Status.NOT_AFFECTED

    @property
    def names(self) -> tuple[str, ...]:
        return (self.vulnerability, *self.aliases)

    def applies(self, product: Product, package: PackageURL) -> bool:
        """Whether a product it lists is `product` and, when that product lists
        subcomponents, `package` is among them."""
        for component in self.products:
            if product.named_by(component) and (
                not component.subcomponents
                or any(_names_package(s, package) for s in component.subcomponents)
            ):
                return True
        return False

    def to_json(self) -> dict[str, Any]:
        """The statement as the reports state it."""
        return {
            "status": self.status.value,
            "justification": None if self.justification is None else self.justification.value,
            "impactStatement": self.impact_statement,
            "actionStatement": self.action_statement,
            "statusNotes": self.status_notes,
            "vulnerability": self.vulnerability,
            "timestamp": self.timestamp.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "author": self.origin.author,
            "document": self.origin.document,
            "source": self.origin.source,
            "signer": self.origin.signer,
        }

    def describe(self) -> str:
        """`not_affected (vulnerable_code_not_present) by ACME, in vex.json`."""
        why = f" ({self.justification.value})" if self.justification is not None else ""
        signed = f", signed by {self.origin.signer}" if self.origin.signer else ""
        return f"{self.status.value}{why} by {self.origin.author}, in {self.origin.source}{signed}"


@dataclass(frozen=True)
class Document:
    origin: Origin
    timestamp: datetime
    version: int
    statements: tuple[Statement, ...]

    def to_json(self, target: str | None = None) -> dict[str, Any]:
        return {
            "source": self.origin.source,
            "target": target,
            "id": self.origin.document,
            "author": self.origin.author,
            "timestamp": self.timestamp.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "version": self.version,
            "statements": len(self.statements),
            "signer": self.origin.signer,
        }


@dataclass(frozen=True)
class Rejected:
    """A VEX attestation that was not used, and why (it did not verify, or its predicate
    is no OpenVEX document)."""

    source: str
    reason: str

    def to_json(self, target: str) -> dict[str, Any]:
        return {"target": target, "source": self.source, "reason": self.reason}


# -- reading -------------------------------------------------------------------------------


def load_file(path: Path) -> Document:
    """An OpenVEX document from a file (at most `MAX_BYTES`)."""
    from wasmctl._files import read_limited

    return parse(read_limited(path, MAX_BYTES, "VEX document", VexError), str(path))


def load_files(paths: Iterable[Path]) -> tuple[Document, ...]:
    return tuple(load_file(p) for p in paths)


def parse(
    raw: bytes, source: str, *, subjects: Sequence[str] = (), signer: str | None = None
) -> Document:
    """An OpenVEX document from its bytes (UTF-8 JSON, "Document"). `subjects`: the
    digests an attestation is about, which statements without products are about."""
    from wasmctl import _json

    if len(raw) > MAX_BYTES:
        raise VexError(f"VEX document {source} is larger than {MAX_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise VexError(f"VEX document {source} is not UTF-8: {e}") from None
    data = _json.loads(text, f"VEX document {source}", VexError, max_depth=MAX_DEPTH)
    return document(data, source, subjects=subjects, signer=signer)


def document(
    data: Any, source: str, *, subjects: Sequence[str] = (), signer: str | None = None
) -> Document:
    """A parsed OpenVEX document checked and read (see the module docstring)."""
    from wasmctl import _json

    if _json.too_deep(data, MAX_DEPTH):
        raise VexError(f"VEX document {source} is nested deeper than {MAX_DEPTH} levels")
    read = _Reader(source)
    doc = read.mapping(data, "", _DOCUMENT_KEYS, "an OpenVEX document is a JSON object")
    context = read.string(doc, "@context", "")
    if context.rstrip("/") != CONTEXT:
        raise read.fail(
            f"`@context` is {context[:80]!r}, not {CONTEXT}",
            hint="wasmctl reads OpenVEX 0.2.0 documents (vexctl writes that version)",
        )
    origin = Origin(
        source,
        read.string(doc, "@id", ""),
        read.string(doc, "author", ""),
        read.string(doc, "role", "", required=False),
        signer,
    )
    issued = read.timestamp(doc, "timestamp", "")
    read.timestamp(doc, "last_updated", "", required=False)
    read.string(doc, "tooling", "", required=False)
    version = read.version(doc, "version", "")
    statements = doc.get("statements")
    if "statements" not in doc:
        raise read.fail("no `statements`")
    if not isinstance(statements, list) or not statements:
        raise read.fail("`statements` must be a non-empty list of statements")
    inherited = tuple(Component(id=d) for d in subjects)
    return Document(
        origin,
        issued,
        version,
        tuple(
            read.statement(item, f"statements[{i}]", origin, i, issued, inherited)
            for i, item in enumerate(statements)
        ),
    )


class _Reader:
    """Checks with messages naming the source and the field."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, message: str, *, hint: str | None = None) -> VexError:
        return VexError(f"VEX document {self.source}: {message}", hint=hint)

    @staticmethod
    def _at(where: str, key: str) -> str:
        return f"{where}.{key}" if where else key

    def mapping(self, value: Any, where: str, allowed: set[str], what: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(f"{where + ': ' if where else ''}{what}")
        unknown = sorted(str(k) for k in value if k not in allowed)
        if unknown:
            at = f" in {where}" if where else ""
            raise self.fail(
                f"unknown key {unknown[0]!r}{at}",
                hint=f"OpenVEX 0.2.0 defines {', '.join(sorted(allowed))} here",
            )
        return value

    def string(self, obj: Mapping[str, Any], key: str, where: str, *, required: bool = True) -> Any:
        value = obj.get(key)
        at = self._at(where, key)
        if value is None:
            if key in obj:
                raise self.fail(f"`{at}` is null: give a string or leave the key out")
            if required:
                raise self.fail(f"no `{at}`")
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"`{at}` must be a non-empty string, not {_shown(value)}")
        return value.strip()

    def strings(self, obj: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
        value = obj.get(key)
        if value is None and key not in obj:
            return ()
        at = self._at(where, key)
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise self.fail(f"`{at}` must be a list of non-empty strings")
        return tuple(v.strip() for v in value)

    def timestamp(
        self, obj: Mapping[str, Any], key: str, where: str, *, required: bool = True
    ) -> Any:
        value = self.string(obj, key, where, required=required)
        if value is None:
            return None
        match = _TIMESTAMP.fullmatch(value)
        if match is None:
            raise self.fail(
                f"`{self._at(where, key)}` is not an RFC 3339 date-time: {value[:60]!r}",
                hint="write it as 2024-05-01T12:00:00Z",
            )
        day, time, fraction, zone = match.groups()
        micro = f".{(fraction or '0')[:6]:0<6}"
        zone = "+00:00" if zone in ("Z", "z") else zone
        try:
            return datetime.fromisoformat(f"{day}T{time}{micro}{zone}")
        except ValueError:
            raise self.fail(
                f"`{self._at(where, key)}` is not a date-time: {value[:60]!r}"
            ) from None

    def version(self, obj: Mapping[str, Any], key: str, where: str, *, required: bool = True
                ) -> int:  # fmt: skip
        value = obj.get(key)
        at = self._at(where, key)
        if value is None and key not in obj:
            if required:
                raise self.fail(f"no `{at}`", hint="a document's first version is 1")
            return 0
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise self.fail(f"`{at}` must be a whole number from 1, not {_shown(value)}")
        return value

    def statement(
        self,
        value: Any,
        where: str,
        origin: Origin,
        index: int,
        issued: datetime,
        inherited: tuple[Component, ...],
    ) -> Statement:
        obj = self.mapping(value, where, _STATEMENT_KEYS, "a statement is a JSON object")
        vulnerability = self.mapping(
            obj.get("vulnerability"),
            f"{where}.vulnerability",
            _VULNERABILITY_KEYS,
            "`vulnerability` must be an object with `name`",
        )
        name = self.string(vulnerability, "name", f"{where}.vulnerability")
        vulnerability_id = self.string(vulnerability, "@id", f"{where}.vulnerability",
                                       required=False)  # fmt: skip
        self.string(vulnerability, "description", f"{where}.vulnerability", required=False)
        aliases = self.strings(vulnerability, "aliases", f"{where}.vulnerability")
        raw_status = self.string(obj, "status", where)
        try:
            status = Status(raw_status)
        except ValueError:
            raise self.fail(
                f"`{where}.status` is {raw_status[:40]!r}, not one of "
                f"{', '.join(s.value for s in Status)}"
            ) from None
        raw_justification = self.string(obj, "justification", where, required=False)
        justification = None
        if raw_justification is not None:
            try:
                justification = Justification(raw_justification)
            except ValueError:
                raise self.fail(
                    f"`{where}.justification` is {raw_justification[:60]!r}, not one of "
                    f"{', '.join(j.value for j in Justification)}"
                ) from None
        impact = self.string(obj, "impact_statement", where, required=False)
        action = self.string(obj, "action_statement", where, required=False)
        if status is Status.NOT_AFFECTED and justification is None and impact is None:
            raise self.fail(
                f"{where} ({name}) is not_affected without a justification or an impact_statement",
                hint="the specification requires one of them (a justification label is "
                "preferred): say why the product is not affected",
            )
        if status is Status.AFFECTED and action is None:
            raise self.fail(
                f"{where} ({name}) is affected without an action_statement",
                hint="say what to do about it (the OpenVEX schema requires it)",
            )
        for key in ("supplier", "status_notes", "@id"):
            self.string(obj, key, where, required=False)
        self.version(obj, "version", where, required=False)
        own = self.timestamp(obj, "timestamp", where, required=False)
        self.timestamp(obj, "last_updated", where, required=False)
        self.timestamp(obj, "action_statement_timestamp", where, required=False)
        if "products" in obj:
            items = obj["products"]
            if not isinstance(items, list):
                raise self.fail(f"`{where}.products` must be a list of products")
            products = tuple(
                self.component(p, f"{where}.products[{i}]", nested=True)
                for i, p in enumerate(items)
            )
        else:
            products = ()
        if not products:
            if not inherited:
                raise self.fail(
                    f"{where} ({name}) names no products",
                    hint="a statement must say what it is about: list `products` (only "
                    "an attestation's subject can stand in for them)",
                )
            products = inherited
        return Statement(
            origin=origin,
            index=index,
            vulnerability=name,
            aliases=aliases,
            products=products,
            status=status,
            timestamp=own or issued,
            justification=justification,
            impact_statement=impact,
            action_statement=action,
            status_notes=obj.get("status_notes"),
            vulnerability_id=vulnerability_id,
            id=obj.get("@id"),
        )

    def component(self, value: Any, where: str, *, nested: bool) -> Component:
        allowed = {"@id", "identifiers", "hashes"} | ({"subcomponents"} if nested else set())
        obj = self.mapping(value, where, allowed, "a product is an object with `@id` or "
                           "`identifiers`")  # fmt: skip
        ident = self.string(obj, "@id", where, required=False)
        identifiers: tuple[tuple[str, str], ...] = ()
        if "identifiers" in obj:
            found = self.mapping(
                obj["identifiers"], f"{where}.identifiers", _IDENTIFIER_KEYS,
                "`identifiers` must be an object (purl, cpe22, cpe23)",
            )  # fmt: skip
            identifiers = tuple(
                (k, self.string(found, k, f"{where}.identifiers")) for k in sorted(found)
            )
            if not identifiers:
                raise self.fail(f"`{where}.identifiers` names nothing")
        if ident is None and not identifiers:
            raise self.fail(f"{where} has neither `@id` nor `identifiers`")
        hashes: tuple[tuple[str, str], ...] = ()
        if "hashes" in obj:
            found = self.mapping(obj["hashes"], f"{where}.hashes", set(HASH_NAMES),
                                 "`hashes` must be an object of hash names")  # fmt: skip
            hashes = tuple((k, self.string(found, k, f"{where}.hashes")) for k in sorted(found))
        subcomponents: tuple[Component, ...] = ()
        if nested and "subcomponents" in obj:
            items = obj["subcomponents"]
            if not isinstance(items, list):
                raise self.fail(f"`{where}.subcomponents` must be a list")
            subcomponents = tuple(
                self.component(s, f"{where}.subcomponents[{i}]", nested=False)
                for i, s in enumerate(items)
            )
        return Component(ident, identifiers, hashes, subcomponents)


def _shown(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


# -- attestations --------------------------------------------------------------------------


def predicate_types() -> tuple[str, ...]:
    """The predicate types an OpenVEX attestation is stored under: cosign's `openvex` alias
    (`https://openvex.dev/ns`), and the document's context, which go-vex (vexctl) uses
    (openvex/go-vex `pkg/attestation/predicate.go`)."""
    from wasmctl.sign import predicate_type

    return tuple(dict.fromkeys((predicate_type("openvex"), CONTEXT, NAMESPACE)))


def attested(
    found: SignatureCandidates, policies: Sequence[Policy], trust: TrustSource
) -> tuple[tuple[Document, ...], tuple[Rejected, ...]]:
    """The OpenVEX documents of the attestations in `found` that verify under one of
    `policies` (their subject is the artifact's digest: verification compares it), and
    those that were found and not used, with why."""
    from wasmctl.sign.targets import verify_candidates

    kinds = predicate_types()
    used: dict[str, Document] = {}
    failed: dict[str, str] = {}
    for kind in kinds:
        for policy in policies:
            result = verify_candidates(found, policy, trust, predicate_type=kind)
            for check in result.checks:
                if check.source in used:
                    continue
                if check.ok and check.statement is not None:
                    signer = check.signer.describe() if check.signer is not None else None
                    try:
                        used[check.source] = document(
                            check.statement.predicate,
                            f"attestation {check.source}",
                            subjects=check.statement.digests(),
                            signer=signer,
                        )
                    except VexError as e:
                        failed[check.source] = e.message
                    else:
                        failed.pop(check.source, None)
                elif check.predicate_type == kind and check.source not in failed:
                    # what was found beside what was asked, as `verify` says it
                    who = check.signer.describe() if check.signer is not None else "unknown"
                    failed[check.source] = f"signed by {who}: {check.error or 'not verified'}"
    rejected = tuple(Rejected(s, r) for s, r in failed.items() if s not in used)
    return tuple(used.values()), rejected


# -- matching ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Product:
    """What the product of a finding is known by: the artifact's manifest digest (when it
    is an artifact), and the digests of its module and of the nested module it is in."""

    artifact: str | None  # `sha256:...`
    digests: frozenset[str]  # `sha256:...`, `sha512:...`, the artifact's included

    def named_by(self, component: Component) -> bool:
        for ident in (component.id, component.purl):
            if ident is not None and self._identified_by(ident):
                return True
        for name, value in component.hashes:
            algorithm = _DIGEST_OF_HASH.get(name)
            if algorithm is not None and f"{algorithm}:{value.strip().lower()}" in self.digests:
                return True
        return False

    def _identified_by(self, ident: str) -> bool:
        text = ident.strip()
        if text[:4].lower() == "pkg:":
            purl = _purl(text)
            if purl is None:
                return False
            if purl.type == "oci" and purl.version and self.artifact is not None:
                return bool(purl.version.lower() == self.artifact)
            checksums = str(purl.qualifiers.get("checksum", "")) if purl.qualifiers else ""
            return any(c.strip().lower() in self.digests for c in checksums.split(",") if c)
        # a digest, or a reference by digest (`registry/repository@sha256:...`)
        return text.rsplit("@", 1)[-1].lower() in self.digests


def product_of(subject: Subject, where: str) -> Product:
    """The product of a finding in module `where` (`app`, `app/0`) of `subject`."""
    artifact = subject.artifact.digest.lower() if subject.artifact is not None else None
    digests = {artifact} if artifact else set()
    for module in subject.modules:
        walked = {module.name + m.position: m for m in module.walk()}
        if where in walked:
            for facts in (module, walked[where]):
                digests |= {f"sha256:{facts.sha256}", f"sha512:{facts.sha512}"}
    return Product(artifact, frozenset(digests))


def package_purl(package: Package) -> PackageURL:
    """A package as a purl: `pkg:cargo/NAME@VERSION`, `pkg:golang/PATH@VERSION` (the Go
    toolchain as `pkg:golang/stdlib@go1.x`)."""
    from packageurl import PackageURL

    if package.ecosystem == "Go":
        namespace, _, name = package.name.rpartition("/")
        return PackageURL(type="golang", namespace=namespace or None, name=name,
                          version=package.version)  # fmt: skip
    return PackageURL(type="cargo", name=package.name, version=package.version)


@lru_cache(maxsize=4096)  # bounded: `gate serve` reads new documents for as long as it runs
def _purl(text: str) -> PackageURL | None:
    from packageurl import PackageURL

    try:
        return PackageURL.from_string(text)
    except ValueError:
        return None


def _names_package(component: Component, package: PackageURL) -> bool:
    for ident in (component.id, component.purl):
        if ident is None or ident.strip()[:4].lower() != "pkg:":
            continue
        given = _purl(ident.strip())
        if given is not None and _same_package(given, package):
            return True
    return False


def _same_package(given: PackageURL, ours: PackageURL) -> bool:
    """The same package (names compared without case: crates.io and Go module paths are
    case-insensitive for identity), at the same version (a purl without one: any); Go's
    `v` and the toolchain's `go` prefixes compared away."""
    if given.type.lower() != ours.type:
        return False
    if (given.namespace or "").lower() != (ours.namespace or "").lower():
        return False
    if given.name.lower() != ours.name.lower():
        return False
    if not given.version:
        return True
    return _version(given.type, given.version) == _version(ours.type, ours.version or "")


def _version(kind: str, version: str) -> str:
    if kind == "golang":
        return version.removeprefix("go").removeprefix("v")
    return version


class VexSet:
    """Every statement read, indexed by the vulnerability names it gives."""

    def __init__(self, documents: Iterable[Document]) -> None:
        self.documents = tuple(documents)
        self._by_name: dict[str, list[tuple[int, Statement]]] = {}
        order = 0
        for doc in self.documents:
            for statement in doc.statements:
                for name in dict.fromkeys(statement.names):
                    self._by_name.setdefault(name, []).append((order, statement))
                order += 1

    def __bool__(self) -> bool:
        return bool(self.documents)

    def with_documents(self, more: Iterable[Document]) -> VexSet:
        added = tuple(more)
        return VexSet((*self.documents, *added)) if added else self

    def statement_for(self, finding: Finding, product: Product) -> Statement | None:
        """The statement in force for `finding` in `product`: the newest that applies."""
        found: dict[int, Statement] = {}
        for name in (finding.advisory.id, *finding.advisory.aliases):
            for order, statement in self._by_name.get(name, ()):
                found.setdefault(order, statement)
        if not found:
            return None
        package = package_purl(finding.package)
        applying = [(s.timestamp, o, s) for o, s in found.items() if s.applies(product, package)]
        if not applying:
            return None
        return max(applying, key=lambda item: (item[0], item[1]))[2]


# -- --emit-vex ----------------------------------------------------------------------------


def emit(report: AuditReport, *, author: str) -> str | None:
    """OpenVEX for the findings whose advisory's functions the reachability hint found
    absent from their module: `not_affected`, `vulnerable_code_not_present`, the product
    the artifact (its purl) or the module file (a `pkg:generic` purl with its checksum,
    and its hashes), the package as subcomponent, and an impact statement saying what was
    checked. Validated against the OpenVEX schema; the same report and `SOURCE_DATE_EPOCH`
    give the same bytes. None when no finding is proven absent (the schema wants one
    statement at least)."""
    from wasmctl import __version__
    from wasmctl._epoch import rfc3339, source_date_epoch
    from wasmctl.audit.reach import Reachability

    statements: dict[str, dict[str, Any]] = {}
    for target in report.targets:
        if target.subject is None:
            continue
        for placed in target.findings:
            finding = placed.finding
            if finding.reach.verdict is not Reachability.ABSENT:
                continue
            statement = _emitted(target.subject, finding)
            key = json.dumps(statement, sort_keys=True)
            statements.setdefault(key, statement)
    if not statements:
        return None
    ordered = [statements[k] for k in sorted(statements)]
    content = json.dumps(ordered, sort_keys=True, separators=(",", ":")).encode()
    when = source_date_epoch() or datetime.fromtimestamp(0, UTC)
    doc = {
        "@context": CONTEXT,
        # vexctl's naming in the public namespace, from what the document says
        "@id": f"https://openvex.dev/docs/public/vex-{hashlib.sha256(content).hexdigest()}",
        "author": author,
        "timestamp": rfc3339(when),
        "version": 1,
        "tooling": f"wasmctl {__version__} audit --emit-vex (reachability hint)",
        "statements": ordered,
    }
    errors = validate(doc)
    if errors:
        from wasmctl.errors import InternalError

        raise InternalError(f"the emitted OpenVEX document does not fit its schema: {errors[0]}")
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def _emitted(subject: Subject, finding: Finding) -> dict[str, Any]:
    advisory, package = finding.advisory, finding.package
    top = _top_module(subject, package.where)
    if subject.artifact is not None:
        product: dict[str, Any] = {"@id": subject.artifact.purl()}
    else:
        product = {
            "@id": _module_purl(top),
            "hashes": {"sha-256": top.sha256, "sha-512": top.sha512},
        }
    product["subcomponents"] = [{"@id": package_purl(package).to_string()}]
    listed = finding.reach.listed
    shown = ", ".join(listed[:8]) + (f" and {len(listed) - 8} more" if len(listed) > 8 else "")
    impact = (
        f"wasmctl audit read the function names of {package.where} (its name section): "
        f"none of the functions {advisory.id} names is there ({shown}), so the vulnerable "
        f"code of {package.name} {package.version} is not in the module. A function inlined "
        "into another leaves no name of its own."
    )
    vulnerability: dict[str, Any] = {
        "@id": f"https://osv.dev/vulnerability/{advisory.id}",
        "name": advisory.id,
    }
    if advisory.aliases:
        vulnerability["aliases"] = sorted(set(advisory.aliases))
    return {
        "vulnerability": vulnerability,
        "products": [product],
        "status": Status.NOT_AFFECTED.value,
        "justification": Justification.VULNERABLE_CODE_NOT_PRESENT.value,
        "impact_statement": impact,
    }


def _top_module(subject: Subject, where: str) -> ModuleFacts:
    for module in subject.modules:
        if any(module.name + m.position == where for m in module.walk()):
            return module
    return subject.primary


def _module_purl(module: ModuleFacts) -> str:
    """A module file's purl: `pkg:generic/NAME.wasm?checksum=sha256:...` (purl-spec's
    generic type and checksum qualifier; the SBOM gives a file no purl)."""
    from packageurl import PackageURL

    return str(
        PackageURL(
            type="generic",
            name=f"{module.name}.wasm",
            qualifiers={"checksum": f"sha256:{module.sha256}"},
        ).to_string()
    )


@cache
def _validator() -> Any:
    from importlib import resources

    import jsonschema_rs

    schema = json.loads(
        (resources.files("wasmctl.audit") / SCHEMA_FILE).read_text(encoding="utf-8")
    )
    return jsonschema_rs.Draft202012Validator(schema, validate_formats=True)


def validate(doc: Any) -> list[str]:
    """What the OpenVEX 0.2.0 JSON schema finds wrong with `doc` (nothing: [])."""
    return [e.message for e in _validator().iter_errors(doc)]


__all__ = [
    "CONTEXT",
    "Component",
    "Document",
    "Justification",
    "Origin",
    "Product",
    "Rejected",
    "Statement",
    "Status",
    "VexError",
    "VexSet",
    "attested",
    "emit",
    "load_file",
    "load_files",
    "parse",
    "product_of",
]

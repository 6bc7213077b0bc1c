"""The gate policy file (docs/gate.md, docs/gate.schema.json), read into typed rules.

Relative paths (keys, scan policies, the trusted root) are resolved against the policy
file's directory. Everything is checked when the file is read, so a gate never starts with
a policy it cannot apply.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wasmctl._files import read_limited
from wasmctl.errors import InputError, PolicyError
from wasmctl.sign import predicate_type

if TYPE_CHECKING:
    from wasmctl.sign.provenance import ProvenanceConditions

MAX_POLICY_BYTES = 1 << 20
PIN_MODES = ("digest", "record", "tag")
GITHUB_CLAIMS = {
    "repository": "github-repository",
    "ref": "github-ref",
    "workflowTrigger": "github-workflow-trigger",
    "workflowSha": "github-workflow-sha",
    "workflowName": "github-workflow-name",
}
OVERRIDABLE = ("registries", "pin", "formats", "limits", "signatures", "attestations", "scan",
               "vulnerabilities")  # fmt: skip
# `attestations[].provenance` keys -> `wasmctl.sign.provenance.provenance_conditions` names
PROVENANCE_CONDITIONS = {
    "builderId": "builder_id",
    "builderIdRegExp": "builder_id_regexp",
    "buildType": "build_type",
    "sourceUri": "source_uri",
    "sourceRef": "source_ref",
    "sourceRefRegExp": "source_ref_regexp",
    "sourceTag": "source_tag",
    "sourceBranch": "source_branch",
    "sourceCommit": "source_commit",
    "entryPoint": "entry_point",
}
THRESHOLDS = ("any", "low", "medium", "high", "critical")  # wasmctl.audit.model.Threshold


@dataclass(frozen=True)
class KeylessAuthority:
    identity: str | None
    identity_regexp: str | None
    issuer: str | None
    issuer_regexp: str | None
    claims: Mapping[str, str]


@dataclass(frozen=True)
class Signatures:
    """Who must have signed, and how many distinct signatures must verify."""

    required: int
    keyless: tuple[KeylessAuthority, ...]
    keys: tuple[Path, ...]


@dataclass(frozen=True)
class AttestationRule:
    """An attestation that must be present and verify: its predicate type, the conditions
    on its content (SLSA provenance), and who must have signed it (None: any authority of
    the rules' `signatures`)."""

    predicate_type: str
    provenance: ProvenanceConditions | None = None
    signers: Signatures | None = None


@dataclass(frozen=True)
class Scan:
    presets: tuple[str, ...]
    policies: tuple[Path, ...]


@dataclass(frozen=True)
class Vulnerabilities:
    """Known vulnerabilities (`wasmctl audit`) as a check: what fails it, what is ignored,
    the database (None: the default place `audit db update` fills), and the OpenVEX
    statements that apply: files (read with the policy, so a malformed one stops it
    loading) and, with `vex_attestations`, the artifact's attestations that verify under
    the rules' `signatures`."""

    fail_on: str = "any"
    ignores: tuple[Any, ...] = ()  # wasmctl.audit.model.Ignore
    ignore_unreachable: bool = False
    database: Path | None = None
    max_age: str | None = None  # a duration (7d), checked when the policy is read
    vex: tuple[Path, ...] = ()
    vex_attestations: bool = False
    # what the `vex` files said when the policy was read (wasmctl.audit.vex.Document)
    vex_documents: tuple[Any, ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True)
class Rules:
    """The checks that apply to one reference (the top level, or an override)."""

    registries: tuple[str, ...] = ()
    pin: str = "tag"
    formats: tuple[str, ...] = ()
    max_module_bytes: int | None = None
    signatures: Signatures | None = None
    attestations: tuple[AttestationRule, ...] = ()
    scan: Scan | None = None
    vulnerabilities: Vulnerabilities | None = None


@dataclass(frozen=True)
class Override:
    match: str
    rules: Rules


@dataclass(frozen=True)
class GatePolicy:
    source: str
    runtime_classes: tuple[str, ...]
    rules: Rules
    overrides: tuple[Override, ...] = ()
    trusted_root: Path | None = None
    offline_root: bool = False
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def rules_for(self, reference: str) -> tuple[Rules, str | None]:
        """The rules for a reference: the first override whose glob matches, else the top."""
        for override in self.overrides:
            if fnmatch.fnmatchcase(reference, override.match):
                return override.rules, override.match
        return self.rules, None


def load_gate_policy(path: Path) -> GatePolicy:
    """Read and check a gate policy file."""
    return gate_policy_from_bytes(
        read_limited(path, MAX_POLICY_BYTES, "gate policy", PolicyError), path
    )


def gate_policy_from_bytes(raw: bytes, path: Path) -> GatePolicy:
    """Check the gate policy that file `path` held (its paths resolve against its directory)."""
    from wasmctl import _yaml

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise PolicyError(f"{path}: not UTF-8 text: {e}") from None
    doc = _yaml.load(text, str(path), PolicyError)
    return parse_gate_policy(doc, str(path), path.parent)


def referenced_files(policy: GatePolicy) -> tuple[Path, ...]:
    """The files a policy names (keys, scan policies, the trusted root), in a fixed order:
    what its decisions also depend on."""
    found: list[Path] = []
    if policy.trusted_root is not None:
        found.append(policy.trusted_root)
    for rules in (policy.rules, *(o.rules for o in policy.overrides)):
        if rules.signatures is not None:
            found += rules.signatures.keys
        found += [k for a in rules.attestations if a.signers is not None for k in a.signers.keys]
        if rules.scan is not None:
            found += rules.scan.policies
        if rules.vulnerabilities is not None:
            found += database_files(rules.vulnerabilities)
            found += rules.vulnerabilities.vex
    return tuple(dict.fromkeys(found))


def database_files(rules: Vulnerabilities) -> list[Path]:
    """The files of a vulnerability database, as far as they exist now (a missing database
    is reported when the gate loads it)."""
    from wasmctl.audit import db
    from wasmctl.errors import InputError

    try:
        return db.files(rules.database)
    except InputError:
        return []


def parse_gate_policy(doc: Any, source: str, base: Path) -> GatePolicy:
    """Check a parsed policy document and resolve its paths against `base`."""
    where = _Where(source, base)
    if not isinstance(doc, Mapping):
        raise PolicyError(f"{source}: a gate policy is a mapping")
    where.keys(doc, {"version", "runtimeClasses", "trust", "overrides", *OVERRIDABLE}, "")
    where.no_empty_values(doc, "")
    if "version" not in doc:
        raise PolicyError(
            f"{source}: no `version`", hint="start the policy with `version: 1` (docs/gate.md)"
        )
    version = doc["version"]
    if not isinstance(version, int) or isinstance(version, bool) or version != 1:
        raise PolicyError(f"{source}: unsupported gate policy version {version!r}")
    trust = doc.get("trust", {})
    if not isinstance(trust, Mapping):
        raise PolicyError(f"{source}: `trust` must be a mapping")
    where.keys(trust, {"trustedRoot", "offline"}, "trust")
    where.no_empty_values(trust, "trust")
    if not isinstance(trust.get("offline", False), bool):
        raise PolicyError(f"{source}: `trust.offline` must be true or false")
    trusted_root = (
        where.path(trust["trustedRoot"], "trust.trustedRoot") if ("trustedRoot" in trust) else None
    )
    overrides = []
    for i, item in enumerate(where.items(doc, "overrides")):
        label = f"overrides[{i}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("match"), str):
            raise PolicyError(f"{source}: {label} needs `match`, a reference glob")
        where.keys(item, {"match", *OVERRIDABLE}, label)
        where.no_empty_values(item, label)
        merged = {k: v for k, v in doc.items() if k in OVERRIDABLE} | dict(item)
        overrides.append(Override(item["match"], where.rules(merged, label)))
    return GatePolicy(
        source=source,
        runtime_classes=tuple(where.strings(doc, "runtimeClasses")),
        rules=where.rules(doc, ""),
        overrides=tuple(overrides),
        trusted_root=trusted_root,
        offline_root=trust.get("offline") is True,
        raw=doc,
    )


class _Where:
    """Checks with messages naming the file and the key."""

    def __init__(self, source: str, base: Path) -> None:
        self.source = source
        self.base = base

    def fail(self, message: str) -> PolicyError:
        return PolicyError(f"{self.source}: {message}")

    def keys(self, doc: Mapping[str, Any], allowed: set[str], label: str) -> None:
        unknown = sorted(set(doc) - allowed)
        if unknown:
            at = f" in `{label}`" if label else ""
            raise self.fail(
                f"unknown key{'s' if len(unknown) > 1 else ''}{at}: {', '.join(unknown)}"
            )

    def no_empty_values(self, doc: Mapping[str, Any], label: str) -> None:
        """Refuse `key:` with no value and empty lists or mappings. In an allow-list an
        empty value reads as strict but would allow everything (the check is skipped when
        its key is absent), so a policy must say what it allows or leave the key out."""
        at = f"{label}." if label else ""
        for key, value in doc.items():
            if value is None or (isinstance(value, list | Mapping) and not value):
                shown = (
                    "no value"
                    if value is None
                    else "an empty list"
                    if isinstance(value, list)
                    else "an empty mapping"
                )
                raise self.fail(
                    f"`{at}{key}` has {shown}: list what it allows, or leave the key out "
                    "to not check it"
                )

    def items(self, doc: Mapping[str, Any], key: str) -> list[Any]:
        value = doc.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(f"`{key}` must be a list")
        return value

    def strings(self, doc: Mapping[str, Any], key: str) -> list[str]:
        items = self.items(doc, key)
        if not all(isinstance(i, str) and i for i in items):
            raise self.fail(f"`{key}` must be a list of non-empty strings")
        return items

    def path(self, value: Any, label: str) -> Path:
        if not isinstance(value, str) or not value:
            raise self.fail(f"`{label}` must be a path")
        return (self.base / value).resolve()

    def rules(self, doc: Mapping[str, Any], label: str) -> Rules:
        at = f"{label}." if label else ""
        pin = doc.get("pin", "tag")
        if pin not in PIN_MODES:
            raise self.fail(f"`{at}pin` must be one of {', '.join(PIN_MODES)}, not {pin!r}")
        limits = doc.get("limits") or {}
        if not isinstance(limits, Mapping):
            raise self.fail(f"`{at}limits` must be a mapping")
        self.keys(limits, {"maxModuleBytes"}, f"{at}limits")
        self.no_empty_values(limits, f"{at}limits")
        size = limits.get("maxModuleBytes")
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 1):
            raise self.fail(f"`{at}limits.maxModuleBytes` must be a positive integer")
        attestations = []
        for i, item in enumerate(self.items(doc, "attestations")):
            if not isinstance(item, Mapping) or not isinstance(item.get("predicateType"), str):
                raise self.fail(f"`{at}attestations[{i}]` needs `predicateType`")
            self.keys(item, {"predicateType", "signers", "provenance"}, f"{at}attestations[{i}]")
            self.no_empty_values(item, f"{at}attestations[{i}]")
            kind = str(item["predicateType"])
            try:
                uri = predicate_type(kind)
            except InputError as e:
                where = f"`{at}attestations[{i}].predicateType`"
                raise self.fail(f"{where}: {e.message}; {e.hint}") from None
            attestations.append(self.attestation(item, uri, f"{at}attestations[{i}]"))
        return Rules(
            registries=tuple(self.strings(doc, "registries")),
            pin=pin,
            formats=tuple(self.strings(doc, "formats")),
            max_module_bytes=size,
            signatures=self.signatures(doc.get("signatures"), f"{at}signatures"),
            attestations=tuple(attestations),
            scan=self.scan(doc.get("scan"), f"{at}scan"),
            vulnerabilities=self.vulnerabilities(
                doc.get("vulnerabilities"), f"{at}vulnerabilities", "signatures" in doc
            ),
        )

    def attestation(self, item: Mapping[str, Any], uri: str, label: str) -> AttestationRule:
        """One `attestations` entry: its type, who must have signed it (`signers`, else the
        `signatures` authorities), and for SLSA provenance the `provenance` conditions."""
        from wasmctl.sign.policy import PolicyArgumentError
        from wasmctl.sign.provenance import PROVENANCE_TYPES, provenance_conditions

        signers = None
        if "signers" in item:
            doc = item["signers"]
            if not isinstance(doc, Mapping):
                raise self.fail(f"`{label}.signers` must be a mapping")
            self.keys(doc, {"keyless", "keys"}, f"{label}.signers")
            signers = self.signatures(doc, f"{label}.signers")
        conditions = None
        if "provenance" in item:
            doc = item["provenance"]
            if uri not in PROVENANCE_TYPES:
                raise self.fail(
                    f"`{label}.provenance` is for SLSA provenance (predicateType "
                    f"slsaprovenance or slsaprovenance1), not {uri}"
                )
            if not isinstance(doc, Mapping):
                raise self.fail(f"`{label}.provenance` must be a mapping")
            self.keys(doc, set(PROVENANCE_CONDITIONS), f"{label}.provenance")
            self.no_empty_values(doc, f"{label}.provenance")
            for key, value in doc.items():
                if not isinstance(value, str):
                    raise self.fail(f"`{label}.provenance.{key}` must be a string (quote it)")
            try:
                conditions = provenance_conditions(
                    **{PROVENANCE_CONDITIONS[k]: v for k, v in doc.items()}
                )
            except PolicyArgumentError as e:
                hint = f" ({e.hint})" if e.hint else ""
                raise self.fail(f"`{label}.provenance`: {e.message}{hint}") from None
        return AttestationRule(uri, conditions, signers)

    def vulnerabilities(self, doc: Any, label: str, signed: bool) -> Vulnerabilities | None:
        if doc is None:
            return None
        if not isinstance(doc, Mapping):
            raise self.fail(f"`{label}` must be a mapping")
        self.keys(doc, {"failOn", "ignore", "ignoreUnreachable", "database", "maxDatabaseAge",
                        "vex", "vexAttestations"}, label)  # fmt: skip
        self.no_empty_values(doc, label)
        fail_on = doc.get("failOn", "any")
        if fail_on not in THRESHOLDS:
            raise self.fail(f"`{label}.failOn` must be one of {', '.join(THRESHOLDS)}, "
                            f"not {fail_on!r}")  # fmt: skip
        unreachable = doc.get("ignoreUnreachable", False)
        if not isinstance(unreachable, bool):
            raise self.fail(f"`{label}.ignoreUnreachable` must be true or false")
        max_age = doc.get("maxDatabaseAge")
        from wasmctl.audit.db import parse_duration
        from wasmctl.audit.model import ignores_from
        from wasmctl.errors import InputError

        try:
            if max_age is not None:
                parse_duration(str(max_age))
            ignores = ignores_from(doc.get("ignore"), f"{self.source}: {label}")
        except InputError as e:
            raise PolicyError(e.message if e.message.startswith(self.source)
                              else f"{self.source}: {label}: {e.message}") from None  # fmt: skip
        database = doc.get("database")
        attested = doc.get("vexAttestations", False)
        if not isinstance(attested, bool):
            raise self.fail(f"`{label}.vexAttestations` must be true or false")
        if attested and not signed:
            raise self.fail(
                f"`{label}.vexAttestations` needs `signatures`: whose keys or identities "
                "must have signed the VEX attestations it reads"
            )
        files = doc.get("vex", [])
        if not isinstance(files, list):
            raise self.fail(f"`{label}.vex` must be a list of OpenVEX files")
        vex = tuple(self.path(p, f"{label}.vex[{i}]") for i, p in enumerate(files))
        from wasmctl.audit.vex import load_files

        try:
            documents = load_files(vex)
        except InputError as e:
            raise PolicyError(f"{self.source}: {label}.vex: {e.message}", hint=e.hint) from None
        return Vulnerabilities(
            fail_on=fail_on,
            ignores=ignores,
            ignore_unreachable=unreachable,
            database=self.path(database, f"{label}.database") if database is not None else None,
            max_age=str(max_age) if max_age is not None else None,
            vex=vex,
            vex_attestations=attested,
            vex_documents=documents,
        )

    def signatures(self, doc: Any, label: str) -> Signatures | None:
        if doc is None:
            return None
        if not isinstance(doc, Mapping):
            raise self.fail(f"`{label}` must be a mapping")
        self.keys(doc, {"required", "keyless", "keys"}, label)
        self.no_empty_values(doc, label)
        required = doc.get("required", 1)
        if not isinstance(required, int) or isinstance(required, bool) or required < 1:
            raise self.fail(f"`{label}.required` must be a positive integer")
        keyless = tuple(
            self.authority(item, f"{label}.keyless[{i}]")
            for i, item in enumerate(self.items(doc, "keyless"))
        )
        keys = tuple(self.path(k, f"{label}.keys") for k in self.items(doc, "keys"))
        if not keyless and not keys:
            raise self.fail(f"`{label}` trusts nobody: give `keyless` identities or `keys`")
        return Signatures(required, keyless, keys)

    def authority(self, item: Any, label: str) -> KeylessAuthority:
        import re

        if not isinstance(item, Mapping):
            raise self.fail(f"`{label}` must be a mapping")
        self.keys(item, {"identity", "identityRegExp", "issuer", "issuerRegExp", "github"}, label)
        self.no_empty_values(item, label)
        values = {k: item.get(k) for k in ("identity", "identityRegExp", "issuer", "issuerRegExp")}
        for key, value in values.items():
            if value is not None and (not isinstance(value, str) or not value):
                raise self.fail(f"`{label}.{key}` must be a non-empty string")
            if value is not None and key.endswith("RegExp"):
                try:
                    re.compile(value)
                except re.error as e:
                    raise self.fail(f"`{label}.{key}` is not a regular expression: {e}") from None
        if (values["identity"] is None) == (values["identityRegExp"] is None):
            raise self.fail(f"`{label}` needs exactly one of identity, identityRegExp")
        if (values["issuer"] is None) == (values["issuerRegExp"] is None):
            raise self.fail(f"`{label}` needs exactly one of issuer, issuerRegExp")
        github = item.get("github") or {}
        if not isinstance(github, Mapping):
            raise self.fail(f"`{label}.github` must be a mapping")
        self.keys(github, set(GITHUB_CLAIMS), f"{label}.github")
        self.no_empty_values(github, f"{label}.github")
        for key, value in github.items():
            if not isinstance(value, str):
                raise self.fail(f"`{label}.github.{key}` must be a string")
        claims = {GITHUB_CLAIMS[k]: v for k, v in github.items()}
        return KeylessAuthority(
            values["identity"],
            values["identityRegExp"],
            values["issuer"],
            values["issuerRegExp"],
            claims,
        )

    def scan(self, doc: Any, label: str) -> Scan | None:
        if doc is None:
            return None
        if not isinstance(doc, Mapping):
            raise self.fail(f"`{label}` must be a mapping")
        self.keys(doc, {"presets", "policies"}, label)
        self.no_empty_values(doc, label)
        presets = tuple(self.strings(doc, "presets"))
        policies = tuple(self.path(p, f"{label}.policies") for p in self.items(doc, "policies"))
        if not presets and not policies:
            raise self.fail(f"`{label}` needs presets or policies")
        return Scan(presets, policies)

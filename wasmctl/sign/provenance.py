"""SLSA provenance: what a verified attestation says about how an artifact was built, and
the conditions a policy puts on it.

Both predicate versions are read into one fact set (`Provenance`):

- SLSA provenance v0.2 (https://slsa.dev/provenance/v0.2): `builder.id`, `buildType`, and
  the source in `invocation.configSource` (`uri`, `digest`, `entryPoint`), as GitHub's SLSA
  generator writes it (`git+https://github.com/o/r@refs/tags/v1`); `materials[0]` when a
  builder records no `configSource.uri`.
- SLSA provenance v1 (https://slsa.dev/provenance/v1): `runDetails.builder.id`,
  `buildDefinition.buildType`, and for GitHub Actions workflows (GitHub's build type
  https://actions.github.io/buildtypes/workflow/v1, documented in actions/buildtypes
  workflow/v1/README.md, and slsa-github-generator's delegator type) the source in
  `externalParameters.workflow` {`repository`, `ref`, `path`}, its commit in the
  `resolvedDependencies` entry `git+<repository>@<ref>` (digest `gitCommit`); other build
  types name their source by the first `git+` entry of `resolvedDependencies`.

A predicate is judged only after its signature verified, but its content is still the
signer's word in a format others wrote: a field of the wrong JSON type, an oversized value,
a list past `MAX_ENTRIES` makes the provenance malformed, and a malformed provenance fails
its condition (exit 1), closed; nothing here raises past `evaluate`.

Conditions (`ProvenanceConditions`) are those of slsa-verifier's `verify-image` (builder
id, source URI, tag or branch) and a few more (builder id pattern, build type, any ref
exact or by pattern, commit, entry-point workflow). Repositories are compared normalised:
`git+https://github.com/o/r@refs/tags/x`, `https://github.com/o/r.git` and `github.com/o/r`
name one repository. Patterns are matched with `re.fullmatch`, as everywhere in wasmctl.

For a keyless signature made in GitHub Actions, the provenance must also agree with what
the certificate says (Fulcio's OIDs 1.3.6.1.4.1.57264.1.12 source repository URI, .14 its
ref, .13 its commit, .18 the build config URI, i.e. the top-level workflow): with GitHub's
SLSA generator, the certificate's identity (its SAN, .9) is the generator's reusable
workflow, while these claims are the calling repository's, which is what the provenance
describes. A claim the certificate carries and the provenance contradicts, or does not
state, fails the attestation.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from cryptography import x509

from wasmctl.errors import DeniedError
from wasmctl.sign.policy import OIDC_ISSUER_V1, OIDC_ISSUER_V2, PolicyArgumentError, _der_utf8

if TYPE_CHECKING:
    from wasmctl.sign.bundle import Statement
    from wasmctl.sign.targets import Verification
    from wasmctl.sign.verifier import Check

SLSA_V02 = "https://slsa.dev/provenance/v0.2"
SLSA_V1 = "https://slsa.dev/provenance/v1"
PROVENANCE_TYPES = (SLSA_V02, SLSA_V1)
GITHUB_ACTIONS_ISSUER = "https://token.actions.githubusercontent.com"

MAX_VALUE = 4096  # characters of any one value read (an id, a URI, a ref, a path)
MAX_ENTRIES = 10_000  # materials or resolved dependencies looked through

_FULCIO = "1.3.6.1.4.1.57264.1."
# Fulcio's OID registry (sigstore/fulcio docs/oid-info.md): v2 values are DER UTF8Strings;
# the v1 ones (.3, .5, .6, deprecated) are raw bytes, and .5 is `owner/name` only.
SOURCE_REPOSITORY_URI = _FULCIO + "12"
SOURCE_REPOSITORY_DIGEST = _FULCIO + "13"
SOURCE_REPOSITORY_REF = _FULCIO + "14"
BUILD_CONFIG_URI = _FULCIO + "18"
V1_WORKFLOW_SHA = _FULCIO + "3"
V1_WORKFLOW_REPOSITORY = _FULCIO + "5"
V1_WORKFLOW_REF = _FULCIO + "6"

_HEX = re.compile(r"[0-9a-fA-F]{40}|[0-9a-fA-F]{64}")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class ProvenanceError(DeniedError):
    """A provenance predicate that does not have the shape of its version."""


# -- the facts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Provenance:
    """What a SLSA provenance statement says about a build, whichever version wrote it.

    `source_repository` is normalised (`github.com/o/r`); `source_digest` maps a digest
    algorithm (`sha1`, `gitCommit`, ...) to its lower-case hex value."""

    predicate_type: str
    builder_id: str | None = None
    build_type: str | None = None
    source_uri: str | None = None
    source_repository: str | None = None
    source_ref: str | None = None
    source_digest: Mapping[str, str] = field(default_factory=dict)
    entry_point: str | None = None

    @property
    def source_commit(self) -> str | None:
        """The source's commit as the provenance names it (git's own algorithm first)."""
        for algorithm in ("gitCommit", "sha1", "sha256"):
            if algorithm in self.source_digest:
                return self.source_digest[algorithm]
        return next(iter(self.source_digest.values()), None)


def read_provenance(statement: Statement) -> Provenance:
    """The facts of a SLSA v0.2 or v1 statement; `ProvenanceError` when it is malformed."""
    predicate = statement.predicate
    if not isinstance(predicate, Mapping):
        raise ProvenanceError(f"the predicate is {_kind(predicate)}, not an object")
    if statement.predicate_type == SLSA_V02:
        return _read_v02(predicate)
    if statement.predicate_type == SLSA_V1:
        return _read_v1(predicate)
    raise ProvenanceError(f"predicate type {statement.predicate_type} is not SLSA provenance")


def _read_v02(predicate: Mapping[str, Any]) -> Provenance:
    builder = _object(predicate, "builder")
    invocation = _object(predicate, "invocation")
    config = _object(invocation, "configSource", "invocation.") if invocation else None
    uri = _string(config, "uri", "invocation.configSource.") if config else None
    digest = _digest(config, "invocation.configSource.") if config else {}
    if uri is None:
        # builders that name no config source: the first material is the source
        materials = _list(predicate, "materials")
        first = materials[0] if materials else None
        if first is not None:
            if not isinstance(first, Mapping):
                raise ProvenanceError(f"materials[0] is {_kind(first)}, not an object")
            uri = _string(first, "uri", "materials[0].")
            digest = _digest(first, "materials[0].")
    repository, ref = split_source(uri) if uri else (None, None)
    return Provenance(
        SLSA_V02,
        builder_id=_string(builder, "id", "builder.") if builder else None,
        build_type=_string(predicate, "buildType"),
        source_uri=uri,
        source_repository=repository,
        source_ref=ref,
        source_digest=digest,
        entry_point=_string(config, "entryPoint", "invocation.configSource.") if config else None,
    )


def _read_v1(predicate: Mapping[str, Any]) -> Provenance:
    definition = _object(predicate, "buildDefinition")
    if definition is None:
        raise ProvenanceError("no buildDefinition (required in SLSA provenance v1)")
    run = _object(predicate, "runDetails")
    builder = _object(run, "builder", "runDetails.") if run else None
    external = _object(definition, "externalParameters", "buildDefinition.")
    at = "buildDefinition.externalParameters.workflow."
    workflow = (
        _object(external, "workflow", "buildDefinition.externalParameters.") if external else None
    )
    dependencies = _list(definition, "resolvedDependencies", "buildDefinition.")
    entries: list[tuple[str, str | None, str | None, dict[str, str]]] = []
    for i, item in enumerate(dependencies):
        label = f"buildDefinition.resolvedDependencies[{i}]."
        if not isinstance(item, Mapping):
            raise ProvenanceError(f"{label[:-1]} is {_kind(item)}, not an object")
        uri = _string(item, "uri", label)
        if uri is not None and uri.startswith("git+"):
            repository, ref = split_source(uri)
            entries.append((uri, repository, ref, _digest(item, label)))
    uri = repository = ref = entry_point = None
    digest: dict[str, str] = {}
    if workflow is not None:
        # GitHub Actions build types: the workflow names the source; its commit is the
        # resolved dependency `git+<repository>@<ref>` (actions/buildtypes workflow/v1)
        named = _string(workflow, "repository", at)
        ref = _string(workflow, "ref", at)
        entry_point = _string(workflow, "path", at)
        repository = normalise_repository(named) if named else None
        if named is not None and repository is None:
            raise ProvenanceError(f"{at}repository {named!r} is not a repository URI")
        uri = f"git+{named}@{ref}" if named and ref else named
        for _, dep_repository, dep_ref, dep_digest in entries:
            if dep_repository == repository and dep_ref in (None, ref):
                digest = dep_digest
                break
    elif entries:
        uri, repository, ref, digest = entries[0]
    return Provenance(
        SLSA_V1,
        builder_id=_string(builder, "id", "runDetails.builder.") if builder else None,
        build_type=_string(definition, "buildType", "buildDefinition."),
        source_uri=uri,
        source_repository=repository,
        source_ref=ref,
        source_digest=digest,
        entry_point=entry_point,
    )


def _object(doc: Mapping[str, Any], key: str, at: str = "") -> Mapping[str, Any] | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ProvenanceError(f"{at}{key} is {_kind(value)}, not an object")
    return value


def _list(doc: Mapping[str, Any], key: str, at: str = "") -> Sequence[Any]:
    value = doc.get(key)
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ProvenanceError(f"{at}{key} is {_kind(value)}, not a list")
    if len(value) > MAX_ENTRIES:
        raise ProvenanceError(f"{at}{key} has {len(value):,} entries (at most {MAX_ENTRIES:,})")
    return value


def _string(doc: Mapping[str, Any], key: str, at: str = "") -> str | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ProvenanceError(f"{at}{key} is {_kind(value)}, not a string")
    if len(value) > MAX_VALUE:
        raise ProvenanceError(f"{at}{key} is {len(value):,} characters long")
    return value or None


def _digest(doc: Mapping[str, Any], at: str) -> dict[str, str]:
    digest = _object(doc, "digest", at)
    if digest is None:
        return {}
    if len(digest) > 64:
        raise ProvenanceError(f"{at}digest has {len(digest)} algorithms")
    out = {}
    for algorithm, value in digest.items():
        if not isinstance(value, str) or not re.fullmatch(r"[0-9a-fA-F]{1,256}", value):
            raise ProvenanceError(f"{at}digest.{algorithm[:64]} is not a hex digest")
        out[str(algorithm)] = value.lower()
    return out


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
    }.get(type(value), type(value).__name__)


# -- repositories ------------------------------------------------------------------------


def split_source(uri: str) -> tuple[str | None, str | None]:
    """A source URI's repository (normalised) and the ref after its `@`, if any:
    `git+https://github.com/o/r@refs/tags/v1` is (`github.com/o/r`, `refs/tags/v1`)."""
    rest = uri.strip()
    rest = rest.removeprefix("git+")
    scheme = _SCHEME.match(rest)
    if scheme is not None:
        rest = rest[scheme.end() :]
    elif re.match(r"^[^/@:]+@[^/:]+:", rest):  # scp-like: git@github.com:o/r
        rest = rest.split("@", 1)[1].replace(":", "/", 1)
    host, slash, path = rest.partition("/")
    host = host.rpartition("@")[2].lower()  # credentials are not part of the name
    ref = None
    if "@" in path:
        # repository paths hold no `@`; a ref may (actions/buildtypes: "MAY contain @")
        path, _, ref = path.partition("@")
    path = re.split(r"[?#]", path, maxsplit=1)[0].strip("/").removesuffix(".git").strip("/")
    # a host is named as docker names registries: with a `.` or a `:`, or localhost; so
    # `acme/app` (a GitHub `owner/name`) is not taken for host `acme`
    named_host = "." in host or ":" in host or host == "localhost"
    if not named_host or not slash or not path:
        return None, ref or None
    return f"{host}/{path}", ref or None


def normalise_repository(uri: str) -> str | None:
    """`github.com/o/r` for any of the ways a repository is written; None if `uri` names
    none."""
    return split_source(uri)[0]


# -- conditions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ProvenanceConditions:
    """What a policy asks of a provenance statement (None: not asked).

    `builder_id` without `@` names a builder at any version, with one the exact id (as
    slsa-verifier's `--builder-id`; `@v1.2.0` also matches `@refs/tags/v1.2.0`).
    `source_uri` is a repository, compared normalised. `source_ref` is a full ref
    (`refs/tags/v1`); `source_commit` a full hex commit id."""

    builder_id: str | None = None
    builder_id_regexp: str | None = None
    build_type: str | None = None
    source_uri: str | None = None
    source_ref: str | None = None
    source_ref_regexp: str | None = None
    source_commit: str | None = None
    entry_point: str | None = None

    def describe(self) -> dict[str, str]:
        """The conditions as the policy file names them (camelCase), only those asked."""
        names = {
            "builder_id": "builderId",
            "builder_id_regexp": "builderIdRegExp",
            "build_type": "buildType",
            "source_uri": "sourceUri",
            "source_ref": "sourceRef",
            "source_ref_regexp": "sourceRefRegExp",
            "source_commit": "sourceCommit",
            "entry_point": "entryPoint",
        }
        return {
            camel: value
            for name, camel in names.items()
            if (value := getattr(self, name)) is not None
        }


def provenance_conditions(
    *,
    builder_id: str | None = None,
    builder_id_regexp: str | None = None,
    build_type: str | None = None,
    source_uri: str | None = None,
    source_ref: str | None = None,
    source_ref_regexp: str | None = None,
    source_tag: str | None = None,
    source_branch: str | None = None,
    source_commit: str | None = None,
    entry_point: str | None = None,
) -> ProvenanceConditions | None:
    """Conditions from options or a policy file (None: none asked); `PolicyArgumentError`
    (exit 2) for what cannot be applied: a bad pattern, a value given two ways, a source
    URI with a ref in it, an abbreviated commit."""
    if builder_id is not None and builder_id_regexp is not None:
        raise PolicyArgumentError("give the builder id exactly or as a pattern, not both")
    refs = {
        "source ref": source_ref,
        "source ref pattern": source_ref_regexp,
        "source tag": source_tag,
        "source branch": source_branch,
    }
    given = [name for name, value in refs.items() if value is not None]
    if len(given) > 1:
        raise PolicyArgumentError(f"give one of {', '.join(refs)}, not {' and '.join(given)}")
    for name, value in {
        "builder id": builder_id,
        "builder id pattern": builder_id_regexp,
        "build type": build_type,
        "source URI": source_uri,
        "entry point": entry_point,
        **refs,
        "source commit": source_commit,
    }.items():
        if value is not None and not value.strip():
            raise PolicyArgumentError(f"the {name} must be a non-empty string")
    for pattern in (builder_id_regexp, source_ref_regexp):
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as e:
                raise PolicyArgumentError(f"invalid regular expression {pattern!r}: {e}") from None
    if source_uri is not None:
        repository, ref = split_source(source_uri)
        if repository is None:
            raise PolicyArgumentError(f"the source URI {source_uri!r} names no repository")
        if ref is not None:
            raise PolicyArgumentError(
                f"the source URI {source_uri!r} names a ref: give the repository only",
                hint="ask for the ref on its own (--source-tag, --source-branch, --source-ref; "
                "sourceTag, sourceBranch, sourceRef in a gate policy)",
            )
        source_uri = repository
    if source_tag is not None:
        source_ref = "refs/tags/" + source_tag.removeprefix("refs/tags/")
    if source_branch is not None:
        source_ref = "refs/heads/" + source_branch.removeprefix("refs/heads/")
    if source_commit is not None:
        if not _HEX.fullmatch(source_commit):
            raise PolicyArgumentError(
                f"the source commit {source_commit!r} is not a full commit id (40 or 64 hex digits)"
            )
        source_commit = source_commit.lower()
    conditions = ProvenanceConditions(
        builder_id=builder_id,
        builder_id_regexp=builder_id_regexp,
        build_type=build_type,
        source_uri=source_uri,
        source_ref=source_ref,
        source_ref_regexp=source_ref_regexp,
        source_commit=source_commit,
        entry_point=_workflow_path(entry_point) if entry_point is not None else None,
    )
    return conditions if conditions.describe() else None


@dataclass(frozen=True)
class ConditionResult:
    """One condition on a provenance statement: what was wanted, what was found.

    `condition` is a policy name (`builderId`, `sourceRef`, ...), `predicate` for a
    statement that could not be read, or `certificate…` for a claim of the signing
    certificate the provenance must agree with."""

    condition: str
    wanted: str
    found: str | None
    passed: bool

    def describe(self) -> str:
        found = "nothing" if self.found is None else self.found
        if self.condition == "predicate":
            return f"malformed provenance: {found}"
        return f"{self.condition} is {found}, wanted {self.wanted}"

    def to_json(self) -> dict[str, Any]:
        return {
            "condition": self.condition,
            "wanted": self.wanted,
            "found": self.found,
            "passed": self.passed,
        }


def evaluate(
    statement: Statement,
    certificate: x509.Certificate | None,
    conditions: ProvenanceConditions | None,
) -> tuple[ConditionResult, ...]:
    """Every condition on a verified statement, passed or not: those of the policy, and
    for a GitHub Actions certificate its source claims. Empty when nothing is asked (no
    conditions, a statement that is not provenance signed outside GitHub Actions)."""
    claims = github_claims(certificate) if certificate is not None else None
    if statement.predicate_type not in PROVENANCE_TYPES:
        if conditions is None:
            return ()
        return (
            ConditionResult(
                "predicateType", " or ".join(PROVENANCE_TYPES), statement.predicate_type, False
            ),
        )
    if conditions is None and claims is None:
        return ()
    try:
        facts = read_provenance(statement)
    except ProvenanceError as e:
        return (ConditionResult("predicate", "SLSA provenance", e.message, False),)
    results = list(_policy_results(facts, conditions)) if conditions else []
    if claims is not None:
        results += _certificate_results(facts, claims)
    return tuple(results)


def _policy_results(facts: Provenance, wanted: ProvenanceConditions) -> list[ConditionResult]:
    """Each condition asked for: by name, the value wanted, the value found, and how they
    compare (None: `wanted` is a pattern the whole value must match)."""
    entry_point = _workflow_path(facts.entry_point) if facts.entry_point else None
    conditions: list[tuple[str, str | None, str | None, Callable[[str], bool] | None]] = [
        ("builderId", wanted.builder_id, facts.builder_id,
         lambda w: _builder_matches(w, facts.builder_id)),
        ("builderIdRegExp", wanted.builder_id_regexp, facts.builder_id, None),
        ("buildType", wanted.build_type, facts.build_type, lambda w: w == facts.build_type),
        ("sourceUri", wanted.source_uri, facts.source_repository,
         lambda w: w == facts.source_repository),
        ("sourceRef", wanted.source_ref, facts.source_ref, lambda w: w == facts.source_ref),
        ("sourceRefRegExp", wanted.source_ref_regexp, facts.source_ref, None),
        ("sourceCommit", wanted.source_commit, facts.source_commit,
         lambda w: w in facts.source_digest.values()),
        ("entryPoint", wanted.entry_point, entry_point, lambda w: w == entry_point),
    ]  # fmt: skip
    return [
        _pattern(name, value, found)
        if matches is None
        else ConditionResult(name, value, found, matches(value))
        for name, value, found, matches in conditions
        if value is not None
    ]


def _pattern(name: str, pattern: str, found: str | None) -> ConditionResult:
    passed = found is not None and re.fullmatch(pattern, found) is not None
    return ConditionResult(name, f"a match of {pattern} (whole value)", found, passed)


def _builder_matches(wanted: str, found: str | None) -> bool:
    """slsa-verifier's `MatchesLoose` (verifiers/utils/builder.go): a wanted id without a
    version names the builder at any version; `@v1.2.0` also matches `@refs/tags/v1.2.0`."""
    if found is None:
        return False
    name, version = _name_version(wanted)
    found_name, found_version = _name_version(found)
    if name != found_name:
        return False
    return version is None or found_version in (version, f"refs/tags/{version}")


def _name_version(builder_id: str) -> tuple[str, str | None]:
    """A builder id's name and the version after its last `@` (None: no version)."""
    name, at, version = builder_id.rpartition("@")
    return (name, version) if at else (builder_id, None)


def _workflow_path(path: str) -> str:
    """A workflow path as a repository-relative path (`./.github/...` and `/.github/...`
    are `.github/...`)."""
    return path.strip().removeprefix("./").lstrip("/")


# -- the certificate ----------------------------------------------------------------------


@dataclass(frozen=True)
class GitHubClaims:
    """What a GitHub Actions Fulcio certificate says about the source it ran on (None:
    the certificate does not say)."""

    repository: str | None  # normalised
    repository_uri: str | None  # as the certificate writes it
    ref: str | None
    commit: str | None
    build_config_uri: str | None


def github_claims(certificate: x509.Certificate) -> GitHubClaims | None:
    """The source claims of a certificate Fulcio issued for a GitHub Actions token, or None
    for any other certificate (another issuer: its claims mean something else)."""
    values = {
        ext.oid.dotted_string: ext.value.value
        for ext in certificate.extensions
        if isinstance(ext.value, x509.UnrecognizedExtension)
        and ext.oid.dotted_string.startswith(_FULCIO)
    }

    def v2(oid: str) -> str | None:
        raw = values.get(oid)
        return _der_utf8(raw) if raw is not None else None

    def v1(oid: str) -> str | None:
        raw = values.get(oid)
        return raw.decode("utf-8", errors="replace") if raw is not None else None

    issuer = v2(OIDC_ISSUER_V2.dotted_string) or v1(OIDC_ISSUER_V1.dotted_string)
    if issuer != GITHUB_ACTIONS_ISSUER:
        return None
    named = v1(V1_WORKFLOW_REPOSITORY)
    uri = v2(SOURCE_REPOSITORY_URI) or (f"https://github.com/{named}" if named else None)
    return GitHubClaims(
        repository=normalise_repository(uri) if uri else None,
        repository_uri=uri,
        ref=v2(SOURCE_REPOSITORY_REF) or v1(V1_WORKFLOW_REF),
        commit=(v2(SOURCE_REPOSITORY_DIGEST) or v1(V1_WORKFLOW_SHA) or "").lower() or None,
        build_config_uri=v2(BUILD_CONFIG_URI),
    )


def _certificate_results(facts: Provenance, claims: GitHubClaims) -> list[ConditionResult]:
    """The provenance's source against the certificate's claims, for each claim it makes."""
    out = []
    if claims.repository_uri is not None:
        out.append(
            ConditionResult(
                "certificateSourceRepositoryUri",
                claims.repository or claims.repository_uri,
                facts.source_repository,
                claims.repository is not None and facts.source_repository == claims.repository,
            )
        )
    if claims.ref is not None:
        out.append(
            ConditionResult(
                "certificateSourceRepositoryRef",
                claims.ref,
                facts.source_ref,
                facts.source_ref == claims.ref,
            )
        )
    if claims.commit is not None:
        out.append(
            ConditionResult(
                "certificateSourceRepositoryDigest",
                claims.commit,
                facts.source_commit,
                claims.commit in facts.source_digest.values(),
            )
        )
    if claims.build_config_uri is not None:
        # `https://github.com/o/r/.github/workflows/release.yml@refs/tags/v1`: the workflow
        # in its repository, at the ref (compared above); the provenance names the two apart
        located, _ = split_source(claims.build_config_uri)
        found = (
            f"{facts.source_repository}/{_workflow_path(facts.entry_point)}"
            if facts.source_repository and facts.entry_point
            else None
        )
        out.append(
            ConditionResult(
                "certificateBuildConfigUri",
                claims.build_config_uri,
                found,
                located is not None and found == located,
            )
        )
    return out


# -- applying them -------------------------------------------------------------------------


def judge(check: Check, conditions: ProvenanceConditions | None) -> Check:
    """A verified check, failed when its statement does not meet the conditions (or, signed
    in GitHub Actions, contradicts its certificate); every result is kept on the check.
    A check that did not verify is returned as it is: there is nothing trusted to judge."""
    if not check.ok or check.statement is None:
        return check
    results = evaluate(check.statement, check.certificate, conditions)
    failed = [r.describe() for r in results if not r.passed]
    return replace(check, conditions=results, error="; ".join(failed) if failed else None)


def apply_conditions(result: Verification, conditions: ProvenanceConditions | None) -> Verification:
    """A verification whose attestations count only when they also meet the conditions;
    the policy it reports names them (`provenance`)."""
    policy = dict(result.policy)
    if conditions is not None:
        policy["provenance"] = conditions.describe()
    return replace(result, policy=policy, checks=tuple(judge(c, conditions) for c in result.checks))

"""SLSA provenance read into one fact set (v0.2 and v1), judged by conditions and against a
GitHub Actions certificate's claims (issue 16): every condition passing and failing, on
synthetic statements of both versions and on the real generator output in
`../shared/testdata/provenance/`; malformed and hostile predicates fail, never crash."""

from __future__ import annotations

import copy
import datetime
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.provenance_layouts import (
    BUILD_TYPE,
    ENTRY_POINT,
    GENERATOR,
    GENERATOR_PATTERN,
    IMAGES,
    SOURCE,
    SOURCE_REF,
    ProvenanceImage,
)
from wasmctl.sign.bundle import STATEMENT_V1, Statement, Subject
from wasmctl.sign.policy import PolicyArgumentError
from wasmctl.sign.provenance import (
    MAX_ENTRIES,
    SLSA_V02,
    SLSA_V1,
    ConditionResult,
    ProvenanceConditions,
    evaluate,
    judge,
    normalise_repository,
    provenance_conditions,
    read_provenance,
    split_source,
)
from wasmctl.sign.verifier import Check

COMMIT = "c27d339ee6075c1f744c5d4b200f7901aad2c369"
OTHER_COMMIT = "0" * 40
REPO = "https://github.com/acme/app"
REF = "refs/tags/v1.2.3"
WORKFLOW = ".github/workflows/release.yml"
V02_BUILDER = f"{GENERATOR}@refs/tags/v2.0.0"
V1_BUILDER = "https://github.com/actions/runner/github-hosted"
V1_BUILD_TYPE = "https://actions.github.io/buildtypes/workflow/v1"

V02: dict[str, Any] = {
    "builder": {"id": V02_BUILDER},
    "buildType": BUILD_TYPE,
    "invocation": {
        "configSource": {
            "uri": f"git+{REPO}@{REF}",
            "digest": {"sha1": COMMIT},
            "entryPoint": WORKFLOW,
        },
        "parameters": {},
        "environment": {"github_ref": REF},
    },
    "materials": [{"uri": f"git+{REPO}@{REF}", "digest": {"sha1": COMMIT}}],
}
# GitHub's build type (actions/buildtypes workflow/v1 example.json, as
# actions/attest-build-provenance writes it)
V1: dict[str, Any] = {
    "buildDefinition": {
        "buildType": V1_BUILD_TYPE,
        "externalParameters": {
            "workflow": {"ref": REF, "repository": REPO, "path": WORKFLOW},
        },
        "internalParameters": {"github": {"event_name": "push"}},
        "resolvedDependencies": [
            {"uri": f"git+{REPO}@{REF}", "digest": {"gitCommit": COMMIT}},
        ],
    },
    "runDetails": {
        "builder": {"id": V1_BUILDER},
        "metadata": {"invocationId": f"{REPO}/actions/runs/1/attempts/1"},
    },
}
VERSIONS = {
    "v0.2": (SLSA_V02, V02, V02_BUILDER, BUILD_TYPE),
    "v1": (SLSA_V1, V1, V1_BUILDER, V1_BUILD_TYPE),
}


def statement(predicate_type: str, predicate: Any) -> Statement:
    return Statement(
        STATEMENT_V1, (Subject("app", {"sha256": "ab" * 32}),), predicate_type, predicate
    )


def failed(results: tuple[ConditionResult, ...]) -> list[str]:
    return [r.condition for r in results if not r.passed]


# -- reading -------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_both_versions_read_into_the_same_facts(version: str) -> None:
    predicate_type, predicate, builder, build_type = VERSIONS[version]
    facts = read_provenance(statement(predicate_type, predicate))
    assert (facts.builder_id, facts.build_type) == (builder, build_type)
    assert facts.source_repository == "github.com/acme/app"
    assert (facts.source_ref, facts.source_commit, facts.entry_point) == (REF, COMMIT, WORKFLOW)


def test_a_v02_provenance_without_a_config_source_takes_its_first_material() -> None:
    predicate = copy.deepcopy(V02)
    del predicate["invocation"]
    facts = read_provenance(statement(SLSA_V02, predicate))
    assert (facts.source_repository, facts.source_ref) == ("github.com/acme/app", REF)
    assert (facts.source_commit, facts.entry_point) == (COMMIT, None)


def test_a_v1_provenance_of_another_build_type_names_its_first_git_dependency() -> None:
    predicate = copy.deepcopy(V1)
    predicate["buildDefinition"]["externalParameters"] = {"source": "whatever"}
    predicate["buildDefinition"]["resolvedDependencies"].insert(
        0, {"uri": "pkg:npm/left-pad@1.3.0", "digest": {"sha512": "ab"}}
    )
    facts = read_provenance(statement(SLSA_V1, predicate))
    assert (facts.source_repository, facts.source_ref, facts.source_commit) == (
        "github.com/acme/app",
        REF,
        COMMIT,
    )


def test_a_v1_commit_is_the_dependency_of_the_workflow_repository_only() -> None:
    predicate = copy.deepcopy(V1)
    predicate["buildDefinition"]["resolvedDependencies"] = [
        {"uri": f"git+https://github.com/acme/other@{REF}", "digest": {"gitCommit": COMMIT}}
    ]
    assert read_provenance(statement(SLSA_V1, predicate)).source_commit is None


@pytest.mark.parametrize(
    "uri",
    [
        "git+https://github.com/o/r@refs/tags/x",
        "github.com/o/r",
        "https://github.com/o/r.git",
        "https://GitHub.com/o/r/",
        "git+https://user@github.com/o/r.git@refs/heads/main",
        "git@github.com:o/r.git",
        "ssh://git@github.com/o/r",
    ],
)
def test_the_ways_of_writing_a_repository_name_the_same_one(uri: str) -> None:
    assert normalise_repository(uri) == "github.com/o/r"


def test_a_source_uri_splits_into_repository_and_ref() -> None:
    assert split_source("git+https://github.com/o/r@refs/tags/v1@beta") == (
        "github.com/o/r",
        "refs/tags/v1@beta",  # a ref may hold `@`; a repository path does not
    )
    assert split_source("github.com") == (None, None)


# -- conditions ---------------------------------------------------------------------------

# condition: (keyword arguments that pass, keyword arguments that fail, the failing name)
CONDITIONS: dict[str, tuple[dict[str, str], dict[str, str], str]] = {
    "builder id": ({"builder_id": "{builder}"}, {"builder_id": "https://x.test/b"}, "builderId"),
    "builder id pattern": (
        {"builder_id_regexp": r"https://github\.com/.*"},
        {"builder_id_regexp": r"https://github\.com/evil/.*"},
        "builderIdRegExp",
    ),
    "build type": ({"build_type": "{build_type}"}, {"build_type": "https://x.test/t"}, "buildType"),
    "source uri": (
        {"source_uri": "https://github.com/acme/app.git"},
        {"source_uri": "github.com/acme/other"},
        "sourceUri",
    ),
    "source tag": ({"source_tag": "v1.2.3"}, {"source_tag": "v1.2.4"}, "sourceRef"),
    "source branch": ({"source_ref": REF}, {"source_branch": "main"}, "sourceRef"),
    "source ref pattern": (
        {"source_ref_regexp": "refs/tags/.*"},
        {"source_ref_regexp": "refs/heads/.*"},
        "sourceRefRegExp",
    ),
    "source commit": (
        {"source_commit": COMMIT.upper()},
        {"source_commit": OTHER_COMMIT},
        "sourceCommit",
    ),
    "entry point": (
        {"entry_point": f"./{WORKFLOW}"},
        {"entry_point": ".github/workflows/ci.yml"},
        "entryPoint",
    ),
}


def _filled(options: dict[str, str], builder: str, build_type: str) -> dict[str, str]:
    return {k: v.format(builder=builder, build_type=build_type) for k, v in options.items()}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("condition", CONDITIONS)
def test_each_condition_passes_on_what_the_provenance_says(version: str, condition: str) -> None:
    predicate_type, predicate, builder, build_type = VERSIONS[version]
    wanted = provenance_conditions(**_filled(CONDITIONS[condition][0], builder, build_type))
    results = evaluate(statement(predicate_type, predicate), None, wanted)
    assert len(results) == 1 and results[0].passed, results


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("condition", CONDITIONS)
def test_each_condition_fails_on_another_value_and_names_the_value_found(
    version: str, condition: str
) -> None:
    predicate_type, predicate, builder, build_type = VERSIONS[version]
    _, failing, name = CONDITIONS[condition]
    wanted = provenance_conditions(**_filled(failing, builder, build_type))
    [result] = evaluate(statement(predicate_type, predicate), None, wanted)
    assert (result.condition, result.passed) == (name, False)
    found = read_provenance(statement(predicate_type, predicate))
    assert result.found in (
        found.builder_id,
        found.build_type,
        found.source_repository,
        found.source_ref,
        found.source_commit,
        found.entry_point,
    )
    assert result.found is not None and result.found in result.describe()


def test_all_conditions_together_pass_and_are_described_by_their_policy_names() -> None:
    wanted = provenance_conditions(
        builder_id=V02_BUILDER,
        build_type=BUILD_TYPE,
        source_uri="git+https://github.com/acme/app",
        source_tag="v1.2.3",
        source_commit=COMMIT,
        entry_point=WORKFLOW,
    )
    assert wanted is not None
    assert failed(evaluate(statement(SLSA_V02, V02), None, wanted)) == []
    assert wanted.describe() == {
        "builderId": V02_BUILDER,
        "buildType": BUILD_TYPE,
        "sourceUri": "github.com/acme/app",
        "sourceRef": REF,
        "sourceCommit": COMMIT,
        "entryPoint": WORKFLOW,
    }


@pytest.mark.parametrize(
    ("wanted", "passes"),
    [
        (GENERATOR, True),  # the builder at any version, as slsa-verifier
        (f"{GENERATOR}@v2.0.0", True),  # slsa-verifier's short form of the tag
        (f"{GENERATOR}@refs/tags/v2.0.0", True),
        (f"{GENERATOR}@refs/tags/v1.10.0", False),
        (f"{GENERATOR}x", False),
        ("https://github.com/slsa-framework/slsa-github-generator", False),
    ],
)
def test_a_builder_id_without_a_version_names_the_builder_at_any_version(
    wanted: str, passes: bool
) -> None:
    [result] = evaluate(statement(SLSA_V02, V02), None, provenance_conditions(builder_id=wanted))
    assert result.passed is passes


def test_patterns_match_the_whole_value() -> None:
    wanted = provenance_conditions(source_ref_regexp="refs/tags/")
    assert failed(evaluate(statement(SLSA_V02, V02), None, wanted)) == ["sourceRefRegExp"]


def test_a_value_the_provenance_does_not_state_fails_its_condition() -> None:
    predicate = copy.deepcopy(V02)
    del predicate["invocation"]["configSource"]["entryPoint"]
    [result] = evaluate(
        statement(SLSA_V02, predicate), None, provenance_conditions(entry_point=WORKFLOW)
    )
    assert (result.passed, result.found) == (False, None)
    assert result.describe() == f"entryPoint is nothing, wanted {WORKFLOW}"


def test_conditions_on_a_statement_that_is_not_provenance_fail() -> None:
    results = evaluate(
        statement("https://cyclonedx.org/bom", {}), None, provenance_conditions(source_tag="v1")
    )
    assert failed(results) == ["predicateType"]
    assert evaluate(statement("https://cyclonedx.org/bom", {}), None, None) == ()


def test_no_conditions_and_no_certificate_judge_nothing() -> None:
    assert evaluate(statement(SLSA_V02, "not even an object"), None, None) == ()
    assert provenance_conditions() is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"builder_id": "a", "builder_id_regexp": "a"}, "exactly or as a pattern"),
        ({"source_tag": "v1", "source_branch": "main"}, "not source tag and source branch"),
        ({"source_ref": "refs/tags/v1", "source_ref_regexp": "refs/.*"}, "give one of"),
        ({"source_ref_regexp": "refs/("}, "invalid regular expression"),
        ({"builder_id_regexp": "*"}, "invalid regular expression"),
        ({"source_uri": "git+https://github.com/o/r@refs/tags/v1"}, "names a ref"),
        ({"source_uri": "github.com"}, "names no repository"),
        ({"source_commit": "c27d339"}, "not a full commit id"),
        ({"entry_point": "  "}, "non-empty"),
    ],
)
def test_conditions_that_cannot_be_applied_are_bad_input(
    options: dict[str, str], message: str
) -> None:
    with pytest.raises(PolicyArgumentError, match=message):
        provenance_conditions(**options)


# -- malformed and hostile predicates ------------------------------------------------------


def _set(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    *parents, last = path.split(".")
    node: Any = out
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return out


MALFORMED = [
    (SLSA_V02, None, "the predicate is null"),
    (SLSA_V02, ["a", "list"], "the predicate is a list"),
    (SLSA_V02, _set(V02, "builder", "a string"), "builder is a string"),
    (SLSA_V02, _set(V02, "builder.id", 5), "builder.id is a number"),
    (SLSA_V02, _set(V02, "builder.id", {"id": "x"}), "builder.id is an object"),
    (SLSA_V02, _set(V02, "buildType", True), "buildType is a boolean"),
    (SLSA_V02, _set(V02, "invocation.configSource", []), "configSource is a list"),
    (SLSA_V02, _set(V02, "invocation.configSource.uri", {}), "configSource.uri is an object"),
    (SLSA_V02, _set(V02, "invocation.configSource.digest", "abc"), "digest is a string"),
    (SLSA_V02, _set(V02, "invocation.configSource.digest.sha1", 7), "not a hex digest"),
    (SLSA_V02, _set(V02, "invocation.configSource.digest.sha1", "zz"), "not a hex digest"),
    (SLSA_V02, _set(V02, "invocation.configSource.entryPoint", 1.5), "entryPoint is a number"),
    (SLSA_V02, _set(_set(V02, "invocation", {}), "materials", {}), "materials is an object"),
    (SLSA_V02, _set(_set(V02, "invocation", {}), "materials.0", "x"), "materials[0] is a string"),
    (SLSA_V1, _set(V1, "buildDefinition", None), "no buildDefinition"),
    (SLSA_V1, _set(V1, "runDetails", 3), "runDetails is a number"),
    (SLSA_V1, _set(V1, "buildDefinition.resolvedDependencies", "x"), "is a string, not a list"),
    (SLSA_V1, _set(V1, "buildDefinition.resolvedDependencies.0", []), "[0] is a list"),
    (SLSA_V1, _set(V1, "buildDefinition.externalParameters.workflow", 3), "workflow is a number"),
    (
        SLSA_V1,
        _set(V1, "buildDefinition.externalParameters.workflow.repository", "acme/app"),
        "not a repository URI",
    ),
    (SLSA_V1, _set(V1, "buildDefinition.externalParameters.workflow.ref", []), "ref is a list"),
]


@pytest.mark.parametrize(("predicate_type", "predicate", "message"), MALFORMED)
def test_a_malformed_predicate_fails_as_one_condition(
    predicate_type: str, predicate: Any, message: str
) -> None:
    results = evaluate(
        statement(predicate_type, predicate), None, provenance_conditions(source_tag="v1.2.3")
    )
    [result] = results
    assert (result.condition, result.passed) == ("predicate", False)
    assert message in (result.found or "")
    assert result.describe().startswith("malformed provenance: ")


@pytest.mark.parametrize(
    ("predicate_type", "predicate", "message"),
    [
        (SLSA_V02, _set(V02, "builder.id", "x" * (1 << 20)), "1,048,576 characters"),
        (
            SLSA_V1,
            _set(V1, "buildDefinition.resolvedDependencies", [{}] * (MAX_ENTRIES + 1)),
            "10,001 entries",
        ),
        (
            SLSA_V02,
            _set(V02, "invocation.configSource.digest", {f"a{i}": "ab" for i in range(100)}),
            "100 algorithms",
        ),
    ],
    ids=["a megabyte builder id", "too many dependencies", "too many digests"],
)
def test_hostile_sizes_are_malformed_not_slow_or_fatal(
    predicate_type: str, predicate: Any, message: str
) -> None:
    [result] = evaluate(
        statement(predicate_type, predicate), None, provenance_conditions(source_tag="v1")
    )
    assert result.condition == "predicate" and message in (result.found or "")


def test_a_deeply_nested_value_is_only_the_wrong_type() -> None:
    nested: Any = "bottom"
    for _ in range(200_000):  # never walked recursively
        nested = {"id": nested}
    [result] = evaluate(
        statement(SLSA_V02, {"builder": nested}), None, provenance_conditions(builder_id="b")
    )
    assert result.found == "builder.id is an object, not a string"


KEYS = (
    "builder", "id", "buildType", "invocation", "configSource", "uri", "digest", "sha1",
    "entryPoint", "materials", "buildDefinition", "externalParameters", "workflow",
    "repository", "ref", "path", "resolvedDependencies", "gitCommit", "runDetails", "x",
)  # fmt: skip
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS), children, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(predicate=JSON, v1=st.booleans())
def test_any_json_predicate_is_judged_without_an_exception(predicate: Any, v1: bool) -> None:
    wanted = provenance_conditions(source_uri="github.com/acme/app", entry_point=WORKFLOW)
    results = evaluate(statement(SLSA_V1 if v1 else SLSA_V02, predicate), None, wanted)
    assert results and all(isinstance(r, ConditionResult) for r in results)


# -- the certificate -------------------------------------------------------------------------

FULCIO = "1.3.6.1.4.1.57264.1."


def der_utf8(text: str) -> bytes:
    raw = text.encode()
    if len(raw) < 0x80:
        return bytes([0x0C, len(raw)]) + raw
    size = len(raw).to_bytes((len(raw).bit_length() + 7) // 8, "big")
    return bytes([0x0C, 0x80 | len(size)]) + size + raw


def fulcio_certificate(
    issuer: str = "https://token.actions.githubusercontent.com", **claims: str
) -> x509.Certificate:
    """A certificate with Fulcio's v2 extensions (OID suffix -> value), signed by itself:
    only its claims are read here (chains are the verifier's)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sigstore.dev")])
    now = datetime.datetime(2024, 4, 22, tzinfo=datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(minutes=10))
        .add_extension(
            x509.UnrecognizedExtension(ObjectIdentifier(FULCIO + "8"), der_utf8(issuer)), False
        )
    )
    for suffix, value in claims.items():
        oid = ObjectIdentifier(FULCIO + suffix.removeprefix("oid"))
        builder = builder.add_extension(x509.UnrecognizedExtension(oid, der_utf8(value)), False)
    return builder.sign(key, hashes.SHA256())


AGREEING = {
    "oid9": V02_BUILDER,  # the signer (SAN) is the generator, not the source
    "oid12": REPO,
    "oid13": COMMIT,
    "oid14": REF,
    "oid18": f"{REPO}/{WORKFLOW}@{REF}",
}


@pytest.mark.parametrize("version", VERSIONS)
def test_a_github_certificate_whose_claims_the_provenance_names_passes(version: str) -> None:
    predicate_type, predicate, _, _ = VERSIONS[version]
    results = evaluate(statement(predicate_type, predicate), fulcio_certificate(**AGREEING), None)
    assert [r.condition for r in results] == [
        "certificateSourceRepositoryUri",
        "certificateSourceRepositoryRef",
        "certificateSourceRepositoryDigest",
        "certificateBuildConfigUri",
    ]
    assert failed(results) == []


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    ("claim", "value", "condition"),
    [
        ("oid12", "https://github.com/acme/other", "certificateSourceRepositoryUri"),
        ("oid14", "refs/heads/main", "certificateSourceRepositoryRef"),
        ("oid13", OTHER_COMMIT, "certificateSourceRepositoryDigest"),
        ("oid18", f"{REPO}/.github/workflows/ci.yml@{REF}", "certificateBuildConfigUri"),
        ("oid18", f"https://github.com/evil/x/{WORKFLOW}@{REF}", "certificateBuildConfigUri"),
    ],
)
def test_a_provenance_contradicting_its_github_certificate_fails_closed(
    version: str, claim: str, value: str, condition: str
) -> None:
    predicate_type, predicate, _, _ = VERSIONS[version]
    certificate = fulcio_certificate(**{**AGREEING, claim: value})
    assert failed(evaluate(statement(predicate_type, predicate), certificate, None)) == [condition]


def test_a_claim_the_provenance_leaves_out_fails_closed() -> None:
    predicate = copy.deepcopy(V02)
    del predicate["invocation"]["configSource"]["entryPoint"]
    results = evaluate(statement(SLSA_V02, predicate), fulcio_certificate(**AGREEING), None)
    assert failed(results) == ["certificateBuildConfigUri"]


def test_only_the_claims_a_certificate_carries_are_compared() -> None:
    certificate = fulcio_certificate(oid12=REPO)
    results = evaluate(statement(SLSA_V02, V02), certificate, None)
    assert [(r.condition, r.passed) for r in results] == [("certificateSourceRepositoryUri", True)]


def test_v1_extensions_of_an_older_certificate_are_claims_too() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sigstore.dev")])
    now = datetime.datetime(2022, 4, 22, tzinfo=datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(minutes=10))
    )
    for suffix, value in {
        "1": "https://token.actions.githubusercontent.com",
        "3": OTHER_COMMIT,
        "5": "acme/app",
        "6": REF,
    }.items():
        oid = ObjectIdentifier(FULCIO + suffix)
        builder = builder.add_extension(x509.UnrecognizedExtension(oid, value.encode()), False)
    certificate = builder.sign(key, hashes.SHA256())
    results = evaluate(statement(SLSA_V02, V02), certificate, None)
    assert [(r.condition, r.passed) for r in results] == [
        ("certificateSourceRepositoryUri", True),
        ("certificateSourceRepositoryRef", True),
        ("certificateSourceRepositoryDigest", False),
    ]


def test_claims_of_another_issuer_are_not_github_claims() -> None:
    certificate = fulcio_certificate(
        issuer="https://gitlab.com", oid12="https://gitlab.com/x/y", oid14="refs/heads/z"
    )
    assert evaluate(statement(SLSA_V02, V02), certificate, None) == ()


def test_a_github_certificate_makes_an_unreadable_provenance_fail_without_conditions() -> None:
    results = evaluate(statement(SLSA_V02, []), fulcio_certificate(**AGREEING), None)
    assert failed(results) == ["predicate"]


# -- judging checks -----------------------------------------------------------------------


def test_judging_fails_a_verified_check_and_keeps_every_result() -> None:
    check = Check(
        "tag sha256-ab.att",
        "cosign-attestation",
        predicate_type=SLSA_V02,
        statement=statement(SLSA_V02, V02),
        certificate=fulcio_certificate(**AGREEING),
    )
    judged = judge(check, provenance_conditions(source_branch="main"))
    assert not judged.ok
    assert judged.error == f"sourceRef is {REF}, wanted refs/heads/main"
    assert len(judged.conditions) == 5
    assert judged.to_json()["conditions"][0] == {
        "condition": "sourceRef",
        "wanted": "refs/heads/main",
        "found": REF,
        "passed": False,
    }
    assert judge(check, provenance_conditions(source_tag="v1.2.3")).ok


def test_a_check_that_did_not_verify_is_not_judged() -> None:
    check = Check("x", "sigstore-bundle", error="the signature does not verify")
    assert judge(check, provenance_conditions(source_tag="v1")) is check


# -- the real generator output ------------------------------------------------------------


@pytest.mark.parametrize("image", IMAGES, ids=lambda i: i.version)
def test_the_generators_provenance_reads_into_its_facts(image: ProvenanceImage) -> None:
    found = image.statement()
    assert (found.predicate_type, found.digests()) == (SLSA_V02, [image.digest])
    facts = read_provenance(found)
    assert facts.builder_id == f"{GENERATOR}@refs/tags/{image.version}"
    assert facts.build_type == BUILD_TYPE
    assert facts.source_uri == f"git+https://{SOURCE}@{SOURCE_REF}"
    assert (facts.source_repository, facts.source_ref) == (SOURCE, SOURCE_REF)
    assert (facts.source_commit, facts.entry_point) == (image.commit, ENTRY_POINT)


@pytest.mark.parametrize("image", IMAGES, ids=lambda i: i.version)
def test_the_generators_provenance_agrees_with_its_certificate(image: ProvenanceImage) -> None:
    wanted = provenance_conditions(
        builder_id_regexp=GENERATOR_PATTERN,
        build_type=BUILD_TYPE,
        source_uri=f"https://{SOURCE}",
        source_tag="v13.0.30",
        source_commit=image.commit,
        entry_point=ENTRY_POINT,
    )
    results = evaluate(image.statement(), image.certificate(), wanted)
    assert len(results) == 10 and failed(results) == []


def test_one_builds_provenance_with_the_others_certificate_disagrees_on_the_commit() -> None:
    old, new = IMAGES
    results = evaluate(old.statement(), new.certificate(), None)
    assert failed(results) == ["certificateSourceRepositoryDigest"]


def test_conditions_describe_only_what_is_asked() -> None:
    assert ProvenanceConditions(source_ref=REF).describe() == {"sourceRef": REF}

"""The verify report and the policy the verify options build, as library calls (issue 12):
`wasmctl.sign.report` renders a `Verification`, `policy_from_options` makes the policy."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from tests.schemas import doc_schema
from wasmctl.errors import InputError
from wasmctl.sign.keys import generate_key_pair, load_public_key_file, write_key_pair
from wasmctl.sign.policy import IdentityPolicy, KeyPolicy, Signer, policy_from_options
from wasmctl.sign.report import VerifyFormat, render, verdict
from wasmctl.sign.targets import Verification
from wasmctl.sign.verifier import Check

DIGEST = "sha256:" + "ab" * 32
ALICE = Signer(("alice@example.com",), "https://issuer.example")


def verification(*checks: Check, required: int = 1) -> Verification:
    policy = {"identity": "alice@example.com", "issuer": "https://issuer.example"}
    return Verification("oci:out:v1", DIGEST, policy, required, checks)


def test_every_format_renders() -> None:
    result = verification(Check("referrer sha256:1", "sigstore-bundle", ALICE, (DIGEST,)))
    for fmt in VerifyFormat:
        assert render(result, fmt).endswith("\n")


def test_the_text_report_gives_the_verdict_signers_and_reasons() -> None:
    result = verification(
        Check("referrer sha256:1", "sigstore-bundle", ALICE, (DIGEST,), logged=True),
        Check("tag sha256-ab.sig", "cosign-legacy", None, error="does not verify"),
        required=2,
    )
    lines = render(result, VerifyFormat.TABLE).splitlines()
    assert lines[0] == (
        "oci:out:v1: NOT verified (1 of 2 signatures verify, by 1 distinct signer; 2 required)"
    )
    assert "  policy: identity alice@example.com, issuer https://issuer.example" in lines
    assert "  ok   referrer sha256:1 [sigstore-bundle, logged]" in lines
    assert "  FAIL tag sha256-ab.sig [cosign-legacy]" in lines
    assert "       signer: unknown signer" in lines
    assert "       reason: does not verify" in lines


def test_attestations_are_named_by_their_predicate_type() -> None:
    check = Check("referrer sha256:1", "sigstore-bundle", ALICE, (DIGEST,), "https://x.test/p")
    result = Verification("f", DIGEST, {}, 1, (check,), predicate_type="https://x.test/p")
    assert "1 of 1 attestations (https://x.test/p) verify" in render(result, VerifyFormat.TABLE)


def test_the_json_report_is_the_documented_document() -> None:
    result = verification(Check("referrer sha256:1", "sigstore-bundle", ALICE, (DIGEST,)))
    document = json.loads(render(result, VerifyFormat.JSON))
    jsonschema.validate(document, doc_schema("verify.schema.json"))
    assert (document["schema"], document["passed"]) == ("wasmctl.verify/v1", True)


def test_the_verdict_is_pass_with_enough_signers_and_deny_without() -> None:
    assert verdict(verification(Check("a", "sigstore-bundle", ALICE))) == "pass"
    assert verdict(verification(Check("a", "sigstore-bundle", ALICE, error="bad"))) == "deny"
    assert verdict(verification()) == "deny"


def test_keys_make_a_key_policy(tmp_path: Path) -> None:
    _, pub = write_key_pair(generate_key_pair(b""), tmp_path / "cosign")
    policy = policy_from_options([pub], claims={"github-ref": None})
    assert policy == KeyPolicy((load_public_key_file(pub),), str(pub))


def test_an_identity_and_an_issuer_make_an_identity_policy_with_the_given_claims() -> None:
    policy = policy_from_options(
        identity_regexp="https://github.com/acme/.*",
        issuer="https://token.actions.githubusercontent.com",
        claims={"github-repository": "acme/app", "github-ref": None},
    )
    assert policy == IdentityPolicy(
        identity_regexp="https://github.com/acme/.*",
        issuer="https://token.actions.githubusercontent.com",
        claims={"github-repository": "acme/app"},
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"identity": "a@example.com", "issuer": "https://i"}, "not both"),
        ({"claims": {"github-ref": "refs/tags/v1"}}, "not both"),
    ],
)
def test_keys_and_a_keyless_policy_together_are_refused(
    tmp_path: Path, options: dict[str, object], message: str
) -> None:
    _, pub = write_key_pair(generate_key_pair(b""), tmp_path / "cosign")
    with pytest.raises(InputError, match=message):
        policy_from_options([pub], **options)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "nothing to trust"),
        ({"identity": "a@example.com"}, "nothing to trust"),
        ({"issuer": "https://i"}, "nothing to trust"),
        ({"identity": "a", "identity_regexp": "a", "issuer": "i"}, "exact value or a regexp"),
        ({"identity": "a", "issuer": "i", "issuer_regexp": "i"}, "exact value or a regexp"),
    ],
)
def test_a_keyless_policy_needs_one_identity_and_one_issuer(
    options: dict[str, str], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        policy_from_options(**options)

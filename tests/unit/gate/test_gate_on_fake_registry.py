"""The gate on the in-process registry: every check passing and failing, one artifact named
many ways checked once, an outage mid-run, and the same report however many jobs run.

Artifacts are built, signed and attested by the CLI into OCI layouts, once, and copied with
their referrers into a fresh `FakeRegistry` for each test; the gate reaches it through
`RegistryOptions(transport=fake)`, with no process and no socket.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fake_registry import FakeRegistry
from wasmctl.cli import run
from wasmctl.errors import InputError
from wasmctl.gate.engine import GateOptions, GateReport, Verdict, run_gate
from wasmctl.gate.policy import parse_gate_policy
from wasmctl.oci.reference import parse_reference
from wasmctl.oci.source import RegistryOptions
from wasmctl.oci.transfer import copy, tag
from wasmctl.sign.keys import generate_key_pair, write_key_pair

EXAMPLES = Path(__file__).parents[3] / "examples" / "modules"
HOST = "fake.test"


@dataclass(frozen=True)
class Built:
    """Layouts built once for the module: `hello` (clean) and `server` (opens sockets), both
    signed with `cosign.key` and attested (a CycloneDX SBOM); `other.pub` signed nothing."""

    root: Path
    hello: Path
    server: Path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    root = tmp_path_factory.mktemp("gate-fake")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("COSIGN_PASSWORD", "")
        env.setenv("REGISTRY_AUTH_FILE", str(root / "auth.json"))
        key, _ = write_key_pair(generate_key_pair(b""), root / "cosign")
        write_key_pair(generate_key_pair(b""), root / "other")
        for name, module in (("hello", "hello.wasm"), ("server", "echo_server.wasm")):
            ref = f"oci:{root / name}:v1"
            assert run(["build", str(EXAMPLES / module), "-t", ref]) == 0
            assert run(["sign", "--key", str(key), ref]) == 0
            sbom = ["sbom", ref, "--attest", ref, "--key", str(key), "-o", "/dev/null"]
            assert run(sbom) == 0
        yield Built(root, root / "hello", root / "server")


def push(layout: Path, fake: FakeRegistry, repository: str) -> str:
    """Copy the layout's `v1`, with its signature and attestation, to `repository:v1`;
    the digest."""
    root, _ = copy(
        parse_reference(f"oci:{layout}:v1"),
        parse_reference(f"{HOST}/{repository}:v1"),
        RegistryOptions(transport=fake),
        recursive=True,
    )
    return root.digest


def policy_doc(**changes: Any) -> dict[str, Any]:
    """Every check, passing for `hello`; sections replaced (or removed, with None)."""
    doc: dict[str, Any] = {
        "version": 1,
        "runtimeClasses": ["crun-wasm"],
        "registries": [f"{HOST}/"],
        "pin": "record",
        "formats": ["wasm"],
        "limits": {"maxModuleBytes": 100_000},
        "signatures": {"keys": ["cosign.pub"]},
        "attestations": [{"predicateType": "cyclonedx"}],
        "scan": {"presets": ["no-network"]},
    }
    for key, value in changes.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


def gate(
    fake: FakeRegistry, built: Built, targets: list[str], *, jobs: int = 8, **changes: Any
) -> GateReport:
    policy = parse_gate_policy(policy_doc(**changes), "gate.yaml", built.root)
    options = GateOptions(registry=RegistryOptions(transport=fake), jobs=jobs)
    return run_gate(targets, policy, options)


def statuses(report: GateReport) -> dict[str, str]:
    [target] = report.targets
    return {c.check: c.status.value for c in target.checks}


EVERY_CHECK = ["registry", "pin", "resolve", "format", "size", "scan", "signature", "attestation"]


def test_a_signed_attested_clean_artifact_passes_every_check(built: Built) -> None:
    fake = FakeRegistry()
    push(built.hello, fake, "app")
    report = gate(fake, built, [f"{HOST}/app:v1"])
    assert statuses(report) == dict.fromkeys(EVERY_CHECK, "pass")
    assert (report.verdict, report.exit_code) == (Verdict.PASS, 0)


@pytest.mark.parametrize(
    ("changes", "failing"),
    [
        ({"registries": ["ghcr.io/acme/"]}, "registry"),
        ({"pin": "digest"}, "pin"),
        ({"formats": ["compat"]}, "format"),
        ({"limits": {"maxModuleBytes": 100}}, "size"),
        ({"scan": {"presets": ["opa"]}}, "scan"),
        ({"attestations": [{"predicateType": "spdx"}]}, "attestation"),
        ({"signatures": {"keys": ["other.pub"]}}, "signature attestation"),
        ({"signatures": {"keys": ["cosign.pub"], "required": 2}}, "signature"),
    ],
    ids=[
        "registry",
        "pin",
        "format",
        "size",
        "scan",
        "attestation",
        "signature-other-key",
        "signature-required",
    ],
)
def test_each_check_fails_on_its_own(changes: dict[str, Any], failing: str, built: Built) -> None:
    fake = FakeRegistry()
    push(built.hello, fake, "app")
    report = gate(fake, built, [f"{HOST}/app:v1"], **changes)
    failed = {check for check, status in statuses(report).items() if status == "fail"}
    assert failed == set(failing.split())
    assert (report.verdict, report.exit_code) == (Verdict.DENY, 1)


def test_a_module_that_opens_sockets_fails_the_scan(built: Built) -> None:
    fake = FakeRegistry()
    push(built.server, fake, "server")
    report = gate(fake, built, [f"{HOST}/server:v1"])
    assert statuses(report)["scan"] == "fail"
    assert report.exit_code == 1


def test_an_unsigned_artifact_fails_signature_and_attestation(built: Built) -> None:
    fake = FakeRegistry()
    copy(
        parse_reference(f"oci:{built.hello}:v1"),
        parse_reference(f"{HOST}/bare:v1"),
        RegistryOptions(transport=fake),
    )
    report = gate(fake, built, [f"{HOST}/bare:v1"])
    failed = {check for check, status in statuses(report).items() if status == "fail"}
    assert failed == {"signature", "attestation"}


def five_names_of_one_digest(fake: FakeRegistry, built: Built, tmp_path: Path) -> list[str]:
    """`app:v1`, `app:stable`, `app@D`, `app:v1@D`, and a pod (on the default runtime) whose
    container names `app@D`: five targets, one artifact."""
    digest = push(built.hello, fake, "app")
    tag(parse_reference(f"{HOST}/app:v1"), "stable", RegistryOptions(transport=fake))
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "app"},
        "spec": {"containers": [{"name": "app", "image": f"{HOST}/app@{digest}"}]},
    }
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(yaml.safe_dump(pod))
    return [
        f"{HOST}/app:v1",
        f"{HOST}/app:stable",
        f"{HOST}/app@{digest}",
        f"{HOST}/app:v1@{digest}",
        str(manifest),
    ]


@pytest.mark.parametrize("referrers_api", [False, True], ids=["fallback-tag", "referrers-api"])
def test_one_digest_named_five_ways_is_fetched_and_verified_once(
    referrers_api: bool, built: Built, tmp_path: Path
) -> None:
    fake = FakeRegistry(referrers_api=referrers_api)
    targets = five_names_of_one_digest(fake, built, tmp_path)
    fake.clear_log()
    report = gate(fake, built, targets)
    assert [t.verdict for t in report.targets] == [Verdict.PASS] * 5
    assert len({t.digest for t in report.targets}) == 1
    fetched = Counter(r.target for r in fake.requests if r.method == "GET")
    assert [t for t, n in fetched.items() if n > 1] == []
    # the referrers are listed once: the API, and without it the fallback tag `sha256-<hex>`
    assert fake.count("GET", r"/referrers/") == 1
    assert fake.count("GET", r"/manifests/sha256-[0-9a-f]{64}$") == (not referrers_api)


def test_several_authorities_read_the_referrers_once(built: Built) -> None:
    fake = FakeRegistry(referrers_api=True)
    push(built.hello, fake, "app")
    fake.clear_log()
    authorities = {
        "keys": ["other.pub", "cosign.pub"],
        "keyless": [
            {"identity": "a@example.com", "issuer": "https://accounts.example.com"},
            {"identity": "b@example.com", "issuer": "https://accounts.example.com"},
        ],
    }
    report = gate(fake, built, [f"{HOST}/app:v1"], signatures=authorities)
    assert statuses(report)["signature"] == "pass"
    assert statuses(report)["attestation"] == "pass"
    assert fake.count("GET", r"/referrers/") == 1


@pytest.mark.parametrize("answers", [0, 1, 4, 9, 15])
def test_an_outage_mid_run_is_exit_3_and_never_a_pass(answers: int, built: Built) -> None:
    fake = FakeRegistry()
    for repository in ("one", "two", "three"):
        push(built.hello, fake, repository)
    fake.clear_log()
    complete = gate(fake, built, [f"{HOST}/{r}:v1" for r in ("one", "two", "three")])
    assert complete.exit_code == 0 and len(fake.requests) > max(answers, 15)
    fake.go_down_after(answers)
    report = gate(fake, built, [f"{HOST}/{r}:v1" for r in ("one", "two", "three")])
    assert report.verdict is Verdict.ERROR
    assert report.exit_code == 3


def test_one_job_and_eight_give_the_same_report(built: Built, tmp_path: Path) -> None:
    fake = FakeRegistry()
    targets = five_names_of_one_digest(fake, built, tmp_path)
    push(built.server, fake, "server")
    push(built.hello, fake, "mirror/app")
    targets += [f"{HOST}/server:v1", f"{HOST}/mirror/app:v1", f"{HOST}/missing:v1", "bad ref"]
    reports = [json.dumps(gate(fake, built, targets, jobs=j).to_json()) for j in (1, 8, 1, 8)]
    assert len(set(reports)) == 1
    listed = [t["target"] for t in json.loads(reports[0])["targets"]]
    assert listed[:4] == targets[:4] and listed[-4:] == targets[-4:]


@pytest.mark.parametrize("jobs", [0, -1])
def test_jobs_must_be_at_least_one(jobs: int, built: Built) -> None:
    with pytest.raises(InputError, match="at least 1"):
        gate(FakeRegistry(), built, [f"{HOST}/app:v1"], jobs=jobs)


def test_the_cli_refuses_zero_jobs(built: Built, capsys: pytest.CaptureFixture[str]) -> None:
    policy = built.root / "gate.yaml"
    policy.write_text(yaml.safe_dump(policy_doc()))
    assert run(["gate", "--policy", str(policy), "--jobs", "0", f"{HOST}/app:v1"]) == 2
    assert "--jobs" in capsys.readouterr().err


def test_the_cli_default_is_the_library_default() -> None:
    from wasmctl.cli import gate as cli_gate
    from wasmctl.gate import engine

    assert cli_gate.DEFAULT_JOBS == engine.DEFAULT_JOBS == GateOptions().jobs

"""`wasmctl gate`: a passing artifact, one failing each check, in layouts and the real
registry, and Kubernetes manifests mixing Wasm and ordinary containers."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.registry import RegistryServer
from tests.schemas import doc_schema, sarif_schema
from wasmctl.cli import run
from wasmctl.oci import media_types as mt
from wasmctl.oci.models import Descriptor, Manifest
from wasmctl.oci.registry import RegistryClient
from wasmctl.sign.keys import generate_key_pair, write_key_pair

EXAMPLES = Path(__file__).parents[2] / "examples" / "modules"
HELLO = EXAMPLES / "hello.wasm"
SERVER = EXAMPLES / "echo_server.wasm"

Policy = Callable[..., Path]


@pytest.fixture(autouse=True)
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "auth.json"))
    monkeypatch.setenv("COSIGN_PASSWORD", "")
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return write_key_pair(generate_key_pair(b""), tmp_path / "cosign")


@pytest.fixture
def policy(tmp_path: Path, keys: tuple[Path, Path]) -> Policy:
    """Write a gate policy: the full one, with sections replaced or removed by keyword."""

    def write(**changes: Any) -> Path:
        doc: dict[str, Any] = {
            "version": 1,
            "runtimeClasses": ["crun-wasm", "wasmtime"],
            "pin": "tag",
            "formats": ["wasm"],
            "limits": {"maxModuleBytes": 100_000},
            "signatures": {"keys": [keys[1].name]},
            "attestations": [{"predicateType": "cyclonedx"}],
            "scan": {"presets": ["no-network"]},
        }
        for key, value in changes.items():
            if value is None:
                doc.pop(key, None)
            else:
                doc[key] = value
        path = tmp_path / "gate.yaml"
        path.write_text(yaml.safe_dump(doc))
        jsonschema.validate(doc, doc_schema("gate.schema.json"))
        return path

    return write


def signed_and_attested(ref: str, key: Path, *extra: str) -> None:
    """Build hello into `ref`, sign it, attest its SBOM."""
    assert run(["build", str(HELLO), "-t", ref, *extra]) == 0
    assert run(["sign", "--key", str(key), ref, *extra]) == 0
    assert run(["sbom", ref, "--attest", ref, "--key", str(key), "-o", "/dev/null", *extra]) == 0


def gate(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    capsys.readouterr()
    code = run(["gate", "-f", "json", *args])
    out = capsys.readouterr().out
    report: dict[str, Any] = json.loads(out) if out else {}
    if report:
        jsonschema.validate(report, doc_schema("gate-report.schema.json"))
    return code, report


def statuses(target: dict[str, Any]) -> dict[str, str]:
    return {c["check"]: c["status"] for c in target["checks"]}


# -- layouts ----------------------------------------------------------------------------------


def test_a_signed_attested_clean_artifact_passes_every_check(
    policy: Policy, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    signed_and_attested("oci:out:v1", keys[0])
    code, report = gate(["--policy", str(policy()), "oci:out:v1"], capsys)
    assert code == 0, report
    [target] = report["targets"]
    assert statuses(target) == {
        "resolve": "pass", "format": "pass", "size": "pass", "scan": "pass",
        "signature": "pass", "attestation": "pass",
    }  # fmt: skip
    assert report["verdict"] == "pass" and target["format"] == "wasm"


@pytest.mark.parametrize(
    ("changes", "failing"),
    [
        ({"formats": ["compat"]}, "format"),
        ({"limits": {"maxModuleBytes": 100}}, "size"),
        ({"scan": {"presets": ["opa"]}}, "scan"),
        ({"attestations": [{"predicateType": "spdx"}]}, "attestation"),
        ({"signatures": {"keys": ["other.pub"]}}, "signature attestation"),
        ({"signatures": {"keys": ["cosign.pub"], "required": 2}}, "signature"),
    ],
    ids=["format", "size", "scan", "attestation", "signature-other-key", "signature-required"],
)
def test_each_check_fails_on_its_own(
    changes: dict[str, Any],
    failing: str,
    policy: Policy,
    keys: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    write_key_pair(generate_key_pair(b""), tmp_path / "other")
    signed_and_attested("oci:out:v1", keys[0])
    code, report = gate(["--policy", str(policy(**changes)), "oci:out:v1"], capsys)
    assert code == 1
    [target] = report["targets"]
    failed = {check for check, status in statuses(target).items() if status == "fail"}
    assert failed == set(failing.split()), target["checks"]


def test_an_unsigned_module_with_sockets_fails_every_check_it_breaks_at_once(
    policy: Policy, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["build", str(SERVER), "-t", "oci:out:server"]) == 0
    code, report = gate(["--policy", str(policy()), "oci:out:server"], capsys)
    assert code == 1
    failed = {c for c, s in statuses(report["targets"][0]).items() if s == "fail"}
    assert failed == {"scan", "signature", "attestation"}
    messages = " ".join(c["message"] for c in report["targets"][0]["checks"])
    assert "sock_accept" in messages and "no signatures found" in messages


def test_overrides_apply_by_reference_glob(
    policy: Policy, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    signed_and_attested("oci:out:v1", keys[0])
    path = policy(formats=["compat"], overrides=[{"match": "oci:out:*", "formats": ["wasm"]}])
    code, report = gate(["--policy", str(path), "oci:out:v1"], capsys)
    assert code == 0, report
    assert report["targets"][0]["override"] == "oci:out:*"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version: 2\n", "unsupported gate policy version"),
        ("version: 1\nsignatures: {}\n", "`signatures` has an empty mapping"),
        ("version: 1\nsignatures:\n  keyless: [{identityRegExp: '(', issuer: x}]\n",
         "not a regular expression"),
        ("version: 1\npin: sometimes\n", "`pin` must be one of"),
        ("version: 1\nscaan: {}\n", "unknown key"),
        ("- not a mapping\n", "a gate policy is a mapping"),
    ],
)  # fmt: skip
def test_a_bad_policy_is_bad_input(
    text: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert run(["gate", "--policy", str(path), "oci:out:v1"]) == 2
    assert message in capsys.readouterr().err


# -- the real registry ------------------------------------------------------------------------


def push_ordinary_image(client: RegistryClient, repo: str, tag: str) -> None:
    """An ordinary linux/amd64 container image (not Wasm)."""
    config_bytes = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {
        "type": "layers", "diff_ids": []}}).encode()  # fmt: skip
    layer_bytes = (
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    )
    config = Descriptor.of(mt.OCI_CONFIG, config_bytes)
    layer = Descriptor.of(mt.OCI_LAYER_TAR_GZIP, layer_bytes)
    with tempfile.TemporaryDirectory() as tmp:
        for descriptor, data in ((config, config_bytes), (layer, layer_bytes)):
            path = Path(tmp) / descriptor.digest.replace(":", "-")
            path.write_bytes(data)
            client.push_blob(repo, descriptor, path)
    client.put_manifest(repo, tag, mt.OCI_MANIFEST, Manifest(config, (layer,)).to_bytes())


def test_registry_prefix_and_pinning_on_the_real_registry(
    registry: RegistryServer,
    repo_name: str,
    policy: Policy,
    keys: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    host = registry.host
    ref = f"{host}/{repo_name}:v1"
    signed_and_attested(ref, keys[0], "--plain-http", host)
    allowed = f"{host}/{repo_name.split('/')[0]}/"
    ok = policy(registries=[allowed], pin="record")
    code, report = gate(["--policy", str(ok), ref, "--plain-http", host], capsys)
    assert code == 0, report
    [target] = report["targets"]
    assert statuses(target)["registry"] == "pass" and statuses(target)["pin"] == "pass"
    pinned = target["checks"][[c["check"] for c in target["checks"]].index("pin")]
    assert pinned["details"]["resolved"] == f"{host}/{repo_name}@{target['digest']}"

    strict = policy(registries=["ghcr.io/acme/"], pin="digest")
    code, report = gate(["--policy", str(strict), ref, "--plain-http", host], capsys)
    assert code == 1
    [target] = report["targets"]
    assert statuses(target)["registry"] == "fail" and statuses(target)["pin"] == "fail"
    by_digest = f"{host}/{repo_name}@{target['digest']}"
    code, report = gate(["--policy", str(policy(pin="digest")), by_digest,
                         "--plain-http", host], capsys)  # fmt: skip
    assert code == 0, report


def test_an_unreachable_registry_fails_closed_with_exit_3(
    policy: Policy, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = gate(["--policy", str(policy()), "127.0.0.1:1/acme/app:v1",
                         "--plain-http", "127.0.0.1:1"], capsys)  # fmt: skip
    assert code == 3
    assert report["verdict"] == "error"
    assert statuses(report["targets"][0])["resolve"] == "error"


def test_a_denial_outranks_an_unreachable_registry(
    policy: Policy, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["build", str(SERVER), "-t", "oci:out:server"]) == 0
    unreachable = ["127.0.0.1:1/acme/app:v1", "--plain-http", "127.0.0.1:1"]
    code, report = gate(["--policy", str(policy()), "oci:out:server", *unreachable], capsys)
    assert code == 1
    assert [t["verdict"] for t in report["targets"]] == ["deny", "error"]


# -- Kubernetes manifests -------------------------------------------------------------------


def workloads(host: str, repo: str) -> str:
    wasm = f"{host}/{repo}:v1"
    plain = f"{host}/{repo}-base:v1"
    server = f"{host}/{repo}-server:v1"
    return f"""\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: edge}}
spec:
  template:
    spec:
      runtimeClassName: crun-wasm
      containers:
        - name: app
          image: {wasm}
---
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Pod
    metadata: {{name: sidecar-mix}}
    spec:
      containers:
        - name: proxy
          image: {plain}
      initContainers:
        - name: setup
          image: {server}
  - apiVersion: batch/v1
    kind: CronJob
    metadata: {{name: nightly}}
    spec:
      jobTemplate:
        spec:
          template:
            spec:
              runtimeClassName: wasmtime
              containers:
                - name: job
                  image: {wasm}
---
apiVersion: v1
kind: Service
metadata: {{name: ignored}}
"""


def test_kubernetes_manifests_mixing_wasm_and_ordinary_containers(
    registry: RegistryServer,
    repo_name: str,
    policy: Policy,
    keys: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    host = registry.host
    signed_and_attested(f"{host}/{repo_name}:v1", keys[0], "--plain-http", host)
    assert run(["build", str(SERVER), "-t", f"{host}/{repo_name}-server:v1",
                "--plain-http", host]) == 0  # fmt: skip
    with RegistryClient(host, plain_http=True, use_config=False) as client:
        push_ordinary_image(client, f"{repo_name}-base", "v1")
    manifest = tmp_path / "deploy.yaml"
    manifest.write_text(workloads(host, repo_name))
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier steps\n")
    code, report = gate(["--policy", str(policy()), str(manifest), "--summary", str(summary),
                         "--plain-http", host], capsys)  # fmt: skip
    assert code == 1
    by_container = {t["origin"]["container"]: t for t in report["targets"]}
    assert set(by_container) == {"app", "proxy", "setup", "job"}
    assert by_container["app"]["verdict"] == "pass"
    assert by_container["job"]["verdict"] == "pass"  # a CronJob inside a List
    assert by_container["proxy"]["verdict"] == "skipped"  # ordinary image, default runtime
    assert "ordinary container image" in by_container["proxy"]["skipped"]
    # no Wasm runtime class, but the image is Wasm: gated, and its sockets are denied
    assert by_container["setup"]["verdict"] == "deny"
    assert by_container["setup"]["origin"]["field"] == "initContainers"
    assert by_container["app"]["origin"]["line"] == 10  # of `image:` in the first document
    text = summary.read_text()
    assert text.startswith("# earlier steps\n") and "## wasmctl gate: ❌ deny" in text

    capsys.readouterr()
    assert run(["gate", "-f", "sarif", "--policy", str(policy()), str(manifest),
                "--plain-http", host]) == 1  # fmt: skip
    log = json.loads(capsys.readouterr().out)
    jsonschema.validate(log, sarif_schema())
    results = log["runs"][0]["results"]
    assert results and all(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                           == "deploy.yaml" for r in results)  # fmt: skip
    setup_line = by_container["setup"]["origin"]["line"]
    assert {r["locations"][0]["physicalLocation"]["region"]["startLine"] for r in results} == {
        setup_line
    }


def test_a_wasm_runtime_class_with_an_ordinary_image_is_denied(
    registry: RegistryServer,
    repo_name: str,
    policy: Policy,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    host = registry.host
    with RegistryClient(host, plain_http=True, use_config=False) as client:
        push_ordinary_image(client, repo_name, "v1")
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"runtimeClassName": "crun-wasm",
                 "containers": [{"name": "c", "image": f"{host}/{repo_name}:v1"}]}}))  # fmt: skip
    code, report = gate(["--policy", str(policy()), str(manifest), "--plain-http", host], capsys)
    assert code == 1
    assert statuses(report["targets"][0])["resolve"] == "fail"


# -- offline ----------------------------------------------------------------------------------


def test_offline_gate_reads_only_the_local_layout(
    registry: RegistryServer,
    repo_name: str,
    policy: Policy,
    keys: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    from tests.integration.test_offline_verify import guarded

    host = registry.host
    ref = f"{host}/{repo_name}:v1"
    signed_and_attested(ref, keys[0], "--plain-http", host)
    mirror = tmp_path / "mirror"
    assert run(["copy", "-r", ref, f"oci:{mirror}:{ref}", "--plain-http", host]) == 0
    args = ["gate", "--policy", str(policy()), "--offline", "--layout", str(mirror), ref]
    result, connections = guarded(args, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert connections == []
    assert "PASS" in result.stdout
    missing = ["gate", "--policy", str(policy()), "--offline", "--layout", str(mirror),
               f"{host}/{repo_name}:v2"]  # fmt: skip
    result, connections = guarded(missing, tmp_path)
    assert result.returncode == 2 and connections == []


def test_an_image_named_by_many_containers_is_gated_once(
    policy: Policy, keys: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    import wasmctl.sign.targets as targets

    signed_and_attested("oci:out:v1", keys[0])
    ref = f"oci:{tmp_path / 'out'}:v1"
    pods = [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p{i}"},
             "spec": {"runtimeClassName": "crun-wasm",
                      "containers": [{"name": "c", "image": ref}]}} for i in range(5)]  # fmt: skip
    manifest = tmp_path / "pods.yaml"
    manifest.write_text(yaml.safe_dump_all(pods))
    calls: list[str] = []
    real = targets.find_signature_candidates

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(str(args[0]))
        return real(*args, **kwargs)

    monkeypatch.setattr(targets, "find_signature_candidates", counting)
    code, report = gate(["--policy", str(policy()), str(manifest)], capsys)
    assert code == 0, report
    assert [t["origin"]["name"] for t in report["targets"]] == [f"p{i}" for i in range(5)]
    assert len(calls) == 1  # its signatures read once, for the signature and attestation checks


# -- distinct signers (issue 11, item 2) -------------------------------------------------------


def test_one_key_signing_twice_is_one_signer_of_the_two_required(
    policy: Policy, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    signed_and_attested("oci:out:v1", keys[0])
    assert run(["sign", "--key", str(keys[0]), "oci:out:v1"]) == 0  # a second referrer
    required = policy(signatures={"keys": [keys[1].name], "required": 2})
    code, report = gate(["--policy", str(required), "oci:out:v1"], capsys)
    assert code == 1
    signature = next(c for c in report["targets"][0]["checks"] if c["check"] == "signature")
    assert signature["status"] == "fail"
    assert signature["message"].startswith("1 of 2 required signer(s) verify (2 signatures")
    assert signature["details"]["signers"] == 1 and len(signature["details"]["verified"]) == 2
    [(copy, first)] = signature["details"]["duplicates"].items()
    assert copy != first


def test_two_keys_are_two_signers_of_the_two_required(
    policy: Policy, keys: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other_key, other_pub = write_key_pair(generate_key_pair(b""), tmp_path / "other")
    signed_and_attested("oci:out:v1", keys[0])
    assert run(["sign", "--key", str(other_key), "oci:out:v1"]) == 0
    required = policy(signatures={"keys": [keys[1].name, other_pub.name], "required": 2})
    code, report = gate(["--policy", str(required), "oci:out:v1"], capsys)
    assert code == 0, report
    signature = next(c for c in report["targets"][0]["checks"] if c["check"] == "signature")
    assert signature["details"]["signers"] == 2 and "duplicates" not in signature["details"]


def test_one_keyless_identity_signing_twice_is_one_signer_for_the_gate(
    sigstore_standin: Any, policy: Policy, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.sigstore_standin import DEFAULT_IDENTITY, GITHUB_ISSUER

    config = sigstore_standin.write_trust_config(tmp_path / "trust-config.json")
    root = sigstore_standin.write_trusted_root(tmp_path / "trusted-root.json")
    assert run(["build", str(HELLO), "-t", "oci:out:v1"]) == 0
    for _ in range(2):
        token = sigstore_standin.identity_token()
        assert run(["sign", "oci:out:v1", "--identity-token", token,
                    "--trust-config", str(config)]) == 0  # fmt: skip
    authority = {"identity": DEFAULT_IDENTITY, "issuer": GITHUB_ISSUER}
    # the same identity listed twice as authorities is still one signer
    keyless = policy(signatures={"keyless": [authority, authority], "required": 2},
                     attestations=None)  # fmt: skip
    code, report = gate(["--policy", str(keyless), "--trusted-root", str(root), "oci:out:v1"],
                        capsys)  # fmt: skip
    assert code == 1
    signature = next(c for c in report["targets"][0]["checks"] if c["check"] == "signature")
    assert signature["details"]["signers"] == 1 and len(signature["details"]["verified"]) == 2
    one = policy(signatures={"keyless": [authority]}, attestations=None)
    code, report = gate(["--policy", str(one), "--trusted-root", str(root), "oci:out:v1"], capsys)
    assert code == 0, report

"""The gate on the real SLSA provenance images, named directly (issue 16's Done means).

They are linux/amd64 container images, not Wasm: named directly (not through a pod), the
gate judges what applies to any image (signatures, attestations and their provenance
conditions) and fails what it cannot check (a module's format, size, scan, vulnerabilities).
Through a pod on the default runtime they stay ordinary containers, skipped. Offline: the
legacy attestations verify against the public-good trusted root in ../shared/testdata.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.provenance_layouts import (
    GENERATOR,
    GENERATOR_PATTERN,
    GITHUB_ISSUER,
    IMAGES,
    SOURCE,
    TRUSTED_ROOT,
    ProvenanceImage,
)
from wasmctl.cli import run


def policy(tmp_path: Path, **provenance: str) -> Path:
    conditions = {"builderId": GENERATOR, "sourceUri": SOURCE, "sourceRefRegExp": "refs/tags/.*"}
    document: dict[str, Any] = {
        "version": 1,
        "trust": {"trustedRoot": str(TRUSTED_ROOT)},
        "attestations": [
            {
                "predicateType": "slsaprovenance",
                "signers": {
                    "keyless": [{"identityRegExp": GENERATOR_PATTERN, "issuer": GITHUB_ISSUER}]
                },
                "provenance": {**conditions, **provenance},
            }
        ],
    }
    path = tmp_path / "gate.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def gate(
    capsys: pytest.CaptureFixture[str], policy_file: Path, *targets: str
) -> tuple[int, dict[str, Any]]:
    capsys.readouterr()
    code = run(["gate", "--policy", str(policy_file), "--format", "json", *targets])
    return code, json.loads(capsys.readouterr().out)


def target(image: ProvenanceImage) -> str:
    return f"oci:{image.layout}@{image.digest}"


def checks(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    [result] = report["targets"]
    return {c["check"]: c for c in result["checks"]}


@pytest.mark.parametrize("image", IMAGES, ids=lambda i: i.version)
def test_both_images_pass_builder_source_and_tag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], image: ProvenanceImage
) -> None:
    code, report = gate(capsys, policy(tmp_path), target(image))
    assert code == 0, report
    found = checks(report)
    assert found["attestation"]["status"] == "pass"
    assert "not a Wasm artifact" in found["resolve"]["message"]
    assert report["targets"][0]["digest"] == image.digest


@pytest.mark.parametrize(
    ("condition", "value", "found"),
    [
        ("builderId", "https://github.com/acme/builder/.github/workflows/b.yml", GENERATOR),
        ("sourceUri", "github.com/acme/other", SOURCE),
        ("sourceRefRegExp", "refs/heads/.*", "refs/tags/"),
    ],
    ids=["wrong-builder", "wrong-repository", "branch-wanted"],
)
def test_a_condition_the_provenance_does_not_meet_denies_with_the_value_found(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    condition: str,
    value: str,
    found: str,
) -> None:
    image = IMAGES[1]
    code, report = gate(capsys, policy(tmp_path, **{condition: value}), target(image))
    assert code == 1
    attestation = checks(report)["attestation"]
    assert attestation["status"] == "fail"
    assert found in json.dumps(attestation)


def test_what_only_a_wasm_module_can_show_fails_closed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = policy(tmp_path)
    document = yaml.safe_load(path.read_text())
    document["limits"] = {"maxModuleBytes": 1 << 20}
    document["formats"] = ["wasm"]
    path.write_text(yaml.safe_dump(document))
    code, report = gate(capsys, path, target(IMAGES[0]))
    assert code == 1
    found = checks(report)
    assert found["size"]["status"] == "fail"
    assert found["format"]["status"] == "fail"
    assert found["attestation"]["status"] == "pass"  # still judged, and still shown


def test_through_a_pod_on_the_default_runtime_it_is_an_ordinary_container(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = IMAGES[0]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "app"},
        "spec": {"containers": [{"name": "app", "image": f"example.com/app@{image.digest}"}]},
    }
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(yaml.safe_dump(pod))
    code, report = gate(capsys, policy(tmp_path), "--offline", "--layout", str(image.layout),
                        str(manifest))  # fmt: skip
    assert code == 0
    assert report["targets"][0]["verdict"] == "skipped"

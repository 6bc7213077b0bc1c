"""The bundled examples: their binaries rebuild byte for byte, and the demo runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.corpus import compile_c, compile_wat

MODULES = Path(__file__).parents[1] / "examples" / "modules"


@pytest.mark.parametrize("source", sorted(MODULES.glob("*.wat")), ids=lambda p: p.name)
def test_wat_examples_rebuild_identically(source: Path, tmp_path: Path) -> None:
    built = compile_wat(source, tmp_path / "out.wasm")
    assert built.read_bytes() == source.with_suffix(".wasm").read_bytes()


@pytest.mark.parametrize("source", sorted(MODULES.glob("*.c")), ids=lambda p: p.name)
def test_c_examples_rebuild_identically(source: Path, tmp_path: Path) -> None:
    built = compile_c(source, tmp_path / "out.wasm")
    assert built.read_bytes() == source.with_suffix(".wasm").read_bytes()


def test_the_demo_runs_and_gets_every_expected_answer(tmp_path: Path) -> None:
    root = MODULES.parents[1]
    env = {
        **os.environ,
        "WASMCTL_SKIP_SETUP": "1",
        "NO_COLOR": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    proc = subprocess.run(
        ["bash", str(root / "scripts" / "demo")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "every step gave the expected answer" in proc.stdout
    assert "oci:out/layout:v1: verified (1 of 1 signatures verify" in proc.stdout
    assert "oci:out/layout:server: NOT verified" in proc.stdout
    assert "1 of 1 attestations (https://cyclonedx.org/bom) verify" in proc.stdout
    assert "gate PASS under examples/gate/local.yaml" in proc.stdout
    assert "gate DENY under examples/gate/local.yaml" in proc.stdout
    assert "## wasmctl gate: ✅ pass" in (root / "out" / "gate-summary.md").read_text()
    bom = json.loads((root / "out" / "hello.cdx.json").read_text())
    assert bom["metadata"]["component"]["purl"].startswith("pkg:oci/layout@sha256:")
    assert (root / "out" / "wasmctl.sarif").is_file()


@pytest.mark.parametrize("name", ["gate.yaml", "local.yaml"])
def test_example_gate_policies_fit_the_schema_and_load(name: str) -> None:
    import jsonschema
    import yaml

    from tests.schemas import doc_schema
    from wasmctl.gate.policy import load_gate_policy

    path = MODULES.parent / "gate" / name
    jsonschema.validate(yaml.safe_load(path.read_text()), doc_schema("gate.schema.json"))
    assert load_gate_policy(path).rules.scan is not None


def test_the_example_kubernetes_manifests_give_one_wasm_and_one_ordinary_container() -> None:
    from wasmctl.gate.policy import load_gate_policy
    from wasmctl.gate.targets import collect

    policy = load_gate_policy(MODULES.parent / "gate" / "gate.yaml")
    targets = collect([str(MODULES.parent / "kubernetes")], policy.runtime_classes)
    assert [(t.origin.kind if t.origin else "", t.wasm_runtime) for t in targets] == [
        ("Deployment", True),
        ("Pod", False),
    ]

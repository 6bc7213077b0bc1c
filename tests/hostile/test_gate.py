"""Hostile images and signatures at the gate, on the real command line (issue 11, items 2
and 3): a compat image relabelled `linux/amd64` that crun still runs as Wasm, and one key's
signature stored twice to pass for two signers. Each run is bounded and must end with a
verdict (exit 1) that names what failed, having written nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.hostile.harness import expect, run_bounded
from tests.unit.gate.images import Image
from wasmctl.cli import run
from wasmctl.sign.keys import generate_key_pair, write_key_pair

HELLO = Path(__file__).parents[2] / "examples" / "modules" / "hello.wasm"


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    """A directory with a key pair and a gate policy trusting it (scan: no-network)."""
    box = tmp_path / "box"
    box.mkdir()
    write_key_pair(generate_key_pair(b""), box / "cosign")
    policy = {"version": 1, "signatures": {"keys": ["cosign.pub"]},
              "scan": {"presets": ["no-network"]}}  # fmt: skip
    (box / "gate.yaml").write_text(yaml.safe_dump(policy))
    return box


@pytest.mark.parametrize("via", ["reference", "pod"])
def test_a_relabelled_compat_image_is_gated_and_denied(sandbox: Path, via: str) -> None:
    Image().write(sandbox / "out")  # linux/amd64, compat-smart, /server.wasm: a socket server
    target = "oci:out:v1"
    if via == "pod":
        (sandbox / "pod.yaml").write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": target}]}}))  # fmt: skip
        target = "pod.yaml"
    outcome = run_bounded(["gate", "--policy", "gate.yaml", target], sandbox=sandbox)
    expect(outcome, 1, says="sock_accept")
    assert "no signatures found" in outcome.stdout, outcome.explain()
    assert "ordinary container image" not in outcome.stdout, outcome.explain()


def test_one_signature_stored_twice_is_not_two_signers(
    sandbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COSIGN_PASSWORD", "")
    out = f"oci:{sandbox / 'out'}:v1"
    assert run(["build", str(HELLO), "-t", out]) == 0
    for _ in range(2):  # two referrers, one key
        assert run(["sign", "--key", str(sandbox / "cosign.key"), out]) == 0
    verify = ["verify", "--key", "cosign.pub", "--require", "2", "oci:out:v1"]
    expect(run_bounded(verify, sandbox=sandbox), 1, says="by 1 distinct signer")
    (sandbox / "two.yaml").write_text(yaml.safe_dump({
        "version": 1, "signatures": {"keys": ["cosign.pub"], "required": 2}}))  # fmt: skip
    gate = ["gate", "--policy", "two.yaml", "oci:out:v1"]
    expect(run_bounded(gate, sandbox=sandbox), 1, says="1 of 2 required signer(s) verify")

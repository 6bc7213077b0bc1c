"""The gate treats as Wasm everything a Wasm runtime would run as Wasm (issue 11, item 3).

The issue's image: a compat image relabelled `linux/amd64` that keeps crun's
`module.wasm.image/variant: compat-smart` annotation and a `.wasm` entrypoint. crun runs it as
Wasm; the gate used to call it "an ordinary container image" and pass an unsigned socket
server. Each way a runtime picks Wasm is gated here, by reference and from a Kubernetes
manifest without a Wasm runtime class; an ordinary image is still skipped, and a registry
that cannot be read fails closed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.faultproxy import FaultProxy
from tests.integration.test_gate import gate
from tests.registry import RegistryServer
from tests.unit.gate.images import HANDLER, SERVER, VARIANT, Image, ordinary
from wasmctl.oci import media_types as mt
from wasmctl.oci.registry import RegistryClient
from wasmctl.sign.keys import generate_key_pair, write_key_pair

NOT_WASM_NAMED = {"app/server": SERVER}


@pytest.fixture(autouse=True)
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "auth.json"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    """Signatures by a key nobody used here, and the no-network scan."""
    write_key_pair(generate_key_pair(b""), tmp_path / "cosign")
    doc = {
        "version": 1,
        "runtimeClasses": ["crun-wasm"],
        "pin": "tag",
        "signatures": {"keys": ["cosign.pub"]},
        "scan": {"presets": ["no-network"]},
    }
    path = tmp_path / "gate.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def checks(target: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["check"]: c for c in target["checks"]}


def pod(image: str, annotations: dict[str, str] | None = None, **container: Any) -> str:
    """A Pod without a runtime class running `image`."""
    metadata: dict[str, Any] = {"name": "p"}
    if annotations:
        metadata["annotations"] = annotations
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Pod", "metadata": metadata,
        "spec": {"containers": [{"name": "c", "image": image, **container}]}})  # fmt: skip


VARIANTS = {
    # the issue's image: scanned (sockets denied), signatures checked
    "compat-smart-manifest": (Image(), None),
    "compat-manifest": (
        Image(annotations={VARIANT: "compat"}, entrypoint=["/app/server"], files=NOT_WASM_NAMED),
        None,
    ),
    "handler-manifest": (
        Image(annotations={HANDLER: "wasm"}, entrypoint=["/app/server"], files=NOT_WASM_NAMED),
        None,
    ),
    "index": (
        Image(
            annotations={},
            entrypoint=["/app/server"],
            files=NOT_WASM_NAMED,
            index_annotations={VARIANT: "compat"},
        ),
        None,
    ),
    "index-entry": (
        Image(
            annotations={},
            entrypoint=["/app/server"],
            files=NOT_WASM_NAMED,
            index_annotations={},
            entry_annotations={HANDLER: "wasm"},
        ),
        None,
    ),
    "pod": (ordinary(), {VARIANT: "compat"}),
    "pod-smart": (Image(annotations={}, entrypoint=["/bin/sh"]), {VARIANT: "compat-smart"}),
    "platform-in-index": (
        Image(
            annotations={},
            index_annotations={},
            entry_platform=("wasi", "wasm"),
            entrypoint=["/app/server"],
            files=NOT_WASM_NAMED,
            entry_annotations={mt.DOCKER_REFERENCE_TYPE: mt.DOCKER_ATTESTATION_MANIFEST},
            extra_entries=[(("linux", "amd64"), {}, mt.OCI_MANIFEST)],
        ),
        None,
    ),
    "nested-platform-in-index": (
        ordinary(index_annotations={}, extra_entries=[(("wasi", "wasm"), {}, mt.OCI_INDEX)]),
        None,
    ),
    "wasm-layer": (
        Image(annotations={}, entrypoint=["/bin/server"], layer_type=mt.WASM_LAYER),
        None,
    ),
    "wasm-entrypoint": (Image(annotations={}), None),
    "wasm-cmd": (Image(annotations={}, entrypoint=None, cmd=["/server.wasm"]), None),
}


CASES = [
    (via, variant)
    for via in ("reference", "kubernetes")
    for variant, (_, on_pod) in VARIANTS.items()
    if via == "kubernetes" or on_pod is None  # pod annotations need a pod
]


@pytest.mark.parametrize(("via", "variant"), CASES, ids=[f"{a}-{b}" for a, b in CASES])
def test_every_way_a_runtime_picks_wasm_is_gated_not_skipped(
    variant: str, via: str, policy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image, pod_annotations = VARIANTS[variant]
    image.write(tmp_path / "out")
    ref = f"oci:{tmp_path / 'out'}:v1"
    if via == "kubernetes":
        manifest = tmp_path / "pod.yaml"
        command = {"command": ["/server.wasm"]} if variant == "pod-smart" else {}
        manifest.write_text(pod(ref, pod_annotations, **command))
        target_arg = str(manifest)
    else:
        target_arg = ref
    code, report = gate(["--policy", str(policy), target_arg], capsys)
    assert code == 1, report
    [target] = report["targets"]
    assert target["verdict"] == "deny" and target["skipped"] is None
    found = checks(target)
    if variant == "nested-platform-in-index":
        assert found["resolve"]["status"] == "fail"
        assert found["resolve"]["details"]["wasmEvidence"] == ["index platform wasi/wasm"]
        return
    assert target["format"] == "compat"
    assert found["resolve"]["status"] == "pass"
    assert found["scan"]["status"] == "fail" and found["signature"]["status"] == "fail"
    if any(name.endswith(".wasm") for name in image.files):  # the server was scanned
        assert "sock_accept" in found["scan"]["message"]
    else:  # the entrypoint's module is not named *.wasm, or there is none: fail closed
        assert "would run as Wasm" in found["scan"]["message"]


def test_the_issue_image_names_why_it_is_wasm(
    policy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Image().write(tmp_path / "out")
    code, report = gate(["--policy", str(policy), f"oci:{tmp_path / 'out'}:v1"], capsys)
    assert code == 1
    resolve = checks(report["targets"][0])["resolve"]
    assert "labelled linux/amd64, run as Wasm" in resolve["message"]
    assert resolve["details"]["wasmEvidence"] == [
        "config Entrypoint /server.wasm",
        "manifest annotation module.wasm.image/variant=compat-smart with entrypoint /server.wasm",
    ]


def test_an_image_that_runs_as_wasm_without_a_module_fails_closed(
    policy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ordinary(annotations={VARIANT: "compat"}).write(tmp_path / "out")
    code, report = gate(["--policy", str(policy), f"oci:{tmp_path / 'out'}:v1"], capsys)
    assert code == 1
    scan = checks(report["targets"][0])["scan"]
    assert scan["status"] == "fail" and "no Wasm module found" in scan["message"]


@pytest.mark.parametrize(
    ("image", "annotations", "container"),
    [
        (ordinary(), None, {}),
        (ordinary(index_annotations={}, extra_entries=[(("linux", "arm64"), {}, mt.OCI_MANIFEST)]),
         None, {}),
        (ordinary(), {VARIANT: "compat-smart"}, {}),  # a sidecar in a smart pod
        (ordinary(), {HANDLER: "wasm-smart"}, {"command": ["/bin/server"], "args": ["x.wasm"]}),
    ],
    ids=["manifest", "index", "smart-pod-sidecar", "smart-handler-sidecar"],
)  # fmt: skip
def test_an_ordinary_image_is_still_skipped(
    image: Image,
    annotations: dict[str, str] | None,
    container: dict[str, Any],
    policy: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    image.write(tmp_path / "out")
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(pod(f"oci:{tmp_path / 'out'}:v1", annotations, **container))
    code, report = gate(["--policy", str(policy), str(manifest)], capsys)
    assert code == 0, report
    assert report["targets"][0]["verdict"] == "skipped"


# -- registries ---------------------------------------------------------------------------


def push(client: RegistryClient, repo: str, image: Image, tag: str = "v1") -> None:
    blobs, root = image.blobs()
    with tempfile.TemporaryDirectory() as tmp:
        for descriptor, data in blobs:
            if descriptor.media_type in (*mt.MANIFEST_TYPES, *mt.INDEX_TYPES):
                client.put_manifest(repo, descriptor.digest, descriptor.media_type, data)
            else:
                path = Path(tmp) / descriptor.digest.replace(":", "-")
                path.write_bytes(data)
                client.push_blob(repo, descriptor, path)
        client.put_manifest(repo, tag, root.media_type, blobs[-1][1])


def test_the_relabelled_image_on_a_registry_is_gated_from_a_pod(
    registry: RegistryServer,
    repo_name: str,
    policy: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    host = registry.host
    with RegistryClient(host, plain_http=True, use_config=False) as client:
        push(client, repo_name, Image(index_annotations={}))
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(pod(f"{host}/{repo_name}:v1"))
    code, report = gate(["--policy", str(policy), str(manifest), "--plain-http", host], capsys)
    assert code == 1, report
    found = checks(report["targets"][0])
    assert "sock_accept" in found["scan"]["message"]
    assert found["signature"]["status"] == "fail"


@pytest.mark.parametrize("status", [500, 503, 401])
def test_a_registry_that_cannot_be_read_fails_closed(
    status: int,
    fault_proxy: FaultProxy,
    registry: RegistryServer,
    repo_name: str,
    policy: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An ordinary-looking index whose platform manifests cannot be read is not "ordinary"."""
    host = fault_proxy.host
    image = ordinary(
        index_annotations={}, extra_entries=[(("linux", "arm64"), {}, mt.OCI_MANIFEST)]
    )
    with RegistryClient(registry.host, plain_http=True, use_config=False) as client:
        push(client, repo_name, image)
    fault_proxy.fail(status, "GET", r"/manifests/sha256:", times=None)
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(pod(f"{host}/{repo_name}:v1"))
    code, report = gate(["--policy", str(policy), str(manifest), "--plain-http", host], capsys)
    assert code == 3, report
    [target] = report["targets"]
    assert target["verdict"] == "error" and target["skipped"] is None
    assert checks(target)["resolve"]["status"] == "error"


def test_a_registry_that_is_down_fails_closed_for_a_pod_without_a_runtime_class(
    policy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(pod("127.0.0.1:1/acme/app:v1"))
    code, report = gate(["--policy", str(policy), str(manifest), "--plain-http", "127.0.0.1:1"],
                        capsys)  # fmt: skip
    assert code == 3
    assert report["targets"][0]["verdict"] == "error"

"""What makes an image Wasm: everything a Wasm runtime would run as Wasm, whatever its
platform says (crun's annotations on the image, index or pod, a `wasi/wasm` entry anywhere in
an index, a Wasm layer, a `.wasm` entrypoint), and nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.unit.gate.images import HANDLER, SERVER, VARIANT, Image, ordinary
from wasmctl.gate.targets import manifest_targets
from wasmctl.oci import media_types as mt
from wasmctl.oci.artifact import (
    ArtifactKind,
    LaunchContext,
    NoWasmManifestError,
    annotation_evidence,
    entrypoint_path,
)
from wasmctl.oci.reference import LayoutReference
from wasmctl.oci.source import open_artifact

NOT_WASM_NAMED = {"app/server": SERVER}  # a module at an entrypoint not named *.wasm


def resolve(image: Image, tmp_path: Path, launch: LaunchContext | None = None):  # type: ignore[no-untyped-def]
    image.write(tmp_path / "out")
    with open_artifact(LayoutReference(tmp_path / "out", "v1"), launch) as (_, artifact):
        return artifact


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        (Image(), "manifest annotation module.wasm.image/variant=compat-smart"),
        (Image(annotations={VARIANT: "compat"}, entrypoint=["/app/server"],
               files=NOT_WASM_NAMED), "manifest annotation module.wasm.image/variant=compat"),
        (Image(annotations={HANDLER: "wasm"}, entrypoint=["/app/server"], files=NOT_WASM_NAMED),
         "manifest annotation run.oci.handler=wasm"),
        (Image(annotations={}, entrypoint=["/app/server"], files=NOT_WASM_NAMED,
               index_annotations={VARIANT: "compat"}), "index annotation"),
        (Image(annotations={}, entrypoint=["/app/server"], files=NOT_WASM_NAMED,
               index_annotations={}, entry_annotations={HANDLER: "wasm"}),
         "index entry annotation run.oci.handler=wasm"),
        (Image(annotations={}, entrypoint=["/app/server"], files={"server.wasm": SERVER},
               layer_type=mt.WASM_LAYER), "layer media type application/wasm"),
        (Image(annotations={}), "config Entrypoint /server.wasm"),
        (Image(annotations={}, entrypoint=None, cmd=["/server.wasm"]), "config Cmd /server.wasm"),
        (Image(annotations={}, entrypoint=["/SERVER.WASM#_start"],
               files={"SERVER.WASM": SERVER}), "config Entrypoint /SERVER.WASM#_start"),
        (Image(os="wasi", architecture="amd64", annotations={}, entrypoint=["/app/server"],
               files=NOT_WASM_NAMED), "config platform wasi/amd64"),
    ],
    ids=["compat-smart", "compat", "handler", "index", "index-entry", "wasm-layer",
         "entrypoint", "cmd", "runwasi-function", "wasi-os"],
)  # fmt: skip
def test_a_relabelled_image_a_runtime_runs_as_wasm_is_a_compat_image(
    image: Image, reason: str, tmp_path: Path
) -> None:
    artifact = resolve(image, tmp_path)
    assert artifact.kind is ArtifactKind.COMPAT
    assert any(reason in e for e in artifact.wasm_evidence), artifact.wasm_evidence


def test_pod_annotations_make_an_ordinary_looking_image_wasm(tmp_path: Path) -> None:
    image = ordinary()
    assert resolve(image, tmp_path).kind is ArtifactKind.UNKNOWN
    launch = LaunchContext(((VARIANT, "compat"),))
    artifact = resolve(image, tmp_path, launch)
    assert artifact.kind is ArtifactKind.COMPAT
    assert artifact.wasm_evidence == ("pod annotation module.wasm.image/variant=compat",)


def test_smart_variants_follow_the_process_args_as_crun_does() -> None:
    assert annotation_evidence({VARIANT: "compat-smart"}, "/bin/envoy", "pod") is None
    assert annotation_evidence({HANDLER: "wasm-smart"}, "/app.WAT", "pod") is not None
    assert annotation_evidence({HANDLER: "krun"}, "/app.wasm", "pod") is None
    assert annotation_evidence({VARIANT: " Compat "}, None, "pod") is not None


def test_the_process_args_follow_kubernetes_command_and_args() -> None:
    config = {"config": {"Entrypoint": ["/a.wasm"], "Cmd": ["x"], "WorkingDir": "/srv"}}
    assert entrypoint_path(config, None) == "a.wasm"
    assert entrypoint_path(config, LaunchContext(command=("bin/b.wasm#run",))) == "srv/bin/b.wasm"
    assert entrypoint_path(config, LaunchContext(args=("y",))) == "a.wasm"
    assert entrypoint_path({"config": {"Cmd": ["../../c.wasm"]}}, None) == "c.wasm"
    assert entrypoint_path({}, None) is None


def test_a_wasi_platform_entry_marked_as_an_attestation_is_still_chosen(tmp_path: Path) -> None:
    image = Image(annotations={}, entrypoint=["/app/server"], files=NOT_WASM_NAMED,
                  index_annotations={}, entry_platform=("wasi", "wasm"),
                  entry_annotations={mt.DOCKER_REFERENCE_TYPE: mt.DOCKER_ATTESTATION_MANIFEST},
                  extra_entries=[(("linux", "amd64"), {}, mt.OCI_MANIFEST)])  # fmt: skip
    artifact = resolve(image, tmp_path)
    assert artifact.kind is ArtifactKind.COMPAT
    assert artifact.wasm_evidence[0] == "index platform wasi/wasm"


def test_a_wasi_platform_entry_that_is_no_manifest_is_wasm_that_cannot_be_checked(
    tmp_path: Path,
) -> None:
    image = ordinary(index_annotations={},
                     extra_entries=[(("wasi", "wasm"), {}, mt.OCI_INDEX)])  # fmt: skip
    with pytest.raises(NoWasmManifestError) as caught:
        resolve(image, tmp_path)
    assert caught.value.evidence == ("index platform wasi/wasm",)


def test_two_platforms_that_would_run_as_wasm_are_refused_not_guessed(tmp_path: Path) -> None:
    image = ordinary(index_annotations={VARIANT: "compat"},
                     extra_entries=[(("linux", "arm64"), {}, mt.OCI_MANIFEST)])  # fmt: skip
    with pytest.raises(NoWasmManifestError, match="2 platform manifests") as caught:
        resolve(image, tmp_path)
    assert caught.value.evidence


@pytest.mark.parametrize(
    "image",
    [
        ordinary(),
        ordinary(index_annotations={}, extra_entries=[(("linux", "arm64"), {}, mt.OCI_MANIFEST)]),
        ordinary(annotations={VARIANT: "compat-smart"}),  # smart, but args[0] is not Wasm
        ordinary(annotations={HANDLER: "runc"}),
    ],
    ids=["manifest", "index", "smart-sidecar", "other-handler"],
)
def test_an_ordinary_image_has_no_evidence(image: Image, tmp_path: Path) -> None:
    try:
        artifact = resolve(image, tmp_path)
    except NoWasmManifestError as e:
        assert e.evidence == ()
    else:
        assert artifact.kind is ArtifactKind.UNKNOWN and artifact.wasm_evidence == ()


def test_pods_give_their_template_annotations_command_and_args(tmp_path: Path) -> None:
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "d", "annotations": {VARIANT: "ignored: not the pod's"}},
        "spec": {"template": {
            "metadata": {"annotations": {VARIANT: "compat-smart", "other": "x"}},
            "spec": {"containers": [
                {"name": "c", "image": "oci:out:v1", "command": ["/app.wasm"], "args": ["-v"]},
                {"name": "s", "image": "oci:out:v2", "args": []},
            ]}}},
    }  # fmt: skip
    path = tmp_path / "d.yaml"
    path.write_text(yaml.safe_dump(deployment))
    app, sidecar = manifest_targets(path, ())
    assert app.annotations == ((VARIANT, "compat-smart"),)
    assert (app.command, app.args) == (("/app.wasm",), ("-v",))
    assert (sidecar.command, sidecar.args) == (None, None)
    assert not app.wasm_runtime


@pytest.mark.parametrize(
    ("runtime_class", "wasm"),
    [("crun-wasm", True), ("wasmtime-spin-v2", True), ("listed", True), ("runc", False)],
)
def test_a_runtime_class_named_for_wasm_counts_even_when_the_policy_omits_it(
    runtime_class: str, wasm: bool, tmp_path: Path
) -> None:
    pod = {"kind": "Pod", "metadata": "not a mapping",
           "spec": {"runtimeClassName": runtime_class,
                    "containers": [{"name": "c", "image": "oci:out:v1"}]}}  # fmt: skip
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(pod))
    [target] = manifest_targets(path, ("listed",))
    assert target.wasm_runtime is wasm


def test_a_replication_controller_is_a_workload(tmp_path: Path) -> None:
    containers = [{"name": "c", "image": "x/y:1"}]
    rc = {"kind": "ReplicationController", "metadata": {"name": "r"},
          "spec": {"template": {"spec": {"containers": containers}}}}  # fmt: skip
    path = tmp_path / "rc.yaml"
    path.write_text(yaml.safe_dump(rc))
    assert [t.reference for t in manifest_targets(path, ())] == ["x/y:1"]


def test_a_runtime_class_whose_handler_is_wasm_makes_its_pods_wasm(tmp_path: Path) -> None:
    from wasmctl.gate.targets import collect

    (tmp_path / "classes.yaml").write_text(yaml.safe_dump_all([
        {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
         "metadata": {"name": "fast"}, "handler": "spin"},
        {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
         "metadata": {"name": "gvisor"}, "handler": "runsc"}]))  # fmt: skip
    pods = [{"kind": "Pod", "metadata": {"name": name},
             "spec": {"runtimeClassName": name, "containers": [{"name": "c", "image": "x/y:1"}]}}
            for name in ("fast", "gvisor")]  # fmt: skip
    (tmp_path / "pods.yaml").write_text(yaml.safe_dump_all(pods))
    fast, gvisor = collect([str(tmp_path)], ())
    assert (fast.wasm_runtime, gvisor.wasm_runtime) == (True, False)

"""Hostile input to transfers, run as the real command line under limits (`harness`):
decompression bombs, referrer cycles, deep indexes, sizes that lie, hostile layer titles,
and a bare name where a destination is written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.bombs import gzip_bomb
from tests.hostile.harness import expect, run_bounded
from tests.integration.test_pull_hostile import MODULE, hostile_layout
from tests.registry import RegistryServer
from wasmctl.oci import media_types as mt
from wasmctl.oci.layout import OCILayout
from wasmctl.oci.models import Descriptor, Index, Manifest, canonical_json
from wasmctl.oci.referrers import fallback_tag
from wasmctl.oci.registry import RegistryClient

HELLO = '(module (func (export "_start")))'
BLOB = "blobs/sha256/" + "0" * 64


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    return tmp_path / "sandbox"


def _temp_is_empty(sandbox: Path) -> None:
    assert list((sandbox / ".tmp").iterdir()) == []


@pytest.mark.parametrize("command", ["inspect", "copy"])
def test_a_gzip_bomb_archive_is_refused_and_leaves_no_temp_files(
    sandbox: Path, command: str
) -> None:
    sandbox.mkdir()
    gzip_bomb(sandbox / "bomb.tar.gz", BLOB, 1 << 30)
    argv = [command, "oci-archive:bomb.tar.gz:v1"]
    if command == "copy":
        argv.append("oci:out:v1")
    outcome = run_bounded(argv, sandbox=sandbox)
    expect(outcome, 2, says="inflates beyond")
    _temp_is_empty(sandbox)


def test_a_chain_of_3000_indexes_is_refused(sandbox: Path) -> None:
    root = sandbox / "deep"
    with OCILayout.writer(root) as writer:
        config = writer.add_bytes(mt.WASM_CONFIG, b"{}")
        layer = writer.add_bytes(mt.WASM_LAYER, MODULE)
        raw = Manifest(config=config, layers=(layer,), media_type=mt.OCI_MANIFEST).to_bytes()
        child = writer.add_bytes(mt.OCI_MANIFEST, raw)
        for _ in range(3000):
            child = writer.add_bytes(
                mt.OCI_INDEX, Index((child,), media_type=mt.OCI_INDEX).to_bytes()
            )
        writer.tag(child, "v1")
    expect(run_bounded(["copy", "oci:deep:v1", "oci:out:v1"], sandbox=sandbox), 2, says="deep")


def test_a_layer_size_that_lies_is_refused(sandbox: Path) -> None:
    root = sandbox / "liar"
    with OCILayout.writer(root) as writer:
        config = writer.add_bytes(mt.WASM_CONFIG, b"{}")
        layer = writer.add_bytes(mt.WASM_LAYER, MODULE + bytes(272))
        lying = Descriptor(layer.media_type, layer.digest, 10 << 30)
        raw = Manifest(config=config, layers=(lying,), media_type=mt.OCI_MANIFEST).to_bytes()
        writer.tag(writer.add_bytes(mt.OCI_MANIFEST, raw), "v1")
    outcome = run_bounded(["copy", "oci:liar:v1", "oci:out:v1"], sandbox=sandbox)
    expect(outcome, 2, says="size")
    assert "bytes sent" not in outcome.stderr


def test_a_layer_size_that_lies_is_not_pushed(sandbox: Path, registry: RegistryServer) -> None:
    root = sandbox / "liar"
    with OCILayout.writer(root) as writer:
        config = writer.add_bytes(mt.WASM_CONFIG, b"{}")
        layer = writer.add_bytes(mt.WASM_LAYER, MODULE + bytes(272))
        lying = Descriptor(layer.media_type, layer.digest, 10 << 30)
        raw = Manifest(config=config, layers=(lying,), media_type=mt.OCI_MANIFEST).to_bytes()
        writer.tag(writer.add_bytes(mt.OCI_MANIFEST, raw), "v1")
    argv = ["copy", "--plain-http", registry.host, "oci:liar:v1", f"{registry.host}/liar:v1"]
    expect(run_bounded(argv, sandbox=sandbox), 2, says="size")


@pytest.mark.parametrize(
    "title",
    ["/etc/app.wasm", "a\nb.wasm", "a" * 300 + ".wasm", "conftest.py", ".bashrc", "../x.wasm"],
)
def test_pull_of_a_hostile_title_writes_nothing(sandbox: Path, title: str) -> None:
    hostile_layout(
        sandbox / "l", [(mt.WASM_LAYER, MODULE, "ok.wasm"), (mt.WASM_LAYER, MODULE, title)]
    )
    outcome = run_bounded(["pull", "oci:l:v1", "-o", "."], sandbox=sandbox)
    expect(outcome, 2)  # and nothing written: `expect` checks the whole sandbox


def test_pull_over_an_existing_file_writes_nothing(sandbox: Path) -> None:
    hostile_layout(sandbox / "l", [(mt.WASM_LAYER, MODULE, "app.wasm")])
    (sandbox / "app.wasm").write_bytes(b"mine")
    expect(run_bounded(["pull", "oci:l:v1"], sandbox=sandbox), 2, says="--force")
    assert (sandbox / "app.wasm").read_bytes() == b"mine"


def test_build_to_a_bare_name_is_refused(sandbox: Path, wat: Callable[[str], Path]) -> None:
    sandbox.mkdir()
    module = sandbox / "app.wasm"
    module.write_bytes(wat(HELLO).read_bytes())
    outcome = run_bounded(["build", "app.wasm", "-t", "out:v1"], sandbox=sandbox)
    expect(outcome, 2, says="oci:out:v1")
    assert "docker.io/library/out:v1" in outcome.stderr


def test_copy_recursive_over_a_referrer_cycle_finishes(
    sandbox: Path, registry: RegistryServer, wat: Callable[[str], Path]
) -> None:
    """Ten referrers whose fallback tags all list each other: 10**8 walks before."""
    sandbox.mkdir()
    repo = "hostile/cycle"
    config_bytes = canonical_json({})
    blob = sandbox / "config"
    blob.write_bytes(config_bytes)
    config = Descriptor.of(mt.OCI_EMPTY, config_bytes)
    with RegistryClient(registry.host, plain_http=True, use_config=False) as client:
        client.push_blob(repo, config, blob)
        base = Manifest(config=config, layers=(), media_type=mt.OCI_MANIFEST).to_bytes()
        subject = Descriptor.of(mt.OCI_MANIFEST, base)
        client.put_manifest(repo, "v1", mt.OCI_MANIFEST, base)
        referrers = []
        for i in range(10):
            raw = Manifest(
                config=config,
                layers=(),
                media_type=mt.OCI_MANIFEST,
                artifact_type="application/x-test",
                subject=subject,
                annotations={"n": str(i)},
            ).to_bytes()
            descriptor = Descriptor.of(mt.OCI_MANIFEST, raw, artifact_type="application/x-test")
            client.put_manifest(repo, descriptor.digest, mt.OCI_MANIFEST, raw)
            referrers.append(descriptor)
        index = Index(tuple(referrers), media_type=mt.OCI_INDEX).to_bytes()
        for digest in [subject.digest, *(r.digest for r in referrers)]:
            client.put_manifest(repo, fallback_tag(digest), mt.OCI_INDEX, index)
    argv = ["copy", "-r", "--plain-http", registry.host, f"{registry.host}/{repo}:v1", "oci:out:v1"]
    outcome = run_bounded(argv, sandbox=sandbox, may_write=[sandbox / "out"])
    expect(outcome, 0)
    assert outcome.stderr.count("referrer application/x-test") == 10

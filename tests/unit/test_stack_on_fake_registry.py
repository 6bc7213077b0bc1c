"""wasmctl's transfer stack (copy, push from a layout, pull, tag) on the in-process registry.

Everything goes through `RegistryOptions(transport=fake)`: the real clients, sessions and
sources, with no process, no socket and nothing patched in the library.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests.fake_registry import FakeRegistry, TokenAuth
from tests.wasmbytes import core_module, custom_section
from wasmctl.cli import run
from wasmctl.errors import WasmctlError
from wasmctl.oci import media_types as mt
from wasmctl.oci.layout import OCILayout
from wasmctl.oci.models import Descriptor, Manifest, sha256_digest
from wasmctl.oci.reference import parse_reference
from wasmctl.oci.referrers import fallback_tag, push_referrer
from wasmctl.oci.registry import RegistryClient, RetryPolicy
from wasmctl.oci.source import RegistryOptions
from wasmctl.oci.transfer import copy, pull_modules, tag

HOST = "fake.test"
MODULE = core_module(custom_section("note", b"on the fake registry"))
NO_WAIT = RetryPolicy(attempts=3, base_delay=0.0, max_delay=0.0)


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    """A layout holding a Wasm artifact of `MODULE` under `v1`, built by the CLI."""
    module = tmp_path / "app.wasm"
    module.write_bytes(MODULE)
    target = tmp_path / "layout"
    assert run(["build", str(module), "-t", f"oci:{target}:v1"]) == 0
    return target


def push(layout: Path, fake: FakeRegistry, destination: str = f"{HOST}/app:v1") -> Descriptor:
    root, _ = copy(
        parse_reference(f"oci:{layout}:v1"),
        parse_reference(destination),
        RegistryOptions(transport=fake),
    )
    return root


def layout_manifest(layout: Path) -> bytes:
    opened = OCILayout.open(layout)
    return opened.read_blob(opened.resolve("v1", None))


def test_a_layout_pushed_to_the_registry_arrives_byte_for_byte(
    layout: Path, fake_registry: FakeRegistry
) -> None:
    root = push(layout, fake_registry)
    raw = layout_manifest(layout)
    assert fake_registry.manifest("app", "v1") == (mt.OCI_MANIFEST, raw)
    assert root.digest == sha256_digest(raw)
    manifest = Manifest.from_bytes(raw)
    for blob in (manifest.config, *manifest.layers):
        assert fake_registry.blob("app", blob.digest) is not None
    assert fake_registry.blob("app", manifest.layers[0].digest) == MODULE


def test_a_second_push_sends_no_blob(layout: Path, fake_registry: FakeRegistry) -> None:
    push(layout, fake_registry)
    fake_registry.clear_log()
    _, stats = copy(
        parse_reference(f"oci:{layout}:v1"),
        parse_reference(f"{HOST}/app:v2"),
        RegistryOptions(transport=fake_registry),
    )
    assert (stats.blobs_sent, stats.bytes_sent) == (0, 0)
    assert fake_registry.count("POST") == 0 and fake_registry.count("PATCH") == 0


def test_a_copy_between_repositories_of_one_registry_mounts_its_blobs(
    layout: Path, fake_registry: FakeRegistry
) -> None:
    push(layout, fake_registry)
    fake_registry.clear_log()
    _, stats = copy(
        parse_reference(f"{HOST}/app:v1"),
        parse_reference(f"{HOST}/mirror/app:v1"),
        RegistryOptions(transport=fake_registry),
    )
    assert stats.bytes_sent == 0
    assert fake_registry.count("POST", r"^/v2/mirror/app/blobs/uploads/$") == 2
    assert all(r.status == 201 for r in fake_registry.requests if r.method == "POST")
    assert fake_registry.count("PUT", r"/blobs/uploads/") == 0
    assert fake_registry.manifest("mirror/app", "v1") == fake_registry.manifest("app", "v1")


def test_a_copy_that_mounts_downloads_nothing(layout: Path, fake_registry: FakeRegistry) -> None:
    push(layout, fake_registry)
    fake_registry.clear_log()
    copy(
        parse_reference(f"{HOST}/app:v1"),
        parse_reference(f"{HOST}/mirror/app:v1"),
        RegistryOptions(transport=fake_registry),
    )
    assert fake_registry.count("GET", r"/blobs/") == 0


def test_a_pull_writes_the_module_from_the_registry(
    layout: Path, fake_registry: FakeRegistry, tmp_path: Path
) -> None:
    push(layout, fake_registry)
    written = pull_modules(
        parse_reference(f"{HOST}/app:v1"),
        tmp_path / "out",
        RegistryOptions(transport=fake_registry),
    )
    assert [p.name for p in written] == ["app.wasm"]
    assert written[0].read_bytes() == MODULE


def test_a_copy_back_into_a_layout_keeps_the_digest(
    layout: Path, fake_registry: FakeRegistry, tmp_path: Path
) -> None:
    root = push(layout, fake_registry)
    back, _ = copy(
        parse_reference(f"{HOST}/app:v1"),
        parse_reference(f"oci:{tmp_path / 'back'}:v1"),
        RegistryOptions(transport=fake_registry),
    )
    assert back.digest == root.digest
    assert layout_manifest(tmp_path / "back") == layout_manifest(layout)


def test_tag_points_a_new_tag_at_the_same_manifest(
    layout: Path, fake_registry: FakeRegistry
) -> None:
    root = push(layout, fake_registry)
    tag(parse_reference(f"{HOST}/app:v1"), "latest", RegistryOptions(transport=fake_registry))
    assert fake_registry.tags("app") == ["latest", "v1"]
    stored = fake_registry.manifest("app", "latest")
    assert stored is not None and sha256_digest(stored[1]) == root.digest


@pytest.mark.parametrize("referrers_api", [False, True])
def test_a_recursive_copy_carries_referrers(layout: Path, referrers_api: bool) -> None:
    fake = FakeRegistry(referrers_api=referrers_api)
    subject = push(layout, fake)
    empty = Descriptor.of(mt.OCI_EMPTY, mt.EMPTY_JSON)
    fake.add_blob("app", mt.EMPTY_JSON)
    note = Manifest(
        empty, (empty,), media_type=mt.OCI_MANIFEST, artifact_type="x/note", subject=subject
    ).to_bytes()
    with RegistryClient(HOST, http=fake.client(), use_config=False) as client:
        push_referrer(client, "app", note)
    _, stats = copy(
        parse_reference(f"{HOST}/app:v1"),
        parse_reference(f"{HOST}/copy:v1"),
        RegistryOptions(transport=fake),
        recursive=True,
    )
    assert stats.details == [f"referrer x/note {sha256_digest(note)}"]
    assert fake.manifest("copy", sha256_digest(note)) == (mt.OCI_MANIFEST, note)
    fallback = fallback_tag(subject.digest)
    assert (fallback in fake.tags("copy")) is not referrers_api


def test_the_stack_rides_out_a_5xx(layout: Path, fake_registry: FakeRegistry) -> None:
    fake_registry.fail(503, method="PUT", path=r"/manifests/v1$")
    copy(
        parse_reference(f"oci:{layout}:v1"),
        parse_reference(f"{HOST}/app:v1"),
        RegistryOptions(transport=fake_registry, retry=NO_WAIT),
    )
    assert [r.status for r in fake_registry.requests if r.method == "PUT"][-2:] == [503, 201]
    assert fake_registry.tags("app") == ["v1"]


def test_an_outage_mid_copy_fails_it_and_no_tag_is_written(
    layout: Path, fake_registry: FakeRegistry
) -> None:
    fake_registry.go_down_after(3)  # the first blob's HEAD, POST and PUT
    with pytest.raises(WasmctlError, match="ConnectError"):
        push(layout, fake_registry)
    assert fake_registry.down
    assert fake_registry.tags("app") == []
    assert [r.status for r in fake_registry.requests][-1] is None


def test_the_stack_authenticates_with_a_bearer_token_from_docker_config(
    layout: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "docker"
    config.mkdir()
    auth = base64.b64encode(b"tester:secret").decode()
    (config / "config.json").write_text(json.dumps({"auths": {HOST: {"auth": auth}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    fake = FakeRegistry(token_auth=TokenAuth(users={"tester": "secret"}))
    push(layout, fake)
    assert fake.tags("app") == ["v1"]
    assert {t.username for t in fake.token_requests} == {"tester"}
    assert {r.authorization for r in fake.requests if r.status in (200, 201, 202)} == {
        "Bearer",
        "Basic",  # the token endpoint's own requests
    }


def test_only_the_registry_named_is_reached(layout: Path) -> None:
    fake = FakeRegistry(host=HOST)
    push(layout, fake)
    with pytest.raises(WasmctlError):
        push(layout, fake, "elsewhere.test/app:v1")
    assert fake.requests[-1].status is None
    assert fake.repositories() == ["app"]

"""push_blob asks for the file only when the blob must be sent, and never trusts a size."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fake_registry import FakeRegistry
from wasmctl.errors import InputError
from wasmctl.oci.models import Descriptor, sha256_digest
from wasmctl.oci.registry import RegistryClient

DATA = b"\0asm\1\0\0\0 a blob"


def client(fake: FakeRegistry) -> RegistryClient:
    return RegistryClient("fake.test", http=fake.client(), use_config=False)


def never() -> Path:
    raise AssertionError("the file was asked for, though the registry has the blob")


def test_a_blob_the_registry_has_is_not_asked_for(fake_registry: FakeRegistry) -> None:
    digest = fake_registry.add_blob("app", DATA)
    with client(fake_registry) as c:
        assert c.push_blob("app", Descriptor("application/wasm", digest, len(DATA)), never) == 0


def test_a_blob_mounted_from_another_repository_is_not_asked_for(
    fake_registry: FakeRegistry,
) -> None:
    digest = fake_registry.add_blob("app", DATA)
    descriptor = Descriptor("application/wasm", digest, len(DATA))
    with client(fake_registry) as c:
        assert c.push_blob("mirror", descriptor, never, mount_from="app") == 0
    assert fake_registry.count("PUT", r"/blobs/uploads/") == 0


def test_a_blob_stored_at_another_size_than_its_descriptor_says_is_refused(
    fake_registry: FakeRegistry,
) -> None:
    digest = fake_registry.add_blob("app", DATA)
    lying = Descriptor("application/wasm", digest, 10 << 30)
    with client(fake_registry) as c, pytest.raises(InputError, match="descriptor says"):
        c.push_blob("app", lying, never)


def test_a_file_asked_for_is_checked_against_its_descriptor(
    fake_registry: FakeRegistry, tmp_path: Path
) -> None:
    path = tmp_path / "blob"
    path.write_bytes(DATA + b"!")
    descriptor = Descriptor("application/wasm", sha256_digest(DATA), len(DATA))
    with client(fake_registry) as c, pytest.raises(InputError, match="nothing was sent"):
        c.push_blob("app", descriptor, lambda: path)
    assert fake_registry.count("PATCH") == 0 and fake_registry.count("PUT") == 0

"""A registry session's cache of manifests and small blobs: bounded in bytes, least
recently used first out, and a hit asks the registry nothing."""

from __future__ import annotations

from wasmctl.oci import media_types as mt
from wasmctl.oci.models import Descriptor, sha256_digest
from wasmctl.oci.source import Session


class CountingClient:
    """Stands for a registry client: serves blobs by digest and counts the reads."""

    def __init__(self, blobs: dict[str, bytes]) -> None:
        self.blobs = blobs
        self.reads: list[str] = []

    def read_blob(self, repository: str, descriptor: Descriptor, *, limit: int) -> bytes:
        self.reads.append(descriptor.digest)
        return self.blobs[descriptor.digest]

    def close(self) -> None:
        pass


def blob(n: int, size: int = 1000) -> tuple[Descriptor, bytes]:
    data = bytes([n % 256]) * size
    return Descriptor(mt.OCI_CONFIG, sha256_digest(data), size), data


def test_the_least_recently_used_blob_goes_first_and_the_bound_holds() -> None:
    made = [blob(n) for n in range(4)]
    client = CountingClient({d.digest: data for d, data in made})
    session = Session(client, max_bytes=3000)  # type: ignore[arg-type]
    for d, _ in made[:3]:
        session.read_blob("r", d, limit=1 << 20)
    session.read_blob("r", made[0][0], limit=1 << 20)  # a hit; now the most recent
    assert len(client.reads) == 3
    session.read_blob("r", made[3][0], limit=1 << 20)  # over the bound: blob 1 goes
    session.read_blob("r", made[0][0], limit=1 << 20)  # still cached
    session.read_blob("r", made[1][0], limit=1 << 20)  # forgotten: read again
    assert client.reads == [made[n][0].digest for n in (0, 1, 2, 3, 1)]
    assert session._cached <= 3000


def test_a_blob_larger_than_the_cache_is_not_kept() -> None:
    big, data = blob(7, size=5000)
    client = CountingClient({big.digest: data})
    session = Session(client, max_bytes=3000)  # type: ignore[arg-type]
    assert session.read_blob("r", big, limit=1 << 20) == data
    assert session.read_blob("r", big, limit=1 << 20) == data
    assert len(client.reads) == 2

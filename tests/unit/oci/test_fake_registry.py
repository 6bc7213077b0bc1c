"""The in-process fake registry (tests/fake_registry.py), and `RegistryClient` on it.

Two kinds of test: what the fake answers, spoken to with plain httpx (it must behave like
distribution 2.8 where wasmctl depends on it), and the client's protocol against it (uploads,
mounts, manifests, referrers, tags, auth, retries, outages), with no process and nothing
patched.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.fake_registry import FakeRegistry, TokenAuth
from wasmctl.errors import InputError
from wasmctl.oci import media_types as mt
from wasmctl.oci.auth import AuthError, Credentials
from wasmctl.oci.models import Descriptor, Index, Manifest, sha256_digest
from wasmctl.oci.referrers import fallback_tag, list_referrers, push_referrer
from wasmctl.oci.registry import (
    MANIFEST_ACCEPT,
    MONOLITHIC_MAX,
    NotFoundError,
    RegistryClient,
    RegistryError,
    RetryPolicy,
)

HOST = "fake.test"
BASE = f"https://{HOST}"
USER, PASSWORD = "tester", "secret"
MODULE = b"\0asm\1\0\0\0" + bytes(56)
CONFIG = b'{"architecture":"wasm","os":"wasip1"}'


def client_for(
    fake: FakeRegistry, credentials: Credentials | None = None, attempts: int = 3
) -> tuple[RegistryClient, list[float]]:
    """A client on `fake`, and the list its retry waits go to (it never sleeps)."""
    sleeps: list[float] = []
    client = RegistryClient(
        HOST,
        http=fake.client(),
        plain_http=False,
        credentials=credentials,
        use_config=False,
        retry=RetryPolicy(attempts=attempts),
        sleep=sleeps.append,
    )
    return client, sleeps


def blob_file(tmp_path: Path, data: bytes, name: str = "blob") -> tuple[Descriptor, Path]:
    path = tmp_path / name
    path.write_bytes(data)
    return Descriptor.of(mt.WASM_LAYER, data), path


def seed_artifact(fake: FakeRegistry, repository: str, tag: str | None = "v1") -> bytes:
    """A Wasm artifact stored directly in `fake`; returns its manifest bytes."""
    config = Descriptor.of(mt.WASM_CONFIG, CONFIG)
    layer = Descriptor.of(mt.WASM_LAYER, MODULE)
    fake.add_blob(repository, CONFIG)
    fake.add_blob(repository, MODULE)
    raw = Manifest(config, (layer,), media_type=mt.OCI_MANIFEST).to_bytes()
    fake.add_manifest(repository, raw, mt.OCI_MANIFEST, tag)
    return raw


def referrer(subject: bytes, artifact_type: str, note: str = "") -> bytes:
    empty = Descriptor.of(mt.OCI_EMPTY, mt.EMPTY_JSON)
    return Manifest(
        empty,
        (empty,),
        media_type=mt.OCI_MANIFEST,
        artifact_type=artifact_type,
        subject=Descriptor.of(mt.OCI_MANIFEST, subject),
        annotations={"note": note} if note else {},
    ).to_bytes()


def error_codes(response: httpx.Response) -> list[str]:
    return [e["code"] for e in response.json()["errors"]]


def with_digest(location: str, data: bytes) -> httpx.URL:
    """An upload's Location with `digest` merged into its query (which holds `_state`)."""
    return httpx.URL(location).copy_merge_params({"digest": sha256_digest(data)})


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# -- the fake, spoken to directly ------------------------------------------------------------


def test_the_base_endpoint_answers_with_the_api_version() -> None:
    response = FakeRegistry().client().get(f"{BASE}/v2/")
    assert response.status_code == 200
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"


def test_an_unknown_route_is_gos_plain_text_404() -> None:
    response = FakeRegistry().client().get(f"{BASE}/v2/r/nothing-here")
    assert response.status_code == 404
    assert response.text == "404 page not found\n"


def test_an_upload_location_is_absolute_with_a_state_and_a_range() -> None:
    http = FakeRegistry().client()
    response = http.post(f"{BASE}/v2/a/b/blobs/uploads/")
    assert response.status_code == 202
    location = httpx.URL(response.headers["Location"])
    assert (location.scheme, location.host) == ("https", HOST)
    assert location.path == f"/v2/a/b/blobs/uploads/{response.headers['Docker-Upload-UUID']}"
    assert location.params["_state"]
    assert response.headers["Range"] == "0-0"


def test_chunks_append_and_each_answer_gives_the_next_location() -> None:
    fake = FakeRegistry()
    http = fake.client()
    location = http.post(f"{BASE}/v2/r/blobs/uploads/").headers["Location"]
    data = bytes(range(200))
    for start in (0, 100):
        response = http.patch(
            location,
            content=data[start : start + 100],
            headers={"Content-Range": f"{start}-{start + 99}"},
        )
        assert response.status_code == 202
        assert response.headers["Range"] == f"0-{start + 99}"
        location = response.headers["Location"]
    done = http.put(with_digest(location, data))
    assert done.status_code == 201
    assert done.headers["Docker-Content-Digest"] == sha256_digest(data)
    assert fake.blob("r", sha256_digest(data)) == data


def test_a_stale_location_is_refused_as_distribution_does() -> None:
    http = FakeRegistry().client()
    first = http.post(f"{BASE}/v2/r/blobs/uploads/").headers["Location"]
    http.patch(first, content=b"abc", headers={"Content-Range": "0-2"})
    response = http.patch(first, content=b"def", headers={"Content-Range": "3-5"})
    assert response.status_code == 404
    assert error_codes(response) == ["BLOB_UPLOAD_INVALID"]


def test_a_chunk_that_does_not_start_where_the_upload_stands_is_416() -> None:
    http = FakeRegistry().client()
    location = http.post(f"{BASE}/v2/r/blobs/uploads/").headers["Location"]
    response = http.patch(location, content=b"abc", headers={"Content-Range": "5-7"})
    assert response.status_code == 416
    assert response.headers["Range"] == "0-0"


def test_an_upload_whose_bytes_do_not_match_the_digest_is_digest_invalid() -> None:
    fake = FakeRegistry()
    http = fake.client()
    location = http.post(f"{BASE}/v2/r/blobs/uploads/").headers["Location"]
    response = http.put(with_digest(location, b"other"), content=b"bytes")
    assert response.status_code == 400
    assert error_codes(response) == ["DIGEST_INVALID"]
    assert fake.blob("r", sha256_digest(b"bytes")) is None


def test_a_single_post_with_a_digest_discards_its_body_like_distribution() -> None:
    fake = FakeRegistry()
    digest = sha256_digest(b"data")
    response = fake.client().post(
        f"{BASE}/v2/r/blobs/uploads/", params={"digest": digest}, content=b"data"
    )
    assert response.status_code == 202
    assert fake.blob("r", digest) is None


def test_a_blob_is_served_whole_or_by_range_with_its_digest() -> None:
    fake = FakeRegistry()
    digest = fake.add_blob("r", b"0123456789")
    http = fake.client()
    head = http.head(f"{BASE}/v2/r/blobs/{digest}")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Content-Length"] == "10"
    assert head.headers["Docker-Content-Digest"] == digest
    ranged = http.get(f"{BASE}/v2/r/blobs/{digest}", headers={"Range": "bytes=2-4"})
    assert ranged.status_code == 206 and ranged.content == b"234"
    assert ranged.headers["Content-Range"] == "bytes 2-4/10"


def test_a_blob_belongs_to_the_repositories_it_was_pushed_or_mounted_into() -> None:
    fake = FakeRegistry()
    digest = fake.add_blob("a", b"data")
    response = fake.client().get(f"{BASE}/v2/b/blobs/{digest}")
    assert response.status_code == 404
    assert error_codes(response) == ["BLOB_UNKNOWN"]


def test_an_oci_manifest_is_hidden_from_a_request_that_does_not_accept_oci() -> None:
    # distribution 2.8: no Accept, or */*, gives 404 for an OCI manifest (a HEAD without
    # Accept would wrongly say "missing")
    fake = FakeRegistry()
    seed_artifact(fake, "r")
    http = fake.client()
    for accept in (None, "*/*", mt.DOCKER_MANIFEST):
        headers = {"Accept": accept} if accept else {}
        response = http.get(f"{BASE}/v2/r/manifests/v1", headers=headers)
        assert response.status_code == 404
        assert "accept header does not support OCI manifests" in response.text
    response = http.get(f"{BASE}/v2/r/manifests/v1", headers={"Accept": MANIFEST_ACCEPT})
    assert response.status_code == 200


def test_an_oci_index_needs_the_index_type_in_accept() -> None:
    fake = FakeRegistry()
    raw = seed_artifact(fake, "r")
    index = Index((Descriptor.of(mt.OCI_MANIFEST, raw),), media_type=mt.OCI_INDEX).to_bytes()
    fake.add_manifest("r", index, mt.OCI_INDEX, "all")
    http = fake.client()
    refused = http.get(f"{BASE}/v2/r/manifests/all", headers={"Accept": mt.OCI_MANIFEST})
    assert refused.status_code == 404
    served = http.get(f"{BASE}/v2/r/manifests/all", headers={"Accept": mt.OCI_INDEX})
    assert served.headers["Content-Type"] == mt.OCI_INDEX


def test_a_manifest_whose_blobs_are_missing_is_manifest_blob_unknown() -> None:
    fake = FakeRegistry()
    layer = Descriptor.of(mt.WASM_LAYER, MODULE)
    raw = Manifest(layer, (layer,), media_type=mt.OCI_MANIFEST).to_bytes()
    response = fake.client().put(
        f"{BASE}/v2/r/manifests/v1", content=raw, headers={"Content-Type": mt.OCI_MANIFEST}
    )
    assert response.status_code == 400
    assert error_codes(response) == ["MANIFEST_BLOB_UNKNOWN"]


def test_an_index_needs_its_children_but_a_referrer_not_its_subject() -> None:
    fake = FakeRegistry()
    http = fake.client()
    missing = Descriptor(mt.OCI_MANIFEST, "sha256:" + "1" * 64, 10)
    index = Index((missing,), media_type=mt.OCI_INDEX).to_bytes()
    refused = http.put(
        f"{BASE}/v2/r/manifests/i", content=index, headers={"Content-Type": mt.OCI_INDEX}
    )
    assert error_codes(refused) == ["MANIFEST_BLOB_UNKNOWN"]
    fake.add_blob("r", mt.EMPTY_JSON)
    orphan = referrer(b"no such subject", "x/sig")
    accepted = http.put(
        f"{BASE}/v2/r/manifests/{sha256_digest(orphan)}",
        content=orphan,
        headers={"Content-Type": mt.OCI_MANIFEST},
    )
    assert accepted.status_code == 201


@pytest.mark.parametrize(
    "content_type",
    [mt.OCI_INDEX, "application/vnd.oci.artifact.manifest.v1+json", "application/json", ""],
)
def test_a_content_type_that_is_not_the_manifests_type_is_manifest_invalid(
    content_type: str,
) -> None:
    fake = FakeRegistry()
    raw = seed_artifact(fake, "r", tag=None)
    response = fake.client().put(
        f"{BASE}/v2/r/manifests/v2", content=raw, headers={"Content-Type": content_type}
    )
    assert response.status_code == 400
    assert error_codes(response) == ["MANIFEST_INVALID"]


def test_a_manifest_put_under_another_digest_is_digest_invalid() -> None:
    fake = FakeRegistry()
    raw = seed_artifact(fake, "r", tag=None)
    response = fake.client().put(
        f"{BASE}/v2/r/manifests/sha256:{'0' * 64}",
        content=raw,
        headers={"Content-Type": mt.OCI_MANIFEST},
    )
    assert error_codes(response) == ["DIGEST_INVALID"]


def test_manifests_are_deleted_by_digest_only_unless_tag_deletion_is_on() -> None:
    fake = FakeRegistry()
    digest = sha256_digest(seed_artifact(fake, "r"))
    http = fake.client()
    by_tag = http.delete(f"{BASE}/v2/r/manifests/v1")
    assert by_tag.status_code == 400 and error_codes(by_tag) == ["DIGEST_INVALID"]
    assert http.delete(f"{BASE}/v2/r/manifests/{digest}").status_code == 202
    assert fake.manifest("r", digest) is None and fake.tags("r") == []

    lenient = FakeRegistry(delete_tags=True)
    digest = sha256_digest(seed_artifact(lenient, "r"))
    assert lenient.client().delete(f"{BASE}/v2/r/manifests/v1").status_code == 202
    assert lenient.tags("r") == [] and lenient.manifest("r", digest) is not None


def test_tags_page_by_n_and_last_with_a_link_to_the_next_page() -> None:
    fake = FakeRegistry()
    raw = seed_artifact(fake, "r", tag=None)
    for tag in ("e", "a", "c", "b", "d"):
        fake.add_manifest("r", raw, mt.OCI_MANIFEST, tag)
    response = fake.client().get(f"{BASE}/v2/r/tags/list", params={"n": 2, "last": "a"})
    assert response.json() == {"name": "r", "tags": ["b", "c"]}
    assert response.headers["Link"] == '</v2/r/tags/list?n=2&last=c>; rel="next"'


def test_the_tags_of_an_unknown_repository_are_name_unknown() -> None:
    response = FakeRegistry().client().get(f"{BASE}/v2/nobody/tags/list")
    assert response.status_code == 404
    assert error_codes(response) == ["NAME_UNKNOWN"]


def test_without_the_referrers_api_there_is_no_endpoint_and_no_oci_subject() -> None:
    fake = FakeRegistry()
    subject = seed_artifact(fake, "r")
    fake.add_blob("r", mt.EMPTY_JSON)
    sig = referrer(subject, "x/sig")
    http = fake.client()
    put = http.put(
        f"{BASE}/v2/r/manifests/{sha256_digest(sig)}",
        content=sig,
        headers={"Content-Type": mt.OCI_MANIFEST},
    )
    assert put.status_code == 201 and "OCI-Subject" not in put.headers
    response = http.get(f"{BASE}/v2/r/referrers/{sha256_digest(subject)}")
    assert response.status_code == 404 and response.text == "404 page not found\n"


def test_the_referrers_api_lists_filters_and_says_it_filtered() -> None:
    fake = FakeRegistry(referrers_api=True)
    subject = seed_artifact(fake, "r")
    fake.add_blob("r", mt.EMPTY_JSON)
    for raw in (referrer(subject, "x/sig", "one"), referrer(subject, "x/sbom")):
        fake.add_manifest("r", raw, mt.OCI_MANIFEST)
    http = fake.client()
    url = f"{BASE}/v2/r/referrers/{sha256_digest(subject)}"
    everything = http.get(url)
    assert everything.headers["Content-Type"] == mt.OCI_INDEX
    assert "OCI-Filters-Applied" not in everything.headers
    listed = Index.from_bytes(everything.content).manifests
    assert sorted(d.artifact_type or "" for d in listed) == ["x/sbom", "x/sig"]
    assert {d.artifact_type: dict(d.annotations) for d in listed}["x/sig"] == {"note": "one"}
    filtered = http.get(url, params={"artifactType": "x/sig"})
    assert filtered.headers["OCI-Filters-Applied"] == "artifactType"
    assert [d.artifact_type for d in Index.from_bytes(filtered.content).manifests] == ["x/sig"]


def test_the_access_log_records_method_path_and_status() -> None:
    fake = FakeRegistry()
    http = fake.client()
    http.get(f"{BASE}/v2/")
    http.head(f"{BASE}/v2/r/blobs/sha256:{'0' * 64}")
    assert [(r.method, r.path, r.status) for r in fake.requests] == [
        ("GET", "/v2/", 200),
        ("HEAD", f"/v2/r/blobs/sha256:{'0' * 64}", 404),
    ]
    assert fake.count("HEAD", r"/blobs/") == 1
    assert fake.count(path=r"^/v2/$") == 1


def test_a_fault_answers_the_next_n_matching_requests_only() -> None:
    fake = FakeRegistry()
    fault = fake.fail(502, method="GET", path=r"^/v2/$", times=2)
    http = fake.client()
    assert http.head(f"{BASE}/v2/").status_code == 200  # another method: untouched
    assert [http.get(f"{BASE}/v2/").status_code for _ in range(3)] == [502, 502, 200]
    assert fault.hits == 2


def test_a_virtual_delay_is_counted_not_slept() -> None:
    fake = FakeRegistry(delay=30.0)
    started = time.monotonic()
    http = fake.client()
    for _ in range(3):
        http.get(f"{BASE}/v2/")
    assert time.monotonic() - started < 5
    assert fake.virtual_time == 90.0


def test_a_real_delay_is_bounded_small() -> None:
    fake = FakeRegistry(delay=60.0, real_delay=True)
    started = time.monotonic()
    fake.client().get(f"{BASE}/v2/")
    assert 0.4 <= time.monotonic() - started < 5
    assert fake.virtual_time == 0.0


def test_a_fake_bound_to_a_host_does_not_answer_for_another() -> None:
    fake = FakeRegistry(host=HOST)
    assert fake.client().get(f"{BASE}/v2/").status_code == 200
    with pytest.raises(httpx.ConnectError):
        fake.client().get("https://elsewhere.test/v2/")


def test_the_fixture_is_a_fresh_fake(fake_registry: FakeRegistry) -> None:
    assert fake_registry.requests == [] and fake_registry.repositories() == []
    assert not fake_registry.down and not fake_registry.referrers_api


# -- RegistryClient on the fake: uploads -----------------------------------------------------


def test_a_small_blob_goes_in_one_put_after_a_head(tmp_path: Path) -> None:
    fake = FakeRegistry()
    client, _ = client_for(fake)
    descriptor, path = blob_file(tmp_path, MODULE)
    assert client.push_blob("a/b", descriptor, path) == len(MODULE)
    assert fake.blob("a/b", descriptor.digest) == MODULE
    assert [(r.method, r.status) for r in fake.requests] == [
        ("HEAD", 404),
        ("POST", 202),
        ("PUT", 201),
    ]


def test_a_blob_the_registry_has_is_not_sent_again(tmp_path: Path) -> None:
    fake = FakeRegistry()
    client, _ = client_for(fake)
    descriptor, path = blob_file(tmp_path, MODULE)
    client.push_blob("r", descriptor, path)
    fake.clear_log()
    assert client.push_blob("r", descriptor, path) == 0
    assert [r.method for r in fake.requests] == ["HEAD"]


def test_a_blob_over_the_monolithic_limit_goes_in_patch_chunks(tmp_path: Path) -> None:
    # MONOLITHIC_MAX + 1 bytes: one PATCH (UPLOAD_CHUNK is larger) and a closing PUT
    fake = FakeRegistry()
    client, _ = client_for(fake)
    data = bytes(MONOLITHIC_MAX + 1)
    descriptor, path = blob_file(tmp_path, data)
    assert client.push_blob("r", descriptor, path) == len(data)
    assert [r.method for r in fake.requests] == ["HEAD", "POST", "PATCH", "PUT"]
    assert fake.blob("r", descriptor.digest) == data


def test_a_mount_from_another_repository_sends_no_bytes(tmp_path: Path) -> None:
    fake = FakeRegistry()
    client, _ = client_for(fake)
    descriptor, path = blob_file(tmp_path, MODULE)
    client.push_blob("src", descriptor, path)
    fake.clear_log()
    assert client.push_blob("dst", descriptor, path, mount_from="src") == 0
    assert [(r.method, r.status) for r in fake.requests] == [("HEAD", 404), ("POST", 201)]
    assert fake.blob("dst", descriptor.digest) == MODULE


def test_a_mount_of_a_blob_the_source_lacks_falls_back_to_an_upload(tmp_path: Path) -> None:
    fake = FakeRegistry()
    client, _ = client_for(fake)
    descriptor, path = blob_file(tmp_path, MODULE)
    assert client.push_blob("dst", descriptor, path, mount_from="src") == len(MODULE)
    assert [(r.method, r.status) for r in fake.requests] == [
        ("HEAD", 404),
        ("POST", 202),
        ("PUT", 201),
    ]


def test_a_pulled_blob_arrives_verified(tmp_path: Path) -> None:
    fake = FakeRegistry()
    fake.add_blob("r", MODULE)
    client, _ = client_for(fake)
    target = tmp_path / "out" / "module.wasm"
    client.fetch_blob("r", Descriptor.of(mt.WASM_LAYER, MODULE), target)
    assert target.read_bytes() == MODULE


# -- RegistryClient on the fake: manifests, tags, referrers ---------------------------------


def test_a_manifest_keeps_its_exact_bytes_and_media_type() -> None:
    fake = FakeRegistry()
    document = json.loads(seed_artifact(fake, "r", tag=None))
    raw = json.dumps(document, indent=3).encode()  # not canonical: must survive as is
    client, _ = client_for(fake)
    headers = client.put_manifest("r", "v1", mt.OCI_MANIFEST, raw)
    assert headers["Docker-Content-Digest"] == sha256_digest(raw)
    assert client.get_manifest("r", "v1") == (raw, mt.OCI_MANIFEST, sha256_digest(raw))
    assert client.head_manifest("r", "v1") == Descriptor(
        mt.OCI_MANIFEST, sha256_digest(raw), len(raw)
    )


def test_a_missing_manifest_is_not_found_and_head_says_none() -> None:
    fake = FakeRegistry()
    seed_artifact(fake, "r")
    client, _ = client_for(fake)
    with pytest.raises(NotFoundError, match="MANIFEST_UNKNOWN"):
        client.get_manifest("r", "v2")
    assert client.head_manifest("r", "v2") is None


def test_a_manifest_naming_a_missing_blob_is_refused(tmp_path: Path) -> None:
    fake = FakeRegistry()
    client, _ = client_for(fake)
    layer = Descriptor.of(mt.WASM_LAYER, MODULE)
    raw = Manifest(layer, (layer,), media_type=mt.OCI_MANIFEST).to_bytes()
    with pytest.raises(InputError, match="MANIFEST_BLOB_UNKNOWN"):
        client.put_manifest("r", "v1", mt.OCI_MANIFEST, raw)


def test_the_client_follows_tag_pages(tmp_path: Path) -> None:
    fake = FakeRegistry(page_size=2)
    raw = seed_artifact(fake, "r", tag=None)
    names = [f"t{i}" for i in range(5)]
    for tag in names:
        fake.add_manifest("r", raw, mt.OCI_MANIFEST, tag)
    client, _ = client_for(fake)
    assert client.list_tags("r") == names
    assert fake.count("GET", r"/tags/list$") == 3


def test_without_the_referrers_api_the_client_keeps_the_fallback_tag() -> None:
    fake = FakeRegistry()
    subject = seed_artifact(fake, "r")
    fake.add_blob("r", mt.EMPTY_JSON)
    client, _ = client_for(fake)
    sig = referrer(subject, "x/sig", "by me")
    assert push_referrer(client, "r", sig).fallback_updated
    tag = fallback_tag(sha256_digest(subject))
    assert tag in fake.tags("r")
    found = list_referrers(client, "r", sha256_digest(subject))
    assert [(d.digest, d.artifact_type, dict(d.annotations)) for d in found] == [
        (sha256_digest(sig), "x/sig", {"note": "by me"})
    ]
    assert fake.count("GET", r"/referrers/") == 1
    assert fake.count("GET", rf"/manifests/{tag}$") == 2  # read before the update, then listed


def test_with_the_referrers_api_no_fallback_tag_is_written_or_read() -> None:
    fake = FakeRegistry(referrers_api=True)
    subject = seed_artifact(fake, "r")
    fake.add_blob("r", mt.EMPTY_JSON)
    client, _ = client_for(fake)
    sig = referrer(subject, "x/sig")
    assert not push_referrer(client, "r", sig).fallback_updated
    push_referrer(client, "r", referrer(subject, "x/sbom"))
    assert fake.tags("r") == ["v1"]
    found = list_referrers(client, "r", sha256_digest(subject), "x/sig")
    assert [d.digest for d in found] == [sha256_digest(sig)]
    assert fake.count(path=r"/manifests/sha256-") == 0


def test_the_client_follows_referrer_pages() -> None:
    fake = FakeRegistry(referrers_api=True, page_size=1)
    subject = seed_artifact(fake, "r")
    fake.add_blob("r", mt.EMPTY_JSON)
    for i in range(3):
        fake.add_manifest("r", referrer(subject, f"x/{i}"), mt.OCI_MANIFEST)
    client, _ = client_for(fake)
    found = client.referrers("r", sha256_digest(subject))
    assert found is not None and len(found) == 3
    assert fake.count("GET", r"/referrers/") == 3


# -- RegistryClient on the fake: auth --------------------------------------------------------


def test_basic_auth_challenges_then_accepts_the_credentials(tmp_path: Path) -> None:
    fake = FakeRegistry(basic_auth=(USER, PASSWORD))
    anonymous = fake.client().get(f"{BASE}/v2/")
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"] == 'Basic realm="basic-realm"'
    client, _ = client_for(fake, Credentials(USER, PASSWORD))
    descriptor, path = blob_file(tmp_path, MODULE)
    client.push_blob("r", descriptor, path)
    assert [r.authorization for r in fake.requests] == [None, None, "Basic", "Basic", "Basic"]


def test_basic_auth_refuses_wrong_or_missing_credentials() -> None:
    fake = FakeRegistry(basic_auth=(USER, PASSWORD))
    with pytest.raises(AuthError, match="refused the credentials"):
        client_for(fake, Credentials(USER, "wrong"))[0].ping()
    with pytest.raises(AuthError, match="needs credentials"):
        client_for(fake)[0].ping()


def test_a_bearer_challenge_points_at_the_token_endpoint_on_the_same_host() -> None:
    fake = FakeRegistry(token_auth=TokenAuth(users={USER: PASSWORD}))
    response = fake.client().get(f"{BASE}/v2/r/tags/list")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == (
        f'Bearer realm="{BASE}/token",service="fake-registry",scope="repository:r:pull"'
    )


def test_the_client_gets_one_token_per_scope_set(tmp_path: Path) -> None:
    fake = FakeRegistry(token_auth=TokenAuth(users={USER: PASSWORD}))
    client, _ = client_for(fake, Credentials(USER, PASSWORD))
    for name in ("a", "b"):
        descriptor, path = blob_file(tmp_path, name.encode() * 10, name)
        client.push_blob("r", descriptor, path)
    assert [t.scopes for t in fake.token_requests] == [
        ("repository:r:pull",),
        ("repository:r:pull,push",),
    ]
    assert all(t.username == USER for t in fake.token_requests)
    assert fake.count("GET", r"^/token$") == 2


def test_a_token_that_does_not_cover_the_request_gets_insufficient_scope() -> None:
    fake = FakeRegistry(token_auth=TokenAuth(users={USER: PASSWORD}))
    http = fake.client()
    token = http.get(
        f"{BASE}/token",
        params={"service": "fake-registry", "scope": "repository:r:pull"},
        headers={"Authorization": basic(USER, PASSWORD)},
    ).json()["token"]
    response = http.post(
        f"{BASE}/v2/r/blobs/uploads/", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].endswith(
        'scope="repository:r:pull,push",error="insufficient_scope"'
    )


def test_a_mount_needs_pull_on_its_source_too() -> None:
    fake = FakeRegistry(token_auth=TokenAuth(users={USER: PASSWORD}))
    http = fake.client()
    token = http.get(
        f"{BASE}/token",
        params={"scope": "repository:dst:pull,push"},
        headers={"Authorization": basic(USER, PASSWORD)},
    ).json()["token"]
    response = http.post(
        f"{BASE}/v2/dst/blobs/uploads/",
        params={"mount": sha256_digest(b"x"), "from": "src"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 401
    assert (
        'scope="repository:dst:pull,push repository:src:pull"'
        in (response.headers["WWW-Authenticate"])
    )


def test_the_client_asks_again_after_insufficient_scope(tmp_path: Path) -> None:
    # the token service grants push only from its second request for it on
    asked: list[str] = []

    def policy(user: str | None, repository: str, action: str) -> bool:
        if action == "push":
            asked.append(repository)
            return len(asked) > 1
        return user is not None

    fake = FakeRegistry(token_auth=TokenAuth(users={USER: PASSWORD}, policy=policy))
    client, _ = client_for(fake, Credentials(USER, PASSWORD))
    descriptor, path = blob_file(tmp_path, MODULE)
    assert client.push_blob("r", descriptor, path) == len(MODULE)
    posts = [r.status for r in fake.requests if r.method == "POST"]
    assert posts == [401, 401, 202]  # anonymous, too narrow a token, then the wider one
    assert [sorted(t.granted) for t in fake.token_requests][1:] == [
        [("r", "pull")],
        [("r", "pull"), ("r", "push")],
    ]


def test_a_pull_only_user_cannot_push(tmp_path: Path) -> None:
    fake = FakeRegistry(token_auth=TokenAuth(users={USER: PASSWORD}, withhold=frozenset({"push"})))
    client, _ = client_for(fake, Credentials(USER, PASSWORD))
    descriptor, path = blob_file(tmp_path, MODULE)
    with pytest.raises(RegistryError, match="HTTP 401") as caught:
        client.push_blob("r", descriptor, path)
    assert caught.value.status == 401
    assert fake.blob("r", descriptor.digest) is None


def test_anonymous_pulls_work_when_the_token_service_allows_them() -> None:
    fake = FakeRegistry(token_auth=TokenAuth(anonymous_actions=frozenset({"pull"})))
    raw = seed_artifact(fake, "r")
    client, _ = client_for(fake)
    assert client.get_manifest("r", "v1")[0] == raw
    assert fake.token_requests[-1].username is None


def test_wrong_credentials_are_refused_at_the_token_endpoint() -> None:
    fake = FakeRegistry(token_auth=TokenAuth(users={USER: PASSWORD}))
    client, _ = client_for(fake, Credentials(USER, "wrong"))
    with pytest.raises(AuthError, match="refused the credentials"):
        client.ping()
    assert fake.token_requests[-1].status == 401


def test_an_identity_token_is_exchanged_by_post() -> None:
    auth = TokenAuth(users={USER: PASSWORD}, refresh_tokens={"idt-1": USER})
    fake = FakeRegistry(token_auth=auth)
    seed_artifact(fake, "r")
    client, _ = client_for(fake, Credentials(identity_token="idt-1"))
    assert client.list_tags("r") == ["v1"]
    assert [(t.method, t.username) for t in fake.token_requests] == [("POST", USER)]


# -- RegistryClient on the fake: faults and outages ------------------------------------------


def test_a_5xx_is_retried_with_backoff() -> None:
    fake = FakeRegistry()
    raw = seed_artifact(fake, "r")
    fake.fail(503, method="GET", path=r"/manifests/", times=2)
    client, sleeps = client_for(fake)
    assert client.get_manifest("r", "v1")[0] == raw
    assert [r.status for r in fake.requests] == [503, 503, 200]
    assert len(sleeps) == 2


def test_retries_stop_after_the_policys_attempts() -> None:
    fake = FakeRegistry()
    seed_artifact(fake, "r")
    fake.fail(500, path=r"/manifests/", times=100)
    client, sleeps = client_for(fake, attempts=3)
    with pytest.raises(RegistryError, match="HTTP 500"):
        client.get_manifest("r", "v1")
    assert fake.count("GET", r"/manifests/") == 3 and len(sleeps) == 2


def test_retry_after_sets_the_wait() -> None:
    fake = FakeRegistry()
    fake.fail(429, path=r"^/v2/$", headers={"Retry-After": "7"})
    client, sleeps = client_for(fake)
    client.ping()
    assert sleeps == [7.0]


def test_a_dropped_connection_is_retried(tmp_path: Path) -> None:
    fake = FakeRegistry()
    fake.fail(method="PUT", path=r"/blobs/uploads/", exception=httpx.ReadError)
    client, sleeps = client_for(fake)
    descriptor, path = blob_file(tmp_path, MODULE)
    assert client.push_blob("r", descriptor, path) == len(MODULE)
    assert [r.status for r in fake.requests if r.method == "PUT"] == [None, 201]
    assert len(sleeps) == 1


def test_a_registry_that_is_down_fails_at_once() -> None:
    fake = FakeRegistry()
    fake.down = True
    client, sleeps = client_for(fake)
    with pytest.raises(RegistryError, match="ConnectError"):
        client.ping()
    assert [r.status for r in fake.requests] == [None] and sleeps == []


def test_an_outage_mid_run_fails_the_next_request_and_recovery_resumes(tmp_path: Path) -> None:
    fake = FakeRegistry()
    client, _ = client_for(fake)
    first, first_path = blob_file(tmp_path, b"first", "a")
    second, second_path = blob_file(tmp_path, b"second", "b")
    client.push_blob("r", first, first_path)
    fake.down = True
    with pytest.raises(RegistryError):
        client.push_blob("r", second, second_path)
    fake.down = False
    assert client.push_blob("r", second, second_path) == len(b"second")
    assert client.push_blob("r", first, first_path) == 0


# -- concurrency -----------------------------------------------------------------------------


def test_concurrent_clients_see_a_consistent_registry(tmp_path: Path) -> None:
    fake = FakeRegistry(delay=0.001, real_delay=True)
    blobs = [blob_file(tmp_path, f"blob {i % 8}".encode(), f"b{i}") for i in range(32)]
    local = threading.local()

    def push(item: tuple[Descriptor, Path]) -> int:
        if not hasattr(local, "client"):
            local.client = client_for(fake)[0]
        client: RegistryClient = local.client
        return client.push_blob("r", *item)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(push, blobs))
    for descriptor, _ in blobs:
        assert fake.blob("r", descriptor.digest) is not None
    assert fake.count("HEAD") == 32
    assert fake.count("PUT") == fake.count("POST")
    assert {r.status for r in fake.requests} <= {200, 201, 202, 404}

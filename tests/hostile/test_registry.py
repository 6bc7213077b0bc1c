"""A hostile registry, seen from the command line (issue 11): redirects that would carry the
user's password elsewhere, loops, a registry that trickles, pages that never end.

Each case serves a real artifact (built by wasmctl into a layout) from a scripted loopback
registry (tests/hostile/lying_registry.py), runs `wasmctl` under the harness's limits, and
checks the exit code (3: the registry is at fault), the message, and what the other host saw.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.hostile.harness import expect, run_bounded
from tests.hostile.lying_registry import LyingRegistry, Reply, Seen, basic, redirect
from tests.wasmbytes import core_module, section
from wasmctl.cli import run

HELLO = core_module(section(1, b"\x01\x60\x00\x00"))
USER, PASSWORD = "ci-bot", "hunter2-registry-password"


@dataclass(frozen=True)
class Artifact:
    """A built artifact's manifest and blobs, as a registry would serve them."""

    manifest: bytes
    digest: str
    media_type: str
    blobs: dict[str, bytes]
    layer: str


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    box = tmp_path / "box"
    box.mkdir()
    return box


@pytest.fixture
def artifact(tmp_path: Path) -> Artifact:
    (tmp_path / "app.wasm").write_bytes(HELLO)
    layout = tmp_path / "layout"
    assert run(["build", str(tmp_path / "app.wasm"), "-t", f"oci:{layout}:v1"]) == 0
    (entry,) = json.loads((layout / "index.json").read_text())["manifests"]
    blobs = {
        f"sha256:{path.name}": path.read_bytes() for path in (layout / "blobs/sha256").iterdir()
    }
    manifest = blobs[entry["digest"]]
    (layer,) = json.loads(manifest)["layers"]
    return Artifact(manifest, entry["digest"], entry["mediaType"], blobs, layer["digest"])


def serving(
    artifact: Artifact, *, login: bool = False, blob: Callable[[Seen], Reply] | None = None
) -> Callable[[Seen], Reply]:
    """A registry script for `artifact` at `app:v1`: manifests and blobs, no referrers API,
    Basic auth with `login`, and `blob` answering for the Wasm layer when given."""

    def script(seen: Seen) -> Reply:
        if login and seen.authorization != basic(USER, PASSWORD):
            return Reply(401, {"WWW-Authenticate": 'Basic realm="lying"'})
        path = seen.path.partition("?")[0]
        if path in ("/v2/app/manifests/v1", f"/v2/app/manifests/{artifact.digest}"):
            headers = {
                "Content-Type": artifact.media_type,
                "Docker-Content-Digest": artifact.digest,
            }
            return Reply(200, headers, artifact.manifest)
        if path == f"/v2/app/blobs/{artifact.layer}" and blob is not None:
            return blob(seen)
        if path.startswith("/v2/app/blobs/"):
            found = artifact.blobs.get(path.rpartition("/")[2])
            return Reply(200, body=found) if found is not None else Reply(404)
        return Reply(404, body=b'{"errors": [{"code": "NOT_FOUND", "message": "no"}]}')

    return script


def logged_in(sandbox: Path, registry: LyingRegistry) -> None:
    """Store the user's password for `registry` where the harness points DOCKER_CONFIG."""
    config = sandbox / ".home/.docker/config.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    config.write_text(json.dumps({"auths": {registry.host: {"auth": auth}}}))


@pytest.fixture
def other() -> Iterator[LyingRegistry]:
    with LyingRegistry() as server:
        yield server


def pull(registry: LyingRegistry) -> list[str]:
    return ["pull", "--plain-http", registry.host, f"{registry.host}/app:v1", "-o", "modules"]


# -- credentials -------------------------------------------------------------------------------


def test_pull_follows_a_storage_redirect_without_the_password(
    sandbox: Path, artifact: Artifact, other: LyingRegistry
) -> None:
    other.script = lambda seen: Reply(200, body=artifact.blobs[artifact.layer])
    blob_moved = lambda seen: redirect(f"{other.url}/bucket/layer?X-Amz-Signature=abc")  # noqa: E731
    with LyingRegistry(serving(artifact, login=True, blob=blob_moved)) as registry:
        logged_in(sandbox, registry)
        outcome = run_bounded(
            pull(registry), sandbox=sandbox, may_write=[sandbox / "modules"], wall=60
        )
        expect(outcome, 0)
        assert any(seen.authorization for seen in registry.seen)
    assert (sandbox / "modules").is_dir() and any((sandbox / "modules").iterdir())
    assert other.seen and all(seen.authorization is None for seen in other.seen)


def test_push_to_an_upload_location_elsewhere_sends_no_password(
    sandbox: Path, artifact: Artifact, other: LyingRegistry, tmp_path: Path
) -> None:
    def upload_host(seen: Seen) -> Reply:
        digest = seen.path.partition("digest=")[2].replace("%3A", ":")
        return Reply(201, {"Docker-Content-Digest": digest})

    def script(seen: Seen) -> Reply:
        if seen.authorization != basic(USER, PASSWORD):
            return Reply(401, {"WWW-Authenticate": 'Basic realm="lying"'})
        if seen.method == "POST":
            return Reply(202, {"Location": f"{other.url}/upload/1?_state=secret-state"})
        if seen.method == "PUT":
            return Reply(201, {"Docker-Content-Digest": artifact.digest})
        return Reply(404)

    other.script = upload_host
    layout = tmp_path / "layout"
    with LyingRegistry(script) as registry:
        logged_in(sandbox, registry)
        argv = [
            "push",
            "--plain-http",
            registry.host,
            f"oci:{layout}:v1",
            f"{registry.host}/app:v1",
        ]
        expect(run_bounded(argv, sandbox=sandbox, wall=60), 0)
    assert len(other.seen) == len(artifact.blobs) - 1  # every blob but the manifest
    assert all(seen.authorization is None for seen in other.seen)


def test_a_blob_redirect_loop_is_a_registry_error(
    sandbox: Path, artifact: Artifact, other: LyingRegistry
) -> None:
    with LyingRegistry() as registry:
        other.script = lambda seen: redirect(f"{registry.url}/v2/app/blobs/{artifact.layer}")
        registry.script = serving(artifact, blob=lambda seen: redirect(f"{other.url}/b"))
        outcome = run_bounded(
            pull(registry), sandbox=sandbox, may_write=[sandbox / "modules"], wall=60
        )
    expect(outcome, 3, says="redirect loop")
    assert not (sandbox / "modules").exists() or not any((sandbox / "modules").iterdir())


def test_a_redirect_to_a_local_file_is_refused(sandbox: Path, artifact: Artifact) -> None:
    blob_moved = lambda seen: redirect("file:///etc/passwd")  # noqa: E731
    with LyingRegistry(serving(artifact, blob=blob_moved)) as registry:
        outcome = run_bounded(
            pull(registry), sandbox=sandbox, may_write=[sandbox / "modules"], wall=60
        )
    expect(outcome, 3, says="refused")


# -- a registry that trickles ------------------------------------------------------------------


def test_inspect_of_a_trickled_manifest_ends_at_the_configured_deadline(
    sandbox: Path, artifact: Artifact
) -> None:
    def trickle(seen: Seen) -> Reply:
        reply = serving(artifact)(seen)
        reply.trickle = 0.5  # the whole manifest would take minutes
        return reply

    with LyingRegistry(trickle, trickle_limit=80) as registry:
        argv = ["inspect", "--plain-http", registry.host, f"{registry.host}/app:v1"]
        outcome = run_bounded(argv, sandbox=sandbox, env={"WASMCTL_REGISTRY_TIMEOUT": "2"}, wall=60)
    expect(outcome, 3, says="deadline")
    assert "WASMCTL_REGISTRY_TIMEOUT" in outcome.stderr


def test_pull_of_a_trickled_blob_falls_below_the_minimum_rate(
    sandbox: Path, artifact: Artifact
) -> None:
    layer = artifact.blobs[artifact.layer]
    slow = lambda seen: Reply(200, body=layer, trickle=0.3)  # noqa: E731
    with LyingRegistry(serving(artifact, blob=slow), trickle_limit=80) as registry:
        outcome = run_bounded(
            pull(registry),
            sandbox=sandbox,
            may_write=[sandbox / "modules"],
            env={"WASMCTL_REGISTRY_TIMEOUT": "2", "WASMCTL_REGISTRY_MIN_RATE": "1000"},
            wall=60,
        )
    expect(outcome, 3, says="deadline")


def test_a_bad_timeout_setting_is_a_usage_error(sandbox: Path, artifact: Artifact) -> None:
    with LyingRegistry(serving(artifact)) as registry:
        argv = ["inspect", "--plain-http", registry.host, f"{registry.host}/app:v1"]
        outcome = run_bounded(argv, sandbox=sandbox, env={"WASMCTL_REGISTRY_TIMEOUT": "soon"})
    expect(outcome, 2, says="WASMCTL_REGISTRY_TIMEOUT")


# -- answers without end -----------------------------------------------------------------------


def test_referrer_pages_that_point_back_are_a_registry_error(
    sandbox: Path, artifact: Artifact
) -> None:
    index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": []}).encode()  # fmt: skip
    plain = serving(artifact)

    def script(seen: Seen) -> Reply:
        if "/referrers/" in seen.path:
            return Reply(200, {"Link": f'<{seen.path}>; rel="next"'}, index)
        return plain(seen)

    with LyingRegistry(script) as registry:
        argv = ["inspect", "--plain-http", registry.host, f"{registry.host}/app:v1"]
        outcome = run_bounded(argv, sandbox=sandbox, wall=60)
    expect(outcome, 3, says="loop")


def test_a_huge_authentication_challenge_is_a_registry_error(
    sandbox: Path, artifact: Artifact
) -> None:
    challenge = "Bearer " + "realm" * 15_000
    with LyingRegistry(lambda seen: Reply(401, {"WWW-Authenticate": challenge})) as registry:
        argv = ["inspect", "--plain-http", registry.host, f"{registry.host}/app:v1"]
        outcome = run_bounded(argv, sandbox=sandbox, wall=60, cpu=20)
    expect(outcome, 3, says="challenge")

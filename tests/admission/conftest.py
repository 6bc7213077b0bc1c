"""Artifacts in the real loopback registry for `gate serve`, built once per session: a
key-signed clean module (passes), the same module unsigned (denied: signature), a
key-signed socket server (denied: scan), and an ordinary container image (not Wasm)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.integration.test_gate import push_ordinary_image
from tests.registry import RegistryServer, unique_repo
from wasmctl.cli import run
from wasmctl.oci.registry import RegistryClient
from wasmctl.sign.keys import generate_key_pair, write_key_pair

EXAMPLES = Path(__file__).parents[2] / "examples" / "modules"


@dataclass(frozen=True)
class Artifacts:
    host: str
    signed: str  # passes
    unsigned: str  # denied: no signature
    socket: str  # denied: the no-network scan
    plain: str  # an ordinary linux/amd64 image
    key: Path  # the private key that signed them
    policy: Path  # signatures by that key, the no-network scan, runtime class crun-wasm
    workdir: Path


@pytest.fixture(scope="session")
def artifacts(
    registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Artifacts]:
    work = tmp_path_factory.mktemp("admission")
    host = registry.host
    # the build's environment, for the build only: the fixture lives for the session, and
    # other tests must not inherit its auth file
    saved = {k: os.environ.get(k) for k in ("COSIGN_PASSWORD", "REGISTRY_AUTH_FILE")}
    os.environ["COSIGN_PASSWORD"] = ""
    os.environ["REGISTRY_AUTH_FILE"] = str(work / "auth.json")
    try:
        made = _build(host, work)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    yield made


def _build(host: str, work: Path) -> Artifacts:
    private, public = write_key_pair(generate_key_pair(b""), work / "cosign")
    repo = unique_repo("admission")
    made = Artifacts(
        host=host,
        signed=f"{host}/{repo}/hello:v1",
        unsigned=f"{host}/{repo}/unsigned:v1",
        socket=f"{host}/{repo}/echo:v1",
        plain=f"{host}/{repo}/plain:v1",
        key=private,
        policy=work / "gate.yaml",
        workdir=work,
    )
    plain = ["--plain-http", host]
    for ref, module, signed in (
        (made.signed, "hello.wasm", True),
        (made.unsigned, "hello.wasm", False),
        (made.socket, "echo_server.wasm", True),
    ):
        # the annotation makes each a digest of its own (builds are reproducible)
        built = ["build", str(EXAMPLES / module), "-t", ref, "-a", f"test.ref={ref}"]
        assert run([*built, *plain]) == 0
        if signed:
            assert run(["sign", "--key", str(private), ref, *plain]) == 0
    with RegistryClient(host, plain_http=True) as client:
        push_ordinary_image(client, f"{repo}/plain", "v1")
    write_policy(made.policy, public.name)
    return made


def write_policy(path: Path, key: str, **changes: object) -> Path:
    doc: dict[str, object] = {
        "version": 1,
        "runtimeClasses": ["crun-wasm"],
        "signatures": {"keys": [key]},
        "scan": {"presets": ["no-network"]},
    }
    doc.update(changes)
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path

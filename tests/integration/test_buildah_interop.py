"""buildah's `wasi/wasm` image and wasmctl's `--format compat` build of one module agree.

buildah (Debian 12's 1.28, no daemon) builds `FROM scratch` + `COPY NAME.wasm /` +
`ENTRYPOINT ["/NAME.wasm"]` for `--platform wasi/wasm` into an OCI layout; wasmctl must
recognise that image as `compat` and its `no-network` scan must be the very report it gives
for its own compat build of the same module: same imports, decisions, findings, exit code.

Two ways into the layout, because they give different layers: `buildah build -t oci:DIR:TAG`
commits straight to the layout with an *uncompressed* tar layer
(`application/vnd.oci.image.layer.v1.tar`), while `buildah build` into storage then
`buildah push ... oci:DIR:TAG` writes a gzipped one (`...tar+gzip`), as wasmctl does.

Everything buildah reads or writes lives under tmp_path: vfs storage (`--root`/`--runroot`),
the signature policy, registries.conf, containers.conf (CNI backend, network config dir
here) and TMPDIR; the machine's storage and /etc are never touched. The one exception is
containers/image's blob-info cache, which root's processes always keep in
/var/lib/containers/cache/ (no flag moves it; it is a digest cache, not image storage).

buildah missing is a failure, not a skip: scripts/setup --test installs it (apt).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from wasmctl.cli import run

EXAMPLES = Path(__file__).parents[2] / "examples" / "modules"
NOT_INSTALLED = (
    "buildah is not installed: `apt-get install -y buildah` (Debian 12 ships buildah 1.28); "
    "scripts/setup --test installs it"
)
# Environment variables of buildah and containers/* that would change what is built or read.
FOREIGN_ENV = ("BUILDAH_", "CONTAINERS_", "REGISTRIES_CONFIG_PATH", "STORAGE_")
# What buildah 1.28 writes on each way into the layout (wasmctl reads both)
LAYER_TYPES = {
    "build": "application/vnd.oci.image.layer.v1.tar",
    "push": "application/vnd.oci.image.layer.v1.tar+gzip",
}
NETWORK_IMPORTS = {"sock_accept", "sock_recv", "sock_send", "sock_shutdown"}

Buildah = Callable[..., str]


@pytest.fixture
def buildah(tmp_path: Path) -> Buildah:
    """A function running buildah on private storage and configuration under tmp_path."""
    executable = shutil.which("buildah")
    if executable is None:
        pytest.fail(NOT_INSTALLED)
    home = tmp_path / "buildah"
    for sub in ("root", "runroot", "tmp", "net", "registries.d"):
        (home / sub).mkdir(parents=True)
    policy = home / "policy.json"
    policy.write_text('{"default": [{"type": "insecureAcceptAnything"}]}\n', encoding="utf-8")
    registries = home / "registries.conf"
    registries.write_text("unqualified-search-registries = []\n", encoding="utf-8")
    containers_conf = home / "containers.conf"
    containers_conf.write_text(
        f'[network]\nnetwork_backend = "cni"\nnetwork_config_dir = "{home / "net"}"\n',
        encoding="utf-8",
    )
    storage_conf = home / "storage.conf"
    storage_conf.write_text(
        f'[storage]\ndriver = "vfs"\ngraphroot = "{home / "root"}"\n'
        f'runroot = "{home / "runroot"}"\n',
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_ENV)}
    env.update(
        CONTAINERS_CONF=str(containers_conf),  # when set, the only containers.conf read
        CONTAINERS_STORAGE_CONF=str(storage_conf),
        CONTAINERS_REGISTRIES_CONF=str(registries),
        TMPDIR=str(home / "tmp"),  # buildah stages layers in $TMPDIR, else /var/tmp
    )
    global_flags = [
        "--root", str(home / "root"),
        "--runroot", str(home / "runroot"),
        "--storage-driver", "vfs",
        "--registries-conf", str(registries),
        "--registries-conf-dir", str(home / "registries.d"),
        "--short-name-alias-conf", str(home / "short-name-aliases.conf"),
    ]  # fmt: skip
    command_flags = {"build": ["--signature-policy", str(policy)],
                     "push": ["--signature-policy", str(policy)]}  # fmt: skip

    def buildah_run(command: str, *args: str) -> str:
        argv = [executable, *global_flags, command, *command_flags.get(command, []), *args]
        try:
            proc = subprocess.run(
                argv, capture_output=True, text=True, env=env, timeout=120, check=False
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"buildah {command} did not finish in 120 s: {argv}")
        if proc.returncode != 0:
            pytest.fail(
                f"buildah {command} exited {proc.returncode}\nargv: {argv}\n"
                f"stderr:\n{proc.stderr[-4000:]}"
            )
        return proc.stdout

    return buildah_run


def buildah_image(buildah: Buildah, module: Path, route: str, tmp_path: Path) -> str:
    """buildah's `wasi/wasm` image of `module`, in an OCI layout; returns its reference."""
    context = tmp_path / "context"
    context.mkdir()
    shutil.copy2(module, context / module.name)
    containerfile = context / "Containerfile"
    containerfile.write_text(
        f'FROM scratch\nCOPY {module.name} /\nENTRYPOINT ["/{module.name}"]\n', encoding="utf-8"
    )
    ref = f"oci:{tmp_path / 'buildah-layout'}:{route}"
    build = [
        "--isolation", "chroot",
        "--platform", "wasi/wasm",
        "--timestamp", "0",
        "--format", "oci",
        "--layers=false",
        "--pull=never",
        "--quiet",
        "-f", str(containerfile),
    ]  # fmt: skip
    if route == "build":  # straight into the layout: an uncompressed tar layer
        buildah("build", *build, "-t", ref, str(context))
    else:  # into (private) storage, then pushed to the layout: a gzipped layer
        name = "localhost/wasmctl-interop:latest"
        buildah("build", *build, "-t", name, str(context))
        buildah("push", "--quiet", name, ref)
    return ref


def wasmctl_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    capsys.readouterr()
    code = run(list(argv))
    document: dict[str, Any] = json.loads(capsys.readouterr().out)
    return code, document


def without_reference(report: dict[str, Any], ref: str) -> dict[str, Any]:
    """The scan report with the image reference cut from each target's path."""
    targets = []
    for target in report["targets"]:
        assert target["path"].startswith(f"{ref}#"), target["path"]
        targets.append({**target, "path": target["path"][len(ref) :]})
    return {**report, "targets": targets}


def decisions(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Per target: what was imported, how each import was decided, and what was found."""
    return [
        {
            "module in the layer": target["path"].split("#", 1)[1],
            "imports": [
                (i["location"], i["module"], i["name"], i["kind"], i["capability"], i["decision"])
                for i in target["imports"]
            ],
            "findings": [
                (f["rule"], f["level"], f["location"], f["module"], f["name"], f["capability"])
                for f in target["findings"]
            ],
        }
        for target in report["targets"]
    ]


@pytest.mark.parametrize("route", ["build", "push"])
@pytest.mark.parametrize(
    ("module", "exit_code", "denied"),
    [
        pytest.param("echo_server.wasm", 1, NETWORK_IMPORTS, id="echo_server"),
        pytest.param("hello.wasm", 0, set(), id="hello"),
    ],
)
def test_buildah_image_is_compat_and_scans_like_wasmctl_compat(
    buildah: Buildah,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    module: str,
    exit_code: int,
    denied: set[str],
    route: str,
) -> None:
    source = EXAMPLES / module
    theirs = buildah_image(buildah, source, route, tmp_path)
    ours = f"oci:{tmp_path / 'wasmctl-layout'}:compat"
    assert run(["build", "--format", "compat", str(source), "-t", ours]) == 0

    # (a) wasmctl recognises buildah's image as a compat wasi/wasm image ...
    code, info = wasmctl_json(capsys, "inspect", "--format", "json", theirs)
    assert code == 0
    assert info["format"] == "compat"
    (layer,) = info["layers"]
    assert layer["wasm"] is True
    assert layer["mediaType"] == LAYER_TYPES[route]
    # ... whose config says what ours says to a runtime
    _, own_info = wasmctl_json(capsys, "inspect", "--format", "json", ours)
    for doc in (info, own_info):
        assert (doc["config"]["architecture"], doc["config"]["os"]) == ("wasm", "wasi")
        assert doc["config"]["config"]["Entrypoint"] == [f"/{module}"]

    # (b) and scans exactly as wasmctl's own compat build of the same module
    their_code, their_report = wasmctl_json(
        capsys, "scan", "--preset", "no-network", "--format", "json", theirs
    )
    our_code, our_report = wasmctl_json(
        capsys, "scan", "--preset", "no-network", "--format", "json", ours
    )
    assert (their_code, our_code) == (exit_code, exit_code)
    assert decisions(their_report) == decisions(our_report)
    assert without_reference(their_report, theirs) == without_reference(our_report, ours)
    (target,) = their_report["targets"]
    assert target["path"] == f"{theirs}#/{module}"
    assert {f["name"] for f in target["findings"] if f["level"] == "error"} == denied

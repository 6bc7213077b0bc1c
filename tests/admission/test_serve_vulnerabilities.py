"""`gate serve` with the policy's `vulnerabilities` check: the database is read with the
policy, not per request, and a change of its files reloads it and forgets the verdicts."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from tests.admission import reviews
from tests.admission.serving import running
from tests.admission.test_serve_cache_and_faults import post
from tests.registry import RegistryServer, unique_repo
from tests.unit.audit.test_findings import rust
from wasmctl.cli import run

OSV = Path(__file__).parents[3] / "shared" / "testdata" / "osv"


def crates_database(directory: Path, *, without: str = "") -> Path:
    """The real crates.io records as `<dir>/crates.io/all.zip`, one of them left out."""
    (directory / "crates.io").mkdir(parents=True, exist_ok=True)
    out = io.BytesIO()
    with (
        zipfile.ZipFile(OSV / "crates.io" / "all.zip") as real,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as kept,
    ):
        for name in real.namelist():
            if name != f"{without}.json":
                kept.writestr(name, real.read(name))
    archive = directory / "crates.io" / "all.zip"
    partial = archive.with_suffix(".part")
    partial.write_bytes(out.getvalue())
    partial.replace(archive)  # as `audit db update` replaces it: whole, at once
    return archive


def test_a_vulnerable_module_is_denied_until_the_database_changes(
    tmp_path: Path, registry: RegistryServer
) -> None:
    image = f"{registry.host}/{unique_repo('vulnerable')}/regex:v1"
    module = rust(tmp_path, {"regex": "1.5.4"})
    assert run(["build", str(module), "-t", image, "--plain-http", registry.host]) == 0
    database = tmp_path / "osv"
    crates_database(database)
    policy = tmp_path / "gate.yaml"
    policy.write_text(
        "version: 1\nruntimeClasses: [crun-wasm]\n"
        f"vulnerabilities:\n  failOn: high\n  database: {database}\n",
        encoding="utf-8",
    )
    review = reviews.pod_create(image=image, runtime_class="crun-wasm")
    with running(tmp_path / "server", policy, "--plain-http", registry.host) as server:
        denied = post(server, review)
        assert denied["allowed"] is False
        assert "RUSTSEC-2022-0013" in denied["status"]["message"]
        assert post(server, review)["allowed"] is False
        assert server.audit()[-1]["cache"] == "hit"  # no second audit, no second load
        crates_database(database, without="RUSTSEC-2022-0013")
        assert server.wait_for("wasmctl_reloads_total", 1, what="policy", result="ok") == 1
        admitted = post(server, review)
        assert admitted["allowed"] is True, (admitted, server.audit()[-1], server.stderr())
        assert server.audit()[-1]["cache"] == "miss"

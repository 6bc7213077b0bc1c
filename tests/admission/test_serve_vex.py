"""`gate serve` with the policy's `vulnerabilities.vex` files: read with the policy, not per
request, and a change of one reloads the policy and forgets the verdicts (as a change of
the database does, tests/admission/test_serve_vulnerabilities.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tests.admission import reviews
from tests.admission.serving import running
from tests.admission.test_serve_cache_and_faults import post
from tests.registry import RegistryServer, unique_repo
from tests.unit.audit.test_findings import rust
from tests.unit.audit.test_vex import REGEX, document, sha256, statement
from wasmctl.cli import run

OSV = Path(__file__).parents[3] / "shared" / "testdata" / "osv"


def write_vex(path: Path, doc: Any) -> None:
    """Replaced whole, at once, as a deployment tool or a ConfigMap update does."""
    partial = path.with_suffix(".part")
    partial.write_text(json.dumps(doc), encoding="utf-8")
    os.replace(partial, path)


def test_a_changed_vex_file_reloads_the_policy_and_admits_what_it_clears(
    tmp_path: Path, registry: RegistryServer
) -> None:
    image = f"{registry.host}/{unique_repo('vex')}/regex:v1"
    module = rust(tmp_path, {"regex": "1.5.4"})
    assert run(["build", str(module), "-t", image, "--plain-http", registry.host]) == 0
    product = [{"@id": "module", "hashes": {"sha-256": sha256(module)}}]
    vex = tmp_path / "app.openvex.json"
    write_vex(vex, document(statement(REGEX, product, "under_investigation")))
    policy = tmp_path / "gate.yaml"
    policy.write_text(
        "version: 1\nruntimeClasses: [crun-wasm]\n"
        f"vulnerabilities:\n  failOn: high\n  database: {OSV}\n  vex: [{vex.name}]\n",
        encoding="utf-8",
    )
    review = reviews.pod_create(image=image, runtime_class="crun-wasm")
    with running(tmp_path / "server", policy, "--plain-http", registry.host) as server:
        denied = post(server, review)
        assert denied["allowed"] is False
        assert "RUSTSEC-2022-0013" in denied["status"]["message"]
        assert "VEX under_investigation" in denied["status"]["message"]
        assert post(server, review)["allowed"] is False
        assert server.audit()[-1]["cache"] == "hit"
        cleared = statement(REGEX, product, timestamp="2026-02-01T00:00:00Z")
        write_vex(vex, document(statement(REGEX, product, "under_investigation"), cleared))
        assert server.wait_for("wasmctl_reloads_total", 1, what="policy", result="ok") == 1
        admitted = post(server, review)
        assert admitted["allowed"] is True, (admitted, server.audit()[-1], server.stderr())
        assert server.audit()[-1]["cache"] == "miss"
        # a VEX file that no longer reads leaves the policy in force
        vex.write_text("{", encoding="utf-8")
        assert server.wait_for("wasmctl_reloads_total", 1, what="policy", result="error") == 1
        assert post(server, review)["allowed"] is True

"""What each command imports, and how long that takes: `python -X importtime` per command.

    python benchmarks/import_times.py [--runs 7] [--json FILE]

Runs wasmctl's console script (the real file, never a pyenv shim) under `-X importtime`
for: `--version`, `--help`, `push --help`, `pull` (a 280-byte module from a loopback
docker-registry, as `tests/registry.py` starts it), `scan --preset no-network` and `sbom`
in both formats (of examples/modules/hello.wasm). For each, the median over `--runs` fresh
processes of: all imports after start-up (`site` and what it imports are left out: on this
machine a `.pth` file imports certifi there, which is neither wasmctl's nor its
libraries'), and the *self* time of each group of packages below (self times add up; a
cumulative time would count rich twice when httpx imports it). Also lists, from one run,
which heavy groups were imported at all.

Run `python -m compileall -q wasmctl` first: this machine sets PYTHONDONTWRITEBYTECODE=1,
and an installed wheel would have its .pyc files. Run by hand, never by the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HELLO = ROOT / "examples" / "modules" / "hello.wasm"

GROUPS: dict[str, tuple[str, ...]] = {
    "wasmctl": ("wasmctl",),
    "typer": ("typer", "shellingham", "annotated_doc"),
    "pydantic": ("pydantic", "pydantic_core", "annotated_types", "typing_inspection"),
    "rich, pygments, markdown": ("rich", "pygments", "markdown_it", "mdurl"),
    "click (httpx's CLI)": ("click",),
    "httpx, httpcore, h11": ("httpx", "httpcore", "h11", "idna", "certifi"),
    "trio, anyio": ("trio", "anyio", "sniffio", "outcome", "attr", "attrs", "sortedcontainers"),
    "ssl": ("ssl", "_ssl"),
    "yaml": ("yaml", "_yaml"),
    "jsonschema, rfc3987, lark": (
        "jsonschema", "rfc3987_syntax", "lark", "referencing", "rpds",
        "jsonschema_specifications", "rfc3339_validator", "rfc3986_validator",
        "webcolors", "fqdn", "isoduration", "uri_template", "jsonpointer",
    ),
    "jsonschema_rs": ("jsonschema_rs",),
    "cyclonedx": ("cyclonedx", "py_serializable", "license_expression", "packageurl", "defusedxml"),
    "spdx": ("spdx_tools", "beartype", "uritools", "xmltodict", "rdflib", "semantic_version"),
    "crypto, sigstore": ("cryptography", "sigstore", "nacl", "_cffi_backend"),
}  # fmt: skip


def parse(stderr: str) -> list[tuple[int, str, int, int]]:
    """(depth, name, self µs, cumulative µs) per `-X importtime` line, in print order."""
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        head, cum, tail = line[len("import time:") :].split("|")
        depth = (len(tail) - len(tail.lstrip(" ")) - 1) // 2
        rows.append((depth, tail.strip(), int(head), int(cum)))
    return rows


def measure(rows: list[tuple[int, str, int, int]]) -> dict[str, object]:
    # Print order is post-order: a module's line follows its children's. Start-up (encodings,
    # `site` and all that it imports) ends with the top-level `site` line.
    start = next((i + 1 for i, r in enumerate(rows) if r[0] == 0 and r[1] == "site"), 0)
    after = rows[start:]
    groups = dict.fromkeys(GROUPS, 0)
    seen = dict.fromkeys(GROUPS, False)
    for _, name, self_us, _ in after:
        top = name.split(".")[0]
        for group, packages in GROUPS.items():
            if top in packages:
                groups[group] += self_us
                seen[group] = True
    return {
        "total_us": sum(cum for depth, _, _, cum in after if depth == 0),
        "groups_us": groups,
        "imported": seen,
    }


def commands(host: str | None) -> dict[str, list[str]]:
    cases = {
        "--version": ["--version"],
        "--help": ["--help"],
        "push --help": ["push", "--help"],
        "scan": ["scan", "--preset", "no-network", str(HELLO)],
        "sbom (CycloneDX)": ["sbom", "--format", "cyclonedx-json", str(HELLO)],
        "sbom (SPDX)": ["sbom", "--format", "spdx-json", str(HELLO)],
    }
    if host:
        cases["pull"] = ["pull", "--plain-http", host, f"{host}/bench/hello:v1", "-o", "{out}"]
    return cases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--no-registry", action="store_true", help="skip pull")
    args = parser.parse_args()

    scripts = Path(sysconfig.get_path("scripts"))
    wasmctl = str(scripts / "wasmctl")
    env = {**os.environ, "COLUMNS": "100", "NO_COLOR": "1"}
    env.pop("PYTHONPROFILEIMPORTTIME", None)

    with tempfile.TemporaryDirectory() as tmp, _registry(Path(tmp), args.no_registry) as host:
        if host:
            layout = Path(tmp) / "layout"
            build = ["build", "--format", "wasm", str(HELLO), "-t", f"oci:{layout}:v1"]
            push = ["push", "--plain-http", host, f"oci:{layout}:v1", f"{host}/bench/hello:v1"]
            for argv in (build, push):
                subprocess.run([wasmctl, *argv], check=True, capture_output=True, env=env)
        results: dict[str, dict[str, object]] = {}
        for label, argv in commands(host).items():
            samples = []
            for run in range(args.runs):
                out = Path(tmp) / f"out-{run}"
                cmd = [sys.executable, "-X", "importtime", wasmctl,
                       *(a.replace("{out}", str(out)) for a in argv)]  # fmt: skip
                done = subprocess.run(cmd, capture_output=True, text=True, env=env)
                if done.returncode not in (0, 1):
                    sys.exit(f"{label}: exit {done.returncode}\n{done.stderr[-2000:]}")
                samples.append(measure(parse(done.stderr)))
            results[label] = {
                "total_ms": statistics.median(s["total_us"] for s in samples) / 1000,  # type: ignore[misc]
                "groups_ms": {
                    g: statistics.median(s["groups_us"][g] for s in samples) / 1000  # type: ignore[index]
                    for g in GROUPS
                },
                "imported": [g for g in GROUPS if samples[0]["imported"][g]],  # type: ignore[index]
            }
    print(f"-X importtime, median of {args.runs} processes; ms of import after start-up")
    print(f"{'command':<18} {'total':>7}  heaviest groups (self time, ms)")
    for label, r in results.items():
        groups = sorted(r["groups_ms"].items(), key=lambda kv: -kv[1])  # type: ignore[attr-defined]
        shown = ", ".join(f"{g} {ms:.0f}" for g, ms in groups if ms >= 1)
        print(f"{label:<18} {r['total_ms']:7.0f}  {shown}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


class _registry:
    """A loopback docker-registry for `pull` (tests/registry.py), or none."""

    def __init__(self, where: Path, skip: bool) -> None:
        self.where, self.skip, self._cm = where, skip, None

    def __enter__(self) -> str | None:
        if self.skip:
            return None
        sys.path.insert(0, str(ROOT))
        from tests.registry import run_registry

        self._cm = run_registry(self.where / "registry")
        return self._cm.__enter__().host  # type: ignore[no-any-return]

    def __exit__(self, *exc: object) -> None:
        if self._cm is not None:
            self._cm.__exit__(*exc)


if __name__ == "__main__":
    sys.exit(main())

"""In-process timing of the scan library on one file, without interpreter start-up.

    python benchmarks/inprocess_scan.py path/to/python.wasm [--runs 200] [--warmup 10]
                                                             [--json results.json]

Times, with `time.perf_counter_ns`, after a warm-up:

* `scan_file(Path(p), [load_preset("no-network")])`: what `wasmctl scan` does per file
  (map the file, parse it, evaluate every import against the policy), minus the CLI and
  the rendering of the report. `load_preset` is called inside the timed region, as a caller
  would; it is cached after the first call, so it costs a dict look-up there.
* `wasmctl.wasm.parse_file(p)` alone, to split the cost between the reader and the policy
  evaluation.

Before timing, it checks that the scan is a real denial (verdict DENY because of a
network import), so the numbers are those of the full evaluation path and not of an early
exit on an unreadable file. Run by hand; the test suite never runs it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _percentile(sorted_ns: list[int], q: float) -> float:
    """Linear-interpolated percentile (q in [0, 1]) of an already sorted list."""
    if len(sorted_ns) == 1:
        return float(sorted_ns[0])
    pos = q * (len(sorted_ns) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_ns) - 1)
    return sorted_ns[lo] + (sorted_ns[hi] - sorted_ns[lo]) * (pos - lo)


def _time(fn: Callable[[], object], runs: int, warmup: int) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    samples: list[int] = []
    clock = time.perf_counter_ns
    for _ in range(runs):
        start = clock()
        fn()
        samples.append(clock() - start)
    samples.sort()
    ms = 1e-6
    return {
        "runs": runs,
        "median_ms": statistics.median(samples) * ms,
        "p90_ms": _percentile(samples, 0.90) * ms,
        "min_ms": samples[0] * ms,
        "max_ms": samples[-1] * ms,
        "mean_ms": statistics.fmean(samples) * ms,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wasm", type=Path, help="the module to scan (python.wasm)")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    path: Path = args.wasm

    # The first call, cold: the imports of the library and the first parse and preset
    # load. Reported for information only; the target is on the warm median.
    t0 = time.perf_counter_ns()
    from wasmctl.scan import Verdict, load_preset, scan_file
    from wasmctl.wasm import parse_file

    t1 = time.perf_counter_ns()
    report = scan_file(path, [load_preset("no-network")])
    t2 = time.perf_counter_ns()

    # Guard: the benchmark must measure a real denial of a network import.
    if report.verdict != Verdict.DENY:
        print(
            f"error: expected verdict deny for {path}, got {report.verdict} "
            f"(error={report.error!r})",
            file=sys.stderr,
        )
        return 2
    network = [f for f in report.findings if f.capability and f.capability.startswith("network")]
    if not network:
        print("error: the denial is not for a network import", file=sys.stderr)
        return 2
    module = parse_file(path)

    def scan() -> object:
        return scan_file(path, [load_preset("no-network")])

    def parse() -> object:
        return parse_file(path)

    results: dict[str, Any] = {
        "file": str(path),
        "size_bytes": path.stat().st_size,
        "imports": len(module.imports),
        "exports": len(module.exports),
        "denied_network_imports": len(network),
        "cold": {
            "import_ms": (t1 - t0) * 1e-6,
            "first_scan_ms": (t2 - t1) * 1e-6,
        },
        "scan_file": _time(scan, args.runs, args.warmup),
        "parse_file": _time(parse, args.runs, args.warmup),
    }
    s, p = results["scan_file"], results["parse_file"]
    results["evaluate_share_of_scan"] = max(0.0, 1 - p["median_ms"] / s["median_ms"])

    print(
        f"{path.name}: {results['size_bytes']:,} bytes, {results['imports']} imports, "
        f"{results['exports']} exports, verdict {report.verdict} "
        f"({len(network)} network imports denied)"
    )
    print(
        f"  cold: import wasmctl.scan {results['cold']['import_ms']:.1f} ms, "
        f"first scan {results['cold']['first_scan_ms']:.1f} ms"
    )
    for name, r in (("scan_file", s), ("parse_file", p)):
        print(
            f"  {name:<10} median {r['median_ms']:7.3f} ms   p90 {r['p90_ms']:7.3f} ms   "
            f"min {r['min_ms']:7.3f} ms   ({r['runs']} runs)"
        )
    print(
        f"  policy evaluation ~ {results['evaluate_share_of_scan']:.0%} of scan_file "
        "(median scan - median parse)"
    )
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# `wasmctl sbom` of a small module (examples/modules/hello.wasm, 280 bytes) in both formats,
# side by side in one hyperfine run (issue 15: <= 0.5 s each, the same bytes out). Before
# timing, each format's output is checked to be the same bytes twice over and valid JSON.
# Run by hand:  bash benchmarks/sbom_small.sh    (RUNS, default 10)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WORK="$HERE/.work"
mkdir -p "$WORK"
# shellcheck source=benchmarks/lib.sh
source "$HERE/lib.sh"
need_apt hyperfine
RUNS=${RUNS:-10}
MODULE="$HERE/../examples/modules/hello.wasm"
export SOURCE_DATE_EPOCH=1700000000   # the same document every run
for fmt in cyclonedx-json spdx-json; do
    "$WASMCTL" sbom --format "$fmt" "$MODULE" >"$WORK/sbom-small.$fmt.1"
    "$WASMCTL" sbom --format "$fmt" "$MODULE" >"$WORK/sbom-small.$fmt.2"
    cmp -s "$WORK/sbom-small.$fmt.1" "$WORK/sbom-small.$fmt.2" || die "$fmt: not reproducible"
    "$PY" -m json.tool "$WORK/sbom-small.$fmt.1" >/dev/null || die "$fmt: not JSON"
    sha256sum "$WORK/sbom-small.$fmt.1"
done
hyperfine -N --warmup 2 --min-runs "$RUNS" --style basic --export-json "$WORK/hyperfine-sbom-small.json" \
    -n "sbom cyclonedx-json" "$(q "$WASMCTL") sbom --format cyclonedx-json $(q "$MODULE")" \
    -n "sbom spdx-json" "$(q "$WASMCTL") sbom --format spdx-json $(q "$MODULE")"
"$PY" - "$WORK/hyperfine-sbom-small.json" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print(f"{r['command']:<22} median {r['median']:.3f} s  (target <= 0.5 s: "
          f"{'PASS' if r['median'] <= 0.5 else 'FAIL'})  CPU {r['user'] + r['system']:.3f} s")
PY

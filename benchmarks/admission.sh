#!/usr/bin/env bash
# `wasmctl gate serve` under load, as kube-apiserver calls it: run by hand, never by the
# test suite. A wrapper for benchmarks/admission.py (and admission_stack.py); their
# docstrings say what is measured and against which targets.
#
#   bash benchmarks/admission.sh                 # the main benchmark, about 5 minutes
#   QUICK=1 bash benchmarks/admission.sh         # smaller counts: a smoke run (about 1 minute)
#   STACK=1 bash benchmarks/admission.sh         # then the server-stack comparison (+3 minutes)
#
# Results: tables on stdout, benchmarks/.work/admission-results.json (and
# admission-stack-results.json); the servers' audit logs in benchmarks/.work/admission/.
#
# Needs: docker-registry (installed with apt-get if missing: run as root or install it
# first). STACK=1 needs uvicorn, httptools, uvloop and hypercorn, benchmark-only: they are
# pip-installed if missing, into the interpreter that runs wasmctl.
# Exit status: 0 when everything ran, whatever the verdicts (a FAIL is a result).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WORK="$HERE/.work"
mkdir -p "$WORK"

# shellcheck source=benchmarks/lib.sh
source "$HERE/lib.sh"

if [[ ! -x /usr/bin/docker-registry ]]; then
    log "installing docker-registry (apt-get)"
    apt-get update && apt-get install -y docker-registry
fi

# Loopback only: no proxy of the caller's (httpx honours one even for 127.0.0.1).
unset http_proxy https_proxy all_proxy no_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY NO_PROXY

args=()
if [[ ${QUICK:-0} == 1 ]]; then args+=(--quick); fi
"$PY" "$HERE/admission.py" "${args[@]}"

if [[ ${STACK:-0} == 1 ]]; then
    if ! "$PY" -c 'import uvicorn, httptools, uvloop, hypercorn' 2>/dev/null; then
        log "installing uvicorn, httptools, uvloop, hypercorn (pip; for the comparison only)"
        "$PY" -m pip install --quiet uvicorn httptools uvloop hypercorn
    fi
    stack=()
    if [[ ${QUICK:-0} == 1 ]]; then stack+=(--rounds 1 --requests 2000); fi
    "$PY" "$HERE/admission_stack.py" "${stack[@]}"
fi

#!/usr/bin/env bash
# `wasmctl gate` on 1 target and on 20, side by side, against a private registry: run by
# hand, never by the test suite.
#
#   bash benchmarks/gate_targets.sh
#   RUNS=5 SLOW=0 bash benchmarks/gate_targets.sh      # quicker: no slow-registry variant
#
# The registry is Debian's docker-registry (distribution 2.8), plain HTTP on a free 127.0.0.1
# port, its storage and log under benchmarks/.work/gate-targets/ (stopped at exit). Into it
# go 20 artifacts, bench/app-1:v1 ... bench/app-20:v1: examples/modules/hello.wasm built
# with a distinct annotation each (20 digests), each signed with one key and with a signed
# CycloneDX SBOM attestation. The policy asks for every check (pin: record, formats, size,
# the no-network scan, the key's signature, the SBOM attestation).
#
# 1. fast registry: the median wall time of at least RUNS (7) runs of `wasmctl gate` on 1
#    target, and on the 20 (default --jobs 8): target 20 targets <= 2.5x one. The 20 with
#    --jobs 1 are timed too, for information.
# 2. the HTTP requests one gated target costs, counted in the registry's access log
#    (distribution logs every request to stderr): for the run on 1 target and per target of
#    the run on 20 (the same, when nothing is fetched twice).
# 3. slow registry (SLOW=1, the default): the same through a loopback proxy that holds every
#    request DELAY_MS (200) ms before forwarding it (tests/faultproxy.py with a delay), at
#    least SLOW_RUNS (5) runs each: target 20 targets <= 4x one (--jobs 1 is timed once,
#    for information: one after another, 20 targets take ~45 s there).
#
# Only ratios of numbers measured in this same run are judged. Results: a table on stdout
# and benchmarks/.work/gate-targets-results.json.
#
# Needs: docker-registry (installed with apt-get if missing: run as root or install it first).
# Exit status: 0 when everything ran, whatever the verdicts (a FAIL is a result); non-zero
# when something could not be run or a gate did not pass.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORK="$HERE/.work"
mkdir -p "$WORK"

RUNS=${RUNS:-7}
SLOW=${SLOW:-1}
SLOW_RUNS=${SLOW_RUNS:-5}
DELAY_MS=${DELAY_MS:-200}
TARGETS=20
for v in "$RUNS" "$SLOW_RUNS" "$DELAY_MS"; do
    [[ $v =~ ^[0-9]+$ ]] || { echo "RUNS, SLOW_RUNS and DELAY_MS are numbers" >&2; exit 2; }
done
((RUNS >= 5 && SLOW_RUNS >= 5)) || { echo "RUNS and SLOW_RUNS: at least 5" >&2; exit 2; }

# shellcheck source=benchmarks/lib.sh
source "$HERE/lib.sh"

REGISTRY_BIN=/usr/bin/docker-registry
if [[ ! -x "$REGISTRY_BIN" ]]; then
    log "installing docker-registry (apt-get)"
    apt-get update && apt-get install -y docker-registry
fi

# Loopback only, and nothing of the caller's that would change what is measured: a proxy
# (httpx honours one even for 127.0.0.1), REGISTRY_* (overrides the registry's configuration).
unset http_proxy https_proxy all_proxy no_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY NO_PROXY
while IFS= read -r var; do unset "$var"; done < <(compgen -e | grep -E '^REGISTRY_' || true)

GT="$WORK/gate-targets"
REG_LOG="$GT/registry.log"
rm -rf "$GT"
mkdir -p "$GT/storage"

PORT=$(free_port)
HOST="127.0.0.1:$PORT"
write_registry_config "$GT/config.yml" "$PORT" "$GT/storage"

REG_PID=
cleanup() {
    if [[ -n $REG_PID ]]; then kill -TERM "$REG_PID" 2>/dev/null || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "registry: docker-registry on $HOST"
"$REGISTRY_BIN" serve "$GT/config.yml" </dev/null >>"$REG_LOG" 2>&1 &
REG_PID=$!
# wasmctl's credentials (none) in the run's directory: set only now, as the registry reads
# every REGISTRY_* variable as configuration (REGISTRY_AUTH_FILE would be `auth: file`)
export COSIGN_PASSWORD="" REGISTRY_AUTH_FILE="$GT/auth.json" DOCKER_CONFIG="$GT/docker"

# Everything else in one Python process: the artifacts (wasmctl's library and CLI in
# process), then each timed gate as its own `wasmctl` process.
"$PY" - "$ROOT" "$GT" "$HOST" "$WASMCTL" "$REG_LOG" "$RUNS" "$SLOW" "$SLOW_RUNS" \
    "$DELAY_MS" "$TARGETS" <<'EOF'
import contextlib, io, json, re, statistics, subprocess, sys, time, urllib.request
from pathlib import Path

root, work, host, wasmctl, reg_log = Path(sys.argv[1]), Path(sys.argv[2]), *sys.argv[3:6]
runs, slow, slow_runs, delay_ms, count = map(int, sys.argv[6:11])
sys.path.insert(0, str(root))
reg_log = Path(reg_log)

opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
deadline = time.monotonic() + 15
while True:
    try:
        with opener.open(f"http://{host}/v2/", timeout=1) as answer:
            if answer.status == 200:
                break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit(f"docker-registry did not answer on {host}")
        time.sleep(0.05)

from wasmctl.cli import run
from wasmctl.sign.keys import generate_key_pair, write_key_pair

def log(message: str) -> None:
    print(f"\n== {message}", file=sys.stderr, flush=True)

log(f"{count} signed, attested artifacts")
key, pub = write_key_pair(generate_key_pair(b""), work / "cosign")
hello = root / "examples" / "modules" / "hello.wasm"
refs = [f"{host}/bench/app-{i}:v1" for i in range(1, count + 1)]
plain = ["--plain-http", host]
for i, ref in enumerate(refs, 1):
    build = ["build", str(hello), "-t", ref, "--annotation", f"bench.index={i}", *plain]
    attest = ["sbom", ref, "--attest", ref, "--key", str(key), "-o", "/dev/null", *plain]
    for command in (build, ["sign", "--key", str(key), ref, *plain], attest):
        with contextlib.redirect_stdout(io.StringIO()):  # the digests each command prints
            code = run(command)
        if code != 0:
            sys.exit(f"wasmctl {' '.join(command)} failed")
policy = work / "gate.yaml"
policy.write_text(json.dumps({
    "version": 1, "pin": "record", "formats": ["wasm"], "limits": {"maxModuleBytes": 1 << 20},
    "signatures": {"keys": [pub.name]}, "attestations": [{"predicateType": "cyclonedx"}],
    "scan": {"presets": ["no-network"]},
}))

REQUEST = re.compile(r'"(GET|HEAD|PUT|POST|PATCH|DELETE) /v2/[^ ]')

def logged() -> int:
    """Requests in the registry's access log so far (`/v2/` only: the API, not the probe)."""
    return len(REQUEST.findall(reg_log.read_text(errors="replace")))

def gate(targets: list[str], via: str, jobs: int) -> list[str]:
    return [wasmctl, "gate", "-f", "json", "--policy", str(policy), "--plain-http", via,
            "-j", str(jobs), *targets]

def timed(command: list[str], times: int, warm: bool = True) -> tuple[float, int]:
    """The median wall time of `times` runs (after one warm-up), and the requests of one."""
    if warm:
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    seconds, before = [], logged()
    for _ in range(times):
        started = time.perf_counter()
        done = subprocess.run(command, stdout=subprocess.PIPE, text=True)
        seconds.append(time.perf_counter() - started)
        if done.returncode != 0:
            sys.exit(f"the gate did not pass (exit {done.returncode}): {done.stdout[-2000:]}")
    time.sleep(0.2)  # the registry writes its access log after answering
    return statistics.median(seconds), (logged() - before) // times

def on(registry: str, via: str, times: int, sequential_times: int) -> dict[str, float]:
    at = lambda rs: [r.replace(host, registry) for r in rs]  # noqa: E731
    one, one_requests = timed(gate(at(refs[:1]), via, 8), times)
    many, many_requests = timed(gate(at(refs), via, 8), times)
    sequential, _ = timed(gate(at(refs), via, 1), sequential_times, sequential_times > 1)
    return {"one": one, "many": many, "manyJobs1": sequential, "ratio": many / one,
            "ratioJobs1": sequential / one, "requestsOne": one_requests,
            "requestsPerTarget": many_requests / count}

log(f"fast registry: {runs} runs each")
results = {"targets": count, "runs": runs, "fast": on(host, host, runs, runs)}
if slow:
    from tests.faultproxy import FaultProxy

    class SlowProxy(FaultProxy):
        """Holds every request `delay_ms` before it is forwarded."""

        def _take_fault(self, method, path):  # type: ignore[no-untyped-def]
            time.sleep(delay_ms / 1000)
            return super()._take_fault(method, path)

    with SlowProxy(host) as proxy:
        log(f"slow registry ({delay_ms} ms a request, through {proxy.host}): {slow_runs} runs each")
        results["delayMs"] = delay_ms
        # --jobs 1 once only, for information: 20 targets one after another take ~45 s
        results["slow"] = on(proxy.host, proxy.host, slow_runs, 1)
        results["slow"].pop("requestsOne"), results["slow"].pop("requestsPerTarget")

(work.parent / "gate-targets-results.json").write_text(json.dumps(results, indent=2) + "\n")
rows = [("fast", 2.5)] + ([("slow", 4.0)] if slow else [])
print(f"\n{'registry':<10}{'1 target':>10}{count:>4} targets{'(-j 1)':>9}{'ratio':>8}"
      f"{'target':>8}  verdict")
for name, target in rows:
    r = results[name]
    verdict = "PASS" if r["ratio"] <= target else "FAIL"
    print(f"{name:<10}{r['one']:>9.2f}s{r['many']:>12.2f}s{r['manyJobs1']:>8.2f}s"
          f"{r['ratio']:>7.2f}x{target:>7.1f}x  {verdict}")
fast = results["fast"]
print(f"\nHTTP requests per gated target: {fast['requestsOne']} (1 target), "
      f"{fast['requestsPerTarget']:.1f} (each of {count})")
EOF

"""Why `gate serve` is asyncio streams + the standard library's ssl + h11: the same tiny
precomputed AdmissionReview answer served by each candidate stack, no gate work, called by
the same apiserver stand-in (tests/admission/apiserver.py) with the same concurrency. Run by
hand, never by the test suite.

    python benchmarks/admission_stack.py                 # about 3 minutes
    python benchmarks/admission_stack.py --rounds 1 --requests 3000   # quicker

The servers, each a subprocess on a free 127.0.0.1 port with the same trustme certificate
(SANs wasmctl-gate.wasmctl-system.svc and 127.0.0.1):

- wasmctl: wasmctl's own `Server` (wasmctl/gate/serve/server.py: asyncio streams, TLS
  with the per-handshake `sni_callback`, h11, bounded reads, idle tracking), its `_route`
  replaced by the fixed answer: exactly the I/O layer of `gate serve`, nothing else;
- wasmctl+uvloop: the same on uvloop's event loop (for information: what uvloop alone
  would change);
- uvicorn: httptools and uvloop (`http="httptools", loop="uvloop"`), a raw ASGI app;
- uvicorn-h11: uvicorn's pure-Python choice (`http="h11", loop="asyncio"`), the same app;
- hypercorn: asyncio and h11 (its HTTP/1.1 path), the same app.

Each server reads the whole request body and answers with the same bytes (the uid the client
sends is fixed, so the apiserver's checks pass). The client sends the 8-container Pod review
of benchmarks/admission.py (about 6 KB) from 16 keep-alive connections, one request after
the other on each; after a warm-up, `--requests` requests per round, `--rounds` rounds
interleaved across the servers (A B C ... A B C), and each server's numbers are the median
round by throughput. The server's CPU time per request (/proc/PID/stat) is the steadiest
number on a shared machine; latency and throughput also depend on what else runs (and the
client, one Python process, needs about 0.5 ms of CPU per request itself: past ~2,000/s it
is the limit). In the first round, each server also holds `--idle` (200) idle TLS
connections, and the RSS they cost it is shown per connection.

Needs: pip install uvicorn httptools uvloop hypercorn (benchmark-only; a server whose
packages are missing is skipped and said so). Results: a table on stdout and
benchmarks/.work/admission-stack-results.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import admission as bench  # noqa: E402

UID = "5b0e7f4c-2d3a-4c1b-9e8f-7a6d5c4b3a21"
ANSWER = json.dumps(
    {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": UID, "allowed": True},
    },
    separators=(",", ":"),
).encode()
STACKS = {
    "wasmctl": (),
    "wasmctl+uvloop": ("uvloop",),
    "uvicorn": ("uvicorn", "httptools", "uvloop"),
    "uvicorn-h11": ("uvicorn",),
    "hypercorn": ("hypercorn",),
}
_LISTENING = re.compile(r"listening on (\d+)")


# -- the servers (run in a subprocess: `--serve STACK`) ------------------------------------


def listening(port: int) -> None:
    print(f"listening on {port}", file=sys.stderr, flush=True)


def bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    return sock


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The fixed answer, after the whole body: the least an ASGI app can do."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(ANSWER))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": ANSWER})


def serve_wasmctl(cert: str, key: str) -> None:
    from wasmctl.gate.serve.metrics import Metrics
    from wasmctl.gate.serve.server import Certificates, Server, _Reply, install_signals

    class Stub:
        """What `Server` reads of the admission: always ready, nothing to reload."""

        ready = True
        load_error = None

        async def reload(self) -> bool:
            return False

    class Fixed(Server):
        async def _route(
            self, method: str, path: str, query: str, body: bytes, received: float
        ) -> Any:
            return _Reply(200, ANSWER)

    async def main() -> None:
        metrics = Metrics()
        certificates = Certificates(Path(cert), Path(key), metrics)
        server = Fixed(Stub(), certificates, metrics, sys.stdout)  # type: ignore[arg-type]
        stop = asyncio.Event()
        install_signals(stop)
        await server.serve("127.0.0.1", 0, stop, lambda addresses: listening(addresses[0][1]))

    sys.setswitchinterval(0.001)  # as `gate serve` sets it
    asyncio.run(main())


def serve_uvicorn(cert: str, key: str, http: str, loop: str) -> None:
    import uvicorn

    config = uvicorn.Config(
        asgi_app,
        ssl_certfile=cert,
        ssl_keyfile=key,
        http=http,
        loop=loop,
        lifespan="off",
        access_log=False,
        log_level="warning",
        timeout_keep_alive=120,
    )
    sock = bound_socket()
    listening(sock.getsockname()[1])
    uvicorn.Server(config).run(sockets=[sock])


def serve_hypercorn(cert: str, key: str) -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    sock = bound_socket()
    config = Config()
    config.bind = [f"fd://{sock.fileno()}"]
    config.certfile, config.keyfile = cert, key
    config.alpn_protocols = ["http/1.1"]
    config.accesslog = None
    config.keep_alive_timeout = 120

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        listening(sock.getsockname()[1])
        await serve(asgi_app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]

    asyncio.run(main())


def serve(stack: str, cert: str, key: str) -> None:
    if stack == "wasmctl":
        serve_wasmctl(cert, key)
    elif stack == "wasmctl+uvloop":
        import uvloop

        uvloop.install()
        serve_wasmctl(cert, key)
    elif stack == "uvicorn":
        serve_uvicorn(cert, key, "httptools", "uvloop")
    elif stack == "uvicorn-h11":
        serve_uvicorn(cert, key, "h11", "asyncio")
    elif stack == "hypercorn":
        serve_hypercorn(cert, key)
    else:
        raise SystemExit(f"no stack {stack!r}")


# -- the client ------------------------------------------------------------------------------


class Running:
    """One server subprocess: started with `--serve STACK`, stopped with SIGTERM."""

    def __init__(self, stack: str, cert: Path, key: Path, log: Path) -> None:
        self.stack, self.log = stack, log
        with log.open("wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, __file__, "--serve", stack, str(cert), str(key)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                preexec_fn=bench._die_with_parent,
            )
        deadline = time.monotonic() + 30
        self.port = 0
        while not self.port:
            found = _LISTENING.search(log.read_text(errors="replace"))
            if found:
                self.port = int(found.group(1))
            elif self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{stack} did not start: {log.read_text()[-2000:]}")
            else:
                time.sleep(0.05)

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


async def measure(
    running: Running, ca_bundle: bytes, body: bytes, requests: int, warmup: int, concurrency: int
) -> dict[str, Any]:
    plan = bench.Planned(UID, body, ())
    async with bench.AsyncApiserver(bench.endpoint(running.port, ca_bundle)) as api:
        await bench.drive(api, [plan] * warmup, concurrency, 60)
        server_cpu, client_cpu = running.cpu_seconds(), time.process_time()
        samples, wall = await bench.drive(api, [plan] * requests, concurrency, 60)
        server_cpu = running.cpu_seconds() - server_cpu
        client_cpu = time.process_time() - client_cpu
        connections = api.connections_opened
    failed = [s for s in samples if s.outcome != bench.CallOutcome.ALLOWED]
    if failed:
        raise RuntimeError(f"{running.stack}: {len(failed)} failed calls, e.g. {failed[0].error}")
    latency = bench.summary_ms([s.elapsed for s in samples])
    return {
        "requests": len(samples),
        "perSecond": round(len(samples) / wall, 1),
        "p50": latency["p50"],
        "p99": latency["p99"],
        "max": latency["max"],
        "serverCpuMsPerRequest": round(server_cpu / len(samples) * 1000, 3),
        "clientCpuMsPerRequest": round(client_cpu / len(samples) * 1000, 3),
        "connections": connections,
    }


async def idle_cost(running: Running, ca_bundle: bytes, count: int) -> float:
    """KiB of the server's RSS that each idle keep-alive TLS connection holds."""
    endpoint = bench.endpoint(running.port, ca_bundle)
    context = endpoint.client_context()
    before = running.rss_kib()
    opened = [
        await asyncio.open_connection(
            "127.0.0.1", running.port, ssl=context, server_hostname=endpoint.server_name
        )
        for _ in range(count)
    ]
    await asyncio.sleep(1.0)
    held = running.rss_kib()
    for _, writer in opened:
        writer.close()
    await asyncio.sleep(0.5)
    return (held - before) / count


def main() -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "--serve":
        serve(*sys.argv[2:5])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=8000, help="per round and server")
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--idle", type=int, default=200, help="idle connections, to weigh")
    parser.add_argument("--json", type=Path, default=bench.WORK / "admission-stack-results.json")
    args = parser.parse_args()
    signal.signal(signal.SIGALRM, lambda *_: sys.exit("time limit (900 s)"))
    signal.alarm(900)

    work = bench.WORK / "admission-stack"
    work.mkdir(parents=True, exist_ok=True)
    ca = bench.WebhookCA()
    cert, key = ca.issue().write(work / "tls")
    images = [f"registry.example/bench/app-{i}:v1@sha256:{i:064x}" for i in range(8)]
    body = bench.pod_review(UID, images)
    stacks = []
    skipped = {}
    for stack, modules in STACKS.items():
        missing = [m for m in modules if importlib.util.find_spec(m) is None]
        if missing:
            skipped[stack] = f"not installed: {', '.join(missing)}"
        else:
            stacks.append(stack)
    rounds: dict[str, list[dict[str, Any]]] = {s: [] for s in stacks}
    load_before = os.getloadavg()[0]
    for number in range(1, args.rounds + 1):
        for stack in stacks:
            running = Running(stack, cert, key, work / f"{stack}.log")
            try:
                got = asyncio.run(
                    measure(running, ca.ca_bundle, body, args.requests, args.warmup,
                            args.concurrency)
                )  # fmt: skip
                if number == 1:
                    idle = asyncio.run(idle_cost(running, ca.ca_bundle, args.idle))
                    got["idleConnectionKiB"] = round(idle)
            finally:
                running.stop()
            rounds[stack].append(got)
            bench.log(
                f"round {number} {stack:<15} {got['perSecond']:>7.0f}/s  p50 {got['p50']:6.2f} ms"
                f"  p99 {got['p99']:6.2f} ms  server CPU {got['serverCpuMsPerRequest']:.3f} ms/req"
            )
    chosen = {s: sorted(r, key=lambda x: x["perSecond"])[len(r) // 2] for s, r in rounds.items()}
    for stack, got in chosen.items():
        got["idleConnectionKiB"] = rounds[stack][0]["idleConnectionKiB"]
    results = {
        "context": bench.context() | {"loadBefore": load_before, "loadAfter": os.getloadavg()[0]},
        "concurrency": args.concurrency,
        "requestsPerRound": args.requests,
        "rounds": args.rounds,
        "bodyBytes": len(body),
        "answerBytes": len(ANSWER),
        "median": chosen,
        "allRounds": rounds,
        "skipped": skipped,
        "versions": versions(),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    base = chosen.get("wasmctl")
    print(
        f"\n{'stack':<16}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'server CPU':>16}"
        f"{'vs wasmctl':>12}{'idle conn':>12}"
    )
    for stack, got in chosen.items():
        ratio = got["serverCpuMsPerRequest"] / base["serverCpuMsPerRequest"] if base else 0
        print(
            f"{stack:<16}{got['perSecond']:>8.0f}{got['p50']:>9.2f}{got['p99']:>9.2f}"
            f"{got['serverCpuMsPerRequest']:>9.3f} ms/req{ratio:>11.2f}x"
            f"{got['idleConnectionKiB']:>8} KiB"
        )
    for stack, why in skipped.items():
        print(f"{stack:<16}skipped: {why}")
    print(
        f"\nserver CPU: per request, from /proc/PID/stat; the median round of {args.rounds} "
        f"by req/s; {args.concurrency} keep-alive clients; idle conn: the server's RSS per "
        f"idle TLS connection ({args.idle} opened); load average "
        f"{load_before:.2f} before, {results['context']['loadAfter']:.2f} after; "
        f"results in {args.json}"
    )
    return 0


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("h11", "uvicorn", "httptools", "uvloop", "hypercorn"):
        with contextlib.suppress(PackageNotFoundError):
            found[name] = version(name)
    found["openssl"] = __import__("ssl").OPENSSL_VERSION
    return found


if __name__ == "__main__":
    sys.exit(main())

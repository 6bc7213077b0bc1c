"""`wasmctl gate serve`: the gate as a Kubernetes admission webhook (docs/admission.md).

`admission` decides (the engine's verdicts, cached by digest, policy and trust, within the
apiserver's deadline), `review` reads and writes AdmissionReview v1, `server` is the HTTPS
endpoint, `metrics` the Prometheus series, `cache` the verdict and tag caches.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from wasmctl.gate.serve.admission import Admission, ServeOptions, load, own_namespace

__all__ = ["ServeOptions", "serve"]

# The event loop answers warm requests while worker threads verify cold ones; a shorter
# switch interval than the default 5 ms lets it take the GIL back sooner.
SWITCH_INTERVAL = 0.001


def serve(
    options: ServeOptions,
    tls_cert: Path,
    tls_key: Path,
    address: str = "0.0.0.0",
    port: int = 8443,
    *,
    poll: float = 2.0,
    audit: IO[str] | None = None,
    started: Callable[[list[tuple[str, int]]], None] | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT; raises InputError for a policy, certificate or
    address that cannot be used (before listening)."""
    sys.setswitchinterval(SWITCH_INTERVAL)
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(_main(options, tls_cert, tls_key, address, port, poll, audit, started))


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed (Linux and macOS): measured on this
    server (benchmarks/admission_stack.py), it answers more requests per CPU second, and a
    TLS connection holds about 40 KiB instead of the standard loop's 256 KiB buffer."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def _main(
    options: ServeOptions,
    tls_cert: Path,
    tls_key: Path,
    address: str,
    port: int,
    poll: float,
    audit: IO[str] | None,
    started: Callable[[list[tuple[str, int]]], None] | None,
) -> None:
    from wasmctl.errors import RemoteError
    from wasmctl.gate.serve.admission import _log
    from wasmctl.gate.serve.metrics import Gauge, Metrics
    from wasmctl.gate.serve.server import Certificates, Server, install_signals

    metrics = Metrics()
    certificates = Certificates(tls_cert, tls_key, metrics)
    admission = Admission(options, metrics, own_namespace())
    metrics.extra += [
        Gauge(
            "wasmctl_verdict_cache_entries",
            "Verdicts in the cache that have not expired.",
            lambda: admission.verdicts.live(),
        ),
        Gauge(
            "wasmctl_tag_cache_entries",
            "Tag resolutions in the cache that have not expired.",
            lambda: admission.tags.live(),
        ),
        Gauge(
            "wasmctl_ready",
            "1 when the policy and trust material are loaded.",
            lambda: float(admission.ready),
        ),
    ]
    stop = asyncio.Event()
    install_signals(stop)

    def listening(addresses: list[tuple[str, int]]) -> None:
        shown = ", ".join(f"https://{host}:{p}" for host, p in addresses)
        _log(f"listening on {shown} (/validate, /mutate, /healthz, /readyz, /metrics)")
        if started is not None:
            started(addresses)

    server = Server(admission, certificates, metrics, audit or sys.stdout, poll)
    loop = asyncio.get_running_loop()
    # listening while the policy loads: probes answer (not ready) however long a trusted
    # root takes to come over TUF; a policy that cannot be read still ends the start
    admission.starting = True
    serving = asyncio.ensure_future(server.serve(address, port, stop, listening))
    loading = asyncio.ensure_future(loop.run_in_executor(None, load, options))
    try:
        both: list[asyncio.Future[Any]] = [serving, loading]
        await asyncio.wait(both, return_when=asyncio.FIRST_COMPLETED)
        if serving.done():
            serving.result()  # could not listen: raises
            return
        try:
            loaded = loading.result()
        except RemoteError as e:  # TUF out of reach: not ready, tried again while serving
            admission.load_error = e.message
            _log(f"not ready: {e.message}")
        except BaseException:
            stop.set()
            await asyncio.wait({serving}, timeout=5)
            raise
        else:
            admission.install(loaded)
            _log(f"policy loaded: {options.policy} (sha256 {loaded.fingerprint[:16]}…)")
        finally:
            admission.starting = False
        await serving
    finally:
        if not loading.done():
            loading.cancel()
        admission.close()
        _log("stopped")

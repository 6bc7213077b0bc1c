"""`wasmctl gate serve` run for real: a subprocess on a loopback port the kernel picks,
with a `trustme` CA whose certificate names the Service as the apiserver dials it.

The server says where it listens on stderr; the fixture reads that line (no port races),
then waits for `/readyz`. Its stdout is the audit log, kept in a file the tests read.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import trustme
from prometheus_client.parser import text_string_to_metric_families

SERVICE_NAME = "wasmctl-gate.wasmctl-system.svc"
START_TIMEOUT = 30.0
_LISTENING = re.compile(r"listening on https://([0-9.]+|\[?[0-9a-f:]+\]?):(\d+)")


@dataclass
class Tls:
    """A CA and a serving certificate for the Service name (and 127.0.0.1)."""

    ca: trustme.CA
    ca_pem: Path
    cert: Path
    key: Path

    @classmethod
    def make(cls, directory: Path, *names: str) -> Tls:
        directory.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA()
        tls = cls(ca, directory / "ca.crt", directory / "tls.crt", directory / "tls.key")
        ca.cert_pem.write_to_path(str(tls.ca_pem))
        tls.issue(*names)
        return tls

    def issue(self, *names: str) -> None:
        """A new serving certificate and key in place (as cert-manager renews them)."""
        issued = self.ca.issue_cert(*(names or (SERVICE_NAME, "127.0.0.1")))
        key = self.key.with_name(self.key.name + ".new")
        issued.private_key_pem.write_to_path(str(key))
        cert = self.cert.with_name(self.cert.name + ".new")
        cert.write_bytes(b"".join(p.bytes() for p in issued.cert_chain_pems))
        os.replace(cert, self.cert)
        os.replace(key, self.key)

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_pem))
        return context


@dataclass
class GateServer:
    process: subprocess.Popen[bytes]
    host: str
    port: int
    tls: Tls
    audit_path: Path
    stderr_path: Path

    @property
    def base(self) -> str:
        return f"https://{self.host}:{self.port}"

    def client(self) -> httpx.Client:
        return httpx.Client(verify=self.tls.client_context(), timeout=30)

    def get(self, path: str) -> httpx.Response:
        with self.client() as client:
            return client.get(self.base + path)

    def audit(self) -> list[dict[str, Any]]:
        """The audit log so far, one decision per line (every line must be JSON)."""
        text = self.audit_path.read_text(encoding="utf-8")
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of /metrics by (name, sorted labels)."""
        text = self.get("/metrics").text
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def metric(self, name: str, **labels: str) -> float:
        return self.metrics().get((name, tuple(sorted(labels.items()))), 0.0)

    def wait_for(self, name: str, at_least: float, timeout: float = 20.0, **labels: str) -> float:
        """Poll a metric until it reaches `at_least` (bounded); its value."""
        stop = time.monotonic() + timeout
        while True:
            value = self.metric(name, **labels)
            if value >= at_least or time.monotonic() > stop:
                return value
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 40.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"gate serve did not stop on {sig}:\n{self.stderr()}") from None


def start(
    workdir: Path,
    policy: Path,
    *args: str,
    tls: Tls | None = None,
    env: dict[str, str] | None = None,
    wait_ready: bool = True,
) -> GateServer:
    """Start `wasmctl gate serve` on 127.0.0.1 and a free port; returns once it listens
    (and, with `wait_ready`, once /readyz says ready)."""
    workdir.mkdir(parents=True, exist_ok=True)
    tls = tls or Tls.make(workdir / "tls")
    audit = workdir / "audit.log"
    errors = workdir / "server.err"
    command = [
        sys.executable, "-m", "wasmctl", "gate", "serve",
        "--policy", str(policy),
        "--tls-cert", str(tls.cert),
        "--tls-key", str(tls.key),
        "--address", "127.0.0.1",
        "--port", "0",
        "--reload-interval", "0.1s",
        *args,
    ]  # fmt: skip
    environment = {**os.environ, "POD_NAMESPACE": "wasmctl-system", **(env or {})}
    with audit.open("wb") as out, errors.open("wb") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, env=environment)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        found = _LISTENING.search(errors.read_text(errors="replace"))
        if found:
            break
        if process.poll() is not None or time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            raise AssertionError(f"gate serve did not start:\n{errors.read_text()}")
        time.sleep(0.05)
    server = GateServer(process, found.group(1), int(found.group(2)), tls, audit, errors)
    try:
        while wait_ready and server.get("/readyz").status_code != 200:
            if time.monotonic() > deadline:
                raise AssertionError(f"gate serve never got ready:\n{server.stderr()}")
            time.sleep(0.05)
    except BaseException:
        server.stop(signal.SIGKILL)  # never left running behind a failed start
        raise
    return server


@contextlib.contextmanager
def running(workdir: Path, policy: Path, *args: str, **kwargs: Any) -> Iterator[GateServer]:
    server = start(workdir, policy, *args, **kwargs)
    try:
        yield server
    finally:
        server.stop()


def run_once(argv: Sequence[str], timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """`wasmctl ARGV` to completion (start-up failures)."""
    return subprocess.run(
        [sys.executable, "-m", "wasmctl", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )

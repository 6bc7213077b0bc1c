"""`wasmctl gate serve` under load, called the way kube-apiserver calls it: run by hand,
never by the test suite.

    python benchmarks/admission.py               # the whole run: 3 to 5 minutes on 2 cores
    python benchmarks/admission.py --quick       # smaller counts: a smoke run of the harness
    python benchmarks/admission.py --profile     # scenario 1 only, the server under cProfile

Everything is on loopback and stops by itself: Debian's docker-registry (tests/registry.py)
on a free 127.0.0.1 port, the fault proxy (tests/faultproxy.py) in front of it where a
scenario needs an access log or an outage, and `wasmctl gate serve` as a subprocess
(`python -m wasmctl gate serve --address 127.0.0.1 --port 0`), with a `trustme` CA whose
serving certificate names `wasmctl-gate.wasmctl-system.svc` and 127.0.0.1. The client is the
apiserver stand-in of tests/admission/apiserver.py (`AsyncApiserver`): TLS verified against
the CA bundle and the Service name, HTTP/1.1 keep-alive, `?timeout=10s`, a hard deadline,
every answer checked as the apiserver checks it.

The artifacts (setup, timed apart): examples/modules/hello.wasm built with a distinct
annotation each (one digest each) and signed with a cosign key ("signed": allowed), the same
unsigned ("unsigned": denied, signature), and examples/modules/echo_server.wasm signed
("socket": denied by the no-network scan); about 2,300 of them, built and signed in process
through wasmctl's library with a thread pool. Every Pod names its images by digest
(`registry/repo:tag@sha256:...`), as they are once the mutating webhook has pinned them.

1. warm verdict: a Pod of 8 containers (8 signed images, cached), 16 concurrent keep-alive
   clients: server-side p50 <= 5 ms and p99 <= 10 ms (the `latencyMs` of the audit log),
   client-observed p99 <= 25 ms, >= 500 admissions/s.
2. cold verdict: first sight of a signed digest (one a Pod, 4 at a time): server-side
   p99 <= 1 s.
3. load: 20,000 admissions, one in ten naming a digest never seen before (70 % signed,
   15 % unsigned, 15 % socket), 16 clients: every verdict right, every answer inside its
   deadline, and the server's RSS (/proc/PID/status VmRSS) at the end no more than 5 % above
   its value at the end of the warm-up. Then 10,000 more with no new digest, for
   information: RSS that grows there is not the caches'.
4. registry outage mid-load (through the fault proxy: connections reset, then 503s): cached
   verdicts still answer as before; new digests get the --on-error answer (deny, "registry
   unreachable") inside the deadline; wasmctl_registry_errors_total grows; after recovery
   the same digests get real verdicts, verified anew. The same outage with ?timeout=5s (the
   deployed webhook's timeoutSeconds) is shown for information.
5. coalescing: 50 concurrent first requests for one signed digest, the registry 50 ms away
   (the proxy holds each request): one verification (wasmctl_verifications_total +1,
   wasmctl_coalesced_total +49) and the module's blob fetched once (the proxy's log). The
   same at loopback speed is shown for information.
6. connections (information, after 3 on the same server): the server's CPU for an
   admission on a fresh TLS connection, the memory an idle TLS connection holds, and an
   open loop: Poisson arrivals at 500/s for 10 s from a client that keeps at most 25 idle
   connections (as client-go does) and opens more when more requests are in flight.

Results: a table on stdout and benchmarks/.work/admission-results.json (the server's logs
and audit logs stay in benchmarks/.work/admission/). Exit status 0 when everything ran,
whatever the verdicts (a FAIL is a result); 2 when something could not be run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / ".work"
sys.path.insert(0, str(ROOT))

from tests.admission.apiserver import (  # noqa: E402
    AsyncApiserver,
    CallOutcome,
    CallResult,
    Webhook,
    WebhookCA,
    WebhookEndpoint,
    encode_go_json,
)
from tests.faultproxy import FaultProxy  # noqa: E402

EXAMPLES = ROOT / "examples" / "modules"
HELLO = EXAMPLES / "hello.wasm"
SOCKET = EXAMPLES / "echo_server.wasm"
RUNTIME_CLASS = "crun-wasm"
VALIDATE = Webhook("validate.gate.wasmctl.dev", "/validate", timeout_seconds=10)
SEED = 20261204
_LISTENING = re.compile(r"listening on https://127\.0\.0\.1:(\d+)")

# -- sizes -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    concurrency: int = 16
    warm_requests: int = 10_000
    warm_warmup: int = 1_000
    warm_seconds: float = 40.0  # a cap: the run stops there whatever the count
    fresh_connections: int = 300
    idle_connections: int = 200  # under the server's cap of 256
    open_rate: float = 500.0  # information: an open loop at the target rate
    open_seconds: float = 10.0
    cold_requests: int = 150
    cold_concurrency: int = 4
    load_requests: int = 20_000
    load_cold_every: int = 10  # one request in ten names a new digest
    load_pool: int = 100  # the digests warm load requests choose from
    load_warmup: int = 2_000
    load_steady: int = 10_000  # after the load, with no new digest (information)
    outage_cached: int = 12
    outage_new: int = 6
    coalesce: int = 50
    coalesce_delay: float = 0.05

    @property
    def load_cold(self) -> int:
        return self.load_requests // self.load_cold_every


QUICK = Sizes(
    warm_requests=2_000,
    fresh_connections=50,
    idle_connections=50,
    open_seconds=3.0,
    warm_warmup=300,
    cold_requests=30,
    load_requests=3_000,
    load_pool=40,
    load_warmup=500,
    load_steady=1_000,
    outage_cached=6,
    outage_new=3,
)

# -- the artifacts ---------------------------------------------------------------------------

SIGNED, UNSIGNED, SOCKETS = "signed", "unsigned", "socket"


@dataclass(frozen=True)
class Image:
    """One artifact in the registry: `repository:tag` and digest, and what it is."""

    name: str
    digest: str
    kind: str

    def ref(self, host: str) -> str:
        return f"{host}/{self.name}@{self.digest}"

    @property
    def allowed(self) -> bool:
        return self.kind == SIGNED


def mixed(count: int) -> list[str]:
    """`count` kinds: 70 % signed, 15 % unsigned, 15 % socket, interleaved."""
    kinds = [SIGNED] * count
    for i in range(count):
        if i % 20 in (3, 10, 17):
            kinds[i] = UNSIGNED
        elif i % 20 in (6, 13, 19):
            kinds[i] = SOCKETS
    return kinds


def corpus_plan(sizes: Sizes) -> dict[str, list[str]]:
    """Each set of artifacts the scenarios use, by kind."""
    outage_new = mixed(sizes.outage_new)
    return {
        "warm": [SIGNED] * 8,
        "cold": [SIGNED] * sizes.cold_requests,
        "pool": mixed(sizes.load_pool),
        "load": mixed(sizes.load_cold),
        "outage-cached": mixed(sizes.outage_cached),
        "outage-reset": outage_new,
        "outage-503": outage_new,
        "outage-5s": outage_new,
        "coalesce": [SIGNED] * 3,
    }


def build_corpus(
    host: str, key: Path, plan: dict[str, list[str]], jobs: int = 8
) -> dict[str, list[Image]]:
    """Build, push and sign every artifact of `plan` (wasmctl's library, in process)."""
    from wasmctl.oci.build import BuildOptions, build_artifact
    from wasmctl.oci.reference import parse_reference
    from wasmctl.oci.source import RegistryOptions
    from wasmctl.sign.keys import load_private_key, read_key_file
    from wasmctl.sign.signer import KeySigning
    from wasmctl.sign.targets import sign_reference

    backend = KeySigning(load_private_key(read_key_file(key), b""))
    options = RegistryOptions(plain_http=frozenset({host}))
    marker = uuid.uuid4().hex[:8]  # a fresh digest on every run, even with a kept registry

    def make(job: tuple[str, int, str]) -> Image:
        group, index, kind = job
        name = f"bench/{group}-{kind}:{index}"
        module = SOCKET if kind == SOCKETS else HELLO
        annotations = {"dev.wasmctl.bench": f"{marker}/{group}/{index}"}
        built = build_artifact(
            module,
            parse_reference(f"{host}/{name}"),
            BuildOptions(annotations=annotations),
            options,
        )
        image = Image(name, built.descriptor.digest, kind)
        if kind != UNSIGNED:
            sign_reference(parse_reference(image.ref(host)), backend, options)
        return image

    jobs_list = [(g, i, k) for g, kinds in plan.items() for i, k in enumerate(kinds)]
    # The first artifact of each repository alone: distribution 2.8 loses a blob uploaded
    # into one repository by two clients at once (the manifest PUT then says
    # MANIFEST_BLOB_UNKNOWN); once the blobs are there, the others push manifests only.
    first: dict[tuple[str, str], tuple[str, int, str]] = {}
    for job in jobs_list:
        first.setdefault((job[0], job[2]), job)
    made: dict[tuple[str, int, str], Image] = {}
    with options, ThreadPoolExecutor(jobs) as pool:
        made.update((job, make(job)) for job in first.values())
        rest = [job for job in jobs_list if job not in made]
        made.update(zip(rest, pool.map(make, rest), strict=True))
    corpus: dict[str, list[Image]] = {g: [] for g in plan}
    for job in jobs_list:
        corpus[job[0]].append(made[job])
    return corpus


def layer_digest(host: str, image: Image) -> str:
    """The digest of the module layer of `image` (what a verification downloads)."""
    import httpx

    name, _, _ = image.name.partition(":")
    with httpx.Client(trust_env=False, timeout=10) as client:
        answer = client.get(
            f"http://{host}/v2/{name}/manifests/{image.digest}",
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        )
        answer.raise_for_status()
        return str(answer.json()["layers"][0]["digest"])


# -- AdmissionReviews ------------------------------------------------------------------------


def pod_review(uid: str, images: Sequence[str], namespace: str = "bench") -> bytes:
    """An AdmissionReview of a Pod CREATE as a ReplicaSet controller sends it (the fields
    a real one has, trimmed of managedFields), one container per image."""
    name = f"bench-{uid[:8]}"
    containers = [
        {
            "name": f"app-{i}",
            "image": image,
            "imagePullPolicy": "IfNotPresent",
            "ports": [{"containerPort": 8080 + i, "protocol": "TCP"}],
            "env": [{"name": "MODE", "value": "bench"}, {"name": "INDEX", "value": str(i)}],
            "resources": {
                "limits": {"cpu": "100m", "memory": "64Mi"},
                "requests": {"cpu": "10m", "memory": "16Mi"},
            },
            "volumeMounts": [
                {
                    "name": "kube-api-access",
                    "readOnly": True,
                    "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                }
            ],
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "runAsNonRoot": True,
                "capabilities": {"drop": ["ALL"]},
            },
        }
        for i, image in enumerate(images)
    ]
    pod = {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "generateName": "bench-",
            "namespace": namespace,
            "creationTimestamp": None,
            "labels": {"app": "bench", "pod-template-hash": "5d8f9c7b6"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "bench-5d8f9c7b6",
                    "uid": "6f1d6a2e-3c1b-4d6e-9a77-0c2a1f3b4d5e",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "runtimeClassName": RUNTIME_CLASS,
            "volumes": [
                {
                    "name": "kube-api-access",
                    "projected": {
                        "sources": [{"serviceAccountToken": {"path": "token"}}],
                        "defaultMode": 420,
                    },
                }
            ],
            "containers": containers,
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "schedulerName": "default-scheduler",
            "tolerations": [
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                }
            ],
            "priority": 0,
            "enableServiceLinks": True,
            "preemptionPolicy": "PreemptLowerPriority",
        },
        "status": {},
    }
    review = {
        "kind": "AdmissionReview",
        "apiVersion": "admission.k8s.io/v1",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "name": name,
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {
                "username": "system:serviceaccount:kube-system:replicaset-controller",
                "uid": "0a4c2b9e-8f61-4f3c-b1de-3c1e6b0d7a21",
                "groups": ["system:serviceaccounts", "system:authenticated"],
            },
            "object": pod,
            "oldObject": None,
            "dryRun": False,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"},
        },
    }
    return encode_go_json(review)


@dataclass(frozen=True)
class Planned:
    """One admission to send, and what the answer must be."""

    uid: str
    body: bytes
    images: tuple[Image, ...]
    cold: bool = False
    tag: str = ""

    @property
    def allowed(self) -> bool:
        return all(i.allowed for i in self.images)


def planned(host: str, images: Sequence[Image], *, cold: bool = False, tag: str = "") -> Planned:
    uid = str(uuid.uuid4())
    body = pod_review(uid, [i.ref(host) for i in images])
    return Planned(uid, body, tuple(images), cold, tag)


@dataclass
class Sample:
    """What came back for one admission."""

    plan: Planned
    at: float  # seconds since the run began, when it was sent
    elapsed: float  # client-observed, seconds
    outcome: str
    code: int | None
    message: str
    error: str | None
    reused: bool


def sample_of(plan: Planned, at: float, result: CallResult) -> Sample:
    status = result.interpretation.status
    return Sample(
        plan,
        at,
        result.elapsed,
        str(result.outcome),
        status.code if status else None,
        status.message if status else "",
        result.error,
        result.connection_reused,
    )


def problem(sample: Sample) -> str | None:
    """Why the answer is not the right verdict, or None: allowed exactly when every image
    is signed and clean; a denial is a verdict (403) naming the failed check."""
    plan = sample.plan
    if sample.outcome == CallOutcome.CALL_FAILED:
        return f"call failed: {sample.error}"
    if plan.allowed:
        return None if sample.outcome == CallOutcome.ALLOWED else f"denied: {sample.message}"
    if sample.outcome != CallOutcome.DENIED:
        return "allowed, a denial was due"
    if sample.code != 403:
        return f"denied with {sample.code}, not a verdict: {sample.message}"
    message = sample.message
    for image in plan.images:
        at = message.find(image.digest)
        if image.allowed:
            if at >= 0:
                return f"a passing image is named in the denial: {message}"
            continue
        if at < 0:
            if message.endswith("…"):  # the one-line message is clipped at 1024 characters
                continue
            return f"the denial does not name {image.digest}: {message}"
        following = message.find("@sha256:", at + len(image.digest))
        reason = message[at : following if following >= 0 else len(message)]
        word = "signature" if image.kind == UNSIGNED else "scan"
        if f"{word}: " not in reason:
            return f"the denial does not give the {word} check for {image.digest}: {message}"
    return None


def audit_problem(sample: Sample, audit: dict[str, AuditEntry]) -> str | None:
    """Why the audit log's line for the request is wrong: missing, another verdict, or an
    image judged otherwise than its kind."""
    entry = audit.get(sample.plan.uid)
    if entry is None:
        return "no line in the audit log"
    if entry.verdict != ("allow" if sample.plan.allowed else "deny"):
        return f"audit verdict {entry.verdict}"
    judged = [verdict for verdict, _ in entry.images]
    due = ["pass" if i.allowed else "deny" for i in sample.plan.images]
    return None if judged == due else f"audit image verdicts {judged}, due {due}"


def on_error_problem(sample: Sample, deadline: float, words: str) -> str | None:
    """Why the answer is not the --on-error deny answer (503) saying `words` in time."""
    if sample.outcome == CallOutcome.CALL_FAILED:
        return f"call failed: {sample.error}"
    if sample.outcome != CallOutcome.DENIED or sample.code != 503:
        return f"{sample.outcome} {sample.code}: {sample.message}"
    if words not in sample.message:
        return f"the message does not say {words!r}: {sample.message}"
    if sample.elapsed >= deadline:
        return f"answered after {sample.elapsed:.2f} s"
    return None


# -- the load client -------------------------------------------------------------------------


async def drive(
    api: AsyncApiserver,
    plans: Iterable[Planned],
    concurrency: int,
    limit: float,
    webhook: Webhook = VALIDATE,
) -> tuple[list[Sample], float]:
    """Send `plans` from `concurrency` clients, each one request after the other (a closed
    loop, as the apiserver's handlers wait for their answers), for at most `limit` s."""
    loop = asyncio.get_running_loop()
    samples: list[Sample] = []
    pending = iter(plans)
    began = loop.time()

    async def client() -> None:
        for plan in pending:
            if loop.time() - began > limit:
                return
            at = loop.time() - began
            samples.append(sample_of(plan, at, await api.call(webhook, plan.body)))

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return samples, loop.time() - began


async def drive_open(
    api: AsyncApiserver, plans: Sequence[Planned], rate: float, seed: int = SEED
) -> tuple[list[Sample], float, int]:
    """Send `plans` at `rate` per second on average, each when it is due (Poisson arrivals,
    whatever is still unanswered: an open loop, as Pods arrive at an apiserver), and time
    each from when it was due (a late client does not hide a slow server). Returns the
    samples, the seconds taken and the most requests that were in flight at once."""
    loop = asyncio.get_running_loop()
    rng = random.Random(seed)
    samples: list[Sample] = []
    in_flight = most = 0
    began = due = loop.time()

    async def one(plan: Planned, due: float) -> None:
        nonlocal in_flight
        result = await api.call(VALIDATE, plan.body)
        sample = sample_of(plan, due - began, result)
        sample.elapsed = loop.time() - due
        samples.append(sample)
        in_flight -= 1

    tasks = []
    for plan in plans:
        due += rng.expovariate(rate)
        if due > loop.time():
            await asyncio.sleep(due - loop.time())
        in_flight += 1
        most = max(most, in_flight)
        tasks.append(asyncio.ensure_future(one(plan, due)))
    await asyncio.gather(*tasks)
    return samples, loop.time() - began, most


def endpoint(port: int, ca_bundle: bytes) -> WebhookEndpoint:
    return WebhookEndpoint.service(port, ca_bundle)


# -- the server ------------------------------------------------------------------------------


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """The server gets SIGTERM if the benchmark dies without stopping it (Linux)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def clean_environment(work: Path) -> dict[str, str]:
    """The caller's environment without proxies (httpx honours them even for 127.0.0.1)
    and registry settings, with credentials files of the run's own (none)."""
    drop = re.compile(r"^(https?_proxy|all_proxy|no_proxy|REGISTRY_.*)$", re.IGNORECASE)
    env = {k: v for k, v in os.environ.items() if not drop.match(k)}
    env["REGISTRY_AUTH_FILE"] = str(work / "auth.json")
    env["DOCKER_CONFIG"] = str(work / "docker")
    return env


@dataclass
class AuditEntry:
    latency_ms: float
    verdict: str
    cache: str
    images: list[tuple[str, str]]  # (verdict, cache) per image


# `wasmctl gate serve` under cProfile, timed in CPU seconds (so that waiting for the CPU
# on a busy machine is not counted): the profile is written when the server stops.
_PROFILED = """
import cProfile, sys, time
from wasmctl.cli import main
profile = cProfile.Profile(time.process_time)
out, sys.argv = sys.argv[1], ["wasmctl", *sys.argv[2:]]
profile.enable()
try:
    main()
finally:
    profile.disable()
    profile.dump_stats(out)
"""


class GateServer:
    """`wasmctl gate serve` as a subprocess: its audit log (stdout) and messages (stderr)
    in files, its port read from its "listening on" line."""

    def __init__(
        self,
        work: Path,
        name: str,
        arguments: Sequence[str],
        ca_bundle: bytes,
        profile: Path | None = None,
    ) -> None:
        self.work, self.name, self.arguments = work, name, list(arguments)
        self.ca_bundle = ca_bundle
        self.profile = profile
        self.audit_path = work / f"{name}-audit.jsonl"
        self.log_path = work / f"{name}-stderr.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self._offset = 0
        self.audit: dict[str, AuditEntry] = {}
        self.registry_pid: int | None = None  # for the CPU meter

    def cpu_meter(self) -> CpuMeter:
        return CpuMeter(server=self.pid, registry=self.registry_pid)

    def __enter__(self) -> GateServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        command = [sys.executable, "-m", "wasmctl", "gate", "serve", *self.arguments]
        if self.profile is not None:
            command[1:3] = ["-c", _PROFILED, str(self.profile)]
        command += ["--address", "127.0.0.1", "--port", "0"]
        with self.audit_path.open("wb") as out, self.log_path.open("wb") as err:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=clean_environment(self.work),
                cwd=self.work,
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + 30
        while not self.port:
            found = _LISTENING.search(self.log_path.read_text(errors="replace"))
            if found:
                self.port = int(found.group(1))
            elif self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server did not start:\n{self.log_tail()}")
            else:
                time.sleep(0.05)
        while self.get("/readyz").status_code != 200:
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server is not ready:\n{self.log_tail()}")
            time.sleep(0.1)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=35)  # it drains for at most 30 s
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def get(self, path: str) -> Any:
        import httpx

        context = ssl.create_default_context(cadata=self.ca_bundle.decode())
        with httpx.Client(verify=context, trust_env=False, timeout=10) as client:
            return client.get(f"https://127.0.0.1:{self.port}{path}")

    def metrics(self) -> Metrics:
        return Metrics.parse(self.get("/metrics").text)

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def read_audit(self) -> dict[str, AuditEntry]:
        """Every decision logged so far, by uid (read on from where the last call ended)."""
        with self.audit_path.open("rb") as log:
            log.seek(self._offset)
            data = log.read()
        end = data.rfind(b"\n") + 1
        self._offset += end
        for line in data[:end].splitlines():
            record = json.loads(line)
            self.audit[record.get("uid", "")] = AuditEntry(
                record["latencyMs"],
                record["verdict"],
                record.get("cache", ""),
                [(i["verdict"], i["cache"]) for i in record.get("images", [])],
            )
        return self.audit


class Metrics:
    """Prometheus text, parsed: (name, labels) -> value."""

    _LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$")
    _LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')

    def __init__(self, series: list[tuple[str, dict[str, str], float]]) -> None:
        self.series = series

    @classmethod
    def parse(cls, text: str) -> Metrics:
        series = []
        for line in text.splitlines():
            found = cls._LINE.match(line)
            if found is None or line.startswith("#"):
                continue
            labels = dict(cls._LABEL.findall(found.group(3) or ""))
            series.append((found.group(1), labels, float(found.group(4))))
        return cls(series)

    def total(self, name: str, **labels: str) -> float:
        return sum(
            value
            for n, have, value in self.series
            if n == name and all(have.get(k) == v for k, v in labels.items())
        )

    def buckets(self, name: str, **labels: str) -> dict[float, float]:
        return {
            float(have["le"]): value
            for n, have, value in self.series
            if n == f"{name}_bucket" and all(have.get(k) == v for k, v in labels.items())
        }


def histogram_quantile(before: Metrics, after: Metrics, q: float) -> float | None:
    """The upper bound of the `/metrics` latency bucket holding quantile `q` of the
    validate requests between two scrapes (seconds), as Prometheus' histogram_quantile
    would bound it."""
    name = "wasmctl_admission_duration_seconds"
    early = before.buckets(name, endpoint="validate")
    late = after.buckets(name, endpoint="validate")
    bounds = sorted(late)
    counts = [late[b] - early.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return None
    for bound, count in zip(bounds, counts, strict=True):
        if count >= q * counts[-1]:
            return bound
    return None


class RssSampler:
    """VmRSS of a process every `interval` s, in a thread."""

    def __init__(self, server: GateServer, interval: float = 0.25) -> None:
        self.server, self.interval = server, interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss", daemon=True)
        self._began = time.monotonic()

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError, RuntimeError):
                self.samples.append((time.monotonic() - self._began, self.server.rss_kib()))
            self._stop.wait(self.interval)


def process_cpu(pid: int | str) -> float:
    """CPU seconds (user + system) a process has used: /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> float:
    """CPU seconds all processors have spent busy since boot: /proc/stat."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def find_pid(needle: str) -> int | None:
    """The process whose command line contains `needle` (the registry's config path)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if needle.encode() in (entry / "cmdline").read_bytes():
                    return int(entry.name)
    return None


class CpuMeter:
    """Where the machine's CPU went during a phase, in cores (1.0: one core all along):
    the server, this process (the client, and the fault proxy's threads), the registry,
    and everything else on the machine (other users of a shared machine show there)."""

    def __init__(self, **pids: int | None) -> None:
        self.pids = {name: pid for name, pid in pids.items() if pid}
        self.pids["client"] = os.getpid()

    def __enter__(self) -> CpuMeter:
        self._start = self._read()
        self.cores: dict[str, float] = {}
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._read()
        wall = end["wall"] - self._start["wall"]
        used = {k: (end[k] - self._start[k]) / wall for k in end if k != "wall"}
        ours = sum(v for k, v in used.items() if k != "machine")
        self.cores = {k: round(v, 2) for k, v in used.items() if k != "machine"}
        self.cores["other"] = round(max(0.0, used["machine"] - ours), 2)
        self.cores["machine"] = round(used["machine"], 2)

    def _read(self) -> dict[str, float]:
        got = {"wall": time.monotonic(), "machine": machine_busy()}
        for name, pid in self.pids.items():
            with contextlib.suppress(OSError):
                got[name] = process_cpu(pid)
        return got

    def describe(self) -> str:
        return ", ".join(f"{k} {v:.2f}" for k, v in self.cores.items() if k != "machine")


# -- statistics ------------------------------------------------------------------------------


def quantile(values: Sequence[float], q: float) -> float:
    """The nearest-rank quantile (p99 of 10,000 values: the 9,900th smallest)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def summary_ms(values: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/max of seconds, in ms."""
    return {
        "n": len(values),
        "p50": round(quantile(values, 0.50) * 1000, 3),
        "p90": round(quantile(values, 0.90) * 1000, 3),
        "p99": round(quantile(values, 0.99) * 1000, 3),
        "max": round(max(values) * 1000, 3) if values else float("nan"),
    }


def server_latencies(server: GateServer, samples: Iterable[Sample]) -> list[float]:
    """The audit log's latency (seconds) of each sample's request."""
    audit = server.read_audit()
    return [audit[s.plan.uid].latency_ms / 1000 for s in samples if s.plan.uid in audit]


def missing_from_audit(server: GateServer, samples: Iterable[Sample]) -> int:
    audit = server.read_audit()
    return sum(1 for s in samples if s.plan.uid not in audit)


# -- results ---------------------------------------------------------------------------------


@dataclass
class Row:
    scenario: str
    what: str
    measured: str
    target: str
    passed: bool | None  # None: for information

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "FAIL", None: "info"}[self.passed]


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def add(self, scenario: str, what: str, measured: str, target: str, passed: bool | None):
        self.rows.append(Row(scenario, what, measured, target, passed))
        log(f"  {self.rows[-1].verdict:<5} {what}: {measured} (target {target})")

    def table(self) -> str:
        rows = [["#", "benchmark", "measured", "target", "verdict"]]
        rows += [[r.scenario, r.what, r.measured, r.target, r.verdict] for r in self.rows]
        widths = [max(len(row[i]) for row in rows) + 2 for i in range(4)]
        return "\n".join(
            "".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + row[-1] for row in rows
        )


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


# -- scenarios -------------------------------------------------------------------------------


async def prime(api: AsyncApiserver, host: str, images: Sequence[Image], jobs: int = 8) -> None:
    """One request per image, so that each verdict is cached; each must be right."""
    plans = [planned(host, [i], tag="prime") for i in images]
    samples, _ = await drive(api, plans, min(jobs, len(plans)) or 1, 120)
    wrong = [p for p in (problem(s) for s in samples) if p]
    if wrong:
        raise RuntimeError(f"priming: {len(wrong)} wrong answers, e.g. {wrong[0]}")


async def warm(
    server: GateServer, host: str, images: list[Image], sizes: Sizes, results: Results
) -> None:
    log("\n== 1. warm verdict: a Pod of 8 cached signed images, 16 keep-alive clients")
    async with AsyncApiserver(endpoint(server.port, server.ca_bundle)) as api:
        await prime(api, host, images)
        plans = [planned(host, images) for _ in range(sizes.warm_warmup)]
        await drive(api, plans, sizes.concurrency, 60)
        gc.collect()
        before = server.metrics()
        plans = [planned(host, images) for _ in range(sizes.warm_requests)]
        with server.cpu_meter() as cpu:
            samples, wall = await drive(api, plans, sizes.concurrency, sizes.warm_seconds)
        after = server.metrics()
        opened = api.connections_opened
    audit = server.read_audit()
    wrong = [p for x in samples if (p := problem(x) or audit_problem(x, audit))]
    client = [s.elapsed for s in samples]
    server_side = server_latencies(server, samples)
    hits = sum(
        1 for s in samples if audit.get(s.plan.uid, AuditEntry(0, "", "", [])).cache == "hit"
    )
    rate = len(samples) / wall
    c, s = summary_ms(client), summary_ms(server_side)
    h50, h99 = histogram_quantile(before, after, 0.5), histogram_quantile(before, after, 0.99)
    data = results.data["warm"] = {
        "requests": len(samples),
        "seconds": round(wall, 2),
        "perSecond": round(rate, 1),
        "client": c,
        "server": s,
        "metricsHistogram": {"p50UpperBound": h50, "p99UpperBound": h99},
        "wrong": len(wrong),
        "cacheHits": hits,
        "connectionsOpened": opened,
        "missingFromAudit": missing_from_audit(server, samples),
        "cpuCores": cpu.cores,
        "serverCpuMsPerAdmission": round(cpu.cores["server"] * wall / len(samples) * 1000, 3),
        "clientCpuMsPerAdmission": round(cpu.cores["client"] * wall / len(samples) * 1000, 3),
    }
    results.add(
        "1",
        "warm: server-side p50 (audit latencyMs)",
        f"{s['p50']:.2f} ms",
        "≤ 5 ms",
        s["p50"] <= 5,
    )
    results.add(
        "1",
        "warm: server-side p99 (audit latencyMs)",
        f"{s['p99']:.2f} ms",
        "≤ 10 ms",
        s["p99"] <= 10,
    )
    results.add(
        "1",
        "warm: client-observed p99",
        f"{c['p99']:.2f} ms (p50 {c['p50']:.2f})",
        "≤ 25 ms",
        c["p99"] <= 25,
    )
    results.add(
        "1",
        "warm: admissions per second",
        f"{rate:.0f}/s ({len(samples)} in {wall:.1f} s)",
        "≥ 500/s",
        rate >= 500,
    )
    results.add(
        "1",
        "warm: right verdicts, all cache hits",
        f"{len(samples) - len(wrong)}/{len(samples)}, {hits} hits, {opened} conns",
        "all",
        not wrong and hits == len(samples),
    )
    results.add(
        "1",
        "warm: /metrics histogram p50, p99 bucket",
        f"≤ {_bound(h50)}, ≤ {_bound(h99)}",
        "",
        None,
    )
    results.add(
        "1",
        "warm: CPU per admission, server / client",
        f"{data['serverCpuMsPerAdmission']:.2f} / {data['clientCpuMsPerAdmission']:.2f} ms",
        "",
        None,
    )
    results.add("1", "warm: CPU in cores while timed", cpu.describe(), "", None)
    if wrong:
        log(f"  e.g. {wrong[0]}")


def _bound(seconds: float | None) -> str:
    return "?" if seconds is None else ms(seconds)


async def cold(
    server: GateServer, host: str, images: list[Image], sizes: Sizes, results: Results
) -> None:
    at_once = sizes.cold_concurrency
    log(f"\n== 2. cold verdict: {len(images)} new signed digests, {at_once} at a time")
    before = server.metrics()
    async with AsyncApiserver(endpoint(server.port, server.ca_bundle)) as api:
        plans = [planned(host, [i]) for i in images]
        with server.cpu_meter() as cpu:
            samples, wall = await drive(api, plans, sizes.cold_concurrency, 300)
    after = server.metrics()
    audit = server.read_audit()
    wrong = [p for x in samples if (p := problem(x) or audit_problem(x, audit))]
    client, server_side = [s.elapsed for s in samples], server_latencies(server, samples)
    c, s = summary_ms(client), summary_ms(server_side)
    verified = after.total("wasmctl_verifications_total") - before.total(
        "wasmctl_verifications_total"
    )
    results.data["cold"] = {
        "requests": len(samples),
        "seconds": round(wall, 2),
        "client": c,
        "server": s,
        "verifications": verified,
        "wrong": len(wrong),
        "cpuCores": cpu.cores,
        "serverCpuMsPerVerification": round(cpu.cores["server"] * wall / len(samples) * 1000, 1),
    }
    results.add(
        "2",
        "cold: server-side p99 (audit latencyMs)",
        f"{s['p99']:.0f} ms (p50 {s['p50']:.0f}, max {s['max']:.0f})",
        "≤ 1 s",
        s["p99"] <= 1000,
    )
    results.add(
        "2",
        "cold: client-observed p99",
        f"{c['p99']:.0f} ms (p50 {c['p50']:.0f})",
        "≤ 1 s",
        c["p99"] <= 1000,
    )
    results.add(
        "2",
        "cold: right verdicts, one verification each",
        f"{len(samples) - len(wrong)}/{len(samples)}, {verified:.0f} verifications",
        "all",
        not wrong and verified == len(samples),
    )
    results.add(
        "2",
        "cold: server CPU per verification; CPU in cores",
        f"{results.data['cold']['serverCpuMsPerVerification']:.0f} ms; {cpu.describe()}",
        "",
        None,
    )


def load_plans(
    host: str, pool: list[Image], new: list[Image], sizes: Sizes, rng: random.Random
) -> Iterator[Planned]:
    """The load's requests: every `load_cold_every`-th one names a digest never sent
    before (and up to two known ones); the others 1-4 known digests, from the pool and
    from the new digests sent at least 1,000 requests earlier."""
    fresh = iter(new)
    sent: list[Image] = []
    for i in range(sizes.load_requests):
        known = pool + sent[: max(0, len(sent) - 100)]
        if i % sizes.load_cold_every == sizes.load_cold_every // 2:
            image = next(fresh)
            images = [image, *rng.sample(pool, rng.choice((0, 1, 2)))]
            rng.shuffle(images)
            sent.append(image)
            yield planned(host, images, cold=True)
        else:
            yield planned(host, rng.sample(known, rng.choice((1, 1, 2, 2, 3, 4))))


async def load(
    server: GateServer,
    host: str,
    pool: list[Image],
    new: list[Image],
    sizes: Sizes,
    results: Results,
) -> None:
    log(
        f"\n== 3. load: {sizes.load_requests} admissions, {len(new)} of them with a new digest, "
        f"{sizes.concurrency} clients"
    )
    rng = random.Random(SEED)
    async with AsyncApiserver(endpoint(server.port, server.ca_bundle)) as api:
        with RssSampler(server) as rss:
            await prime(api, host, pool)
            plans = [
                planned(host, rng.sample(pool, rng.choice((1, 2, 3, 4))))
                for _ in range(sizes.load_warmup)
            ]
            await drive(api, plans, sizes.concurrency, 120)
            await asyncio.sleep(1.0)
            warmed_at = rss.samples[-1][0]
            warmed = server.rss_kib()
            before = server.metrics()
            log(f"  warm-up done: RSS {warmed / 1024:.1f} MiB")
            plans = list(load_plans(host, pool, new, sizes, rng))
            half = len(plans) // 2
            with server.cpu_meter() as cpu:
                # in two halves: by the first's end the verdict cache (--cache-size
                # LOAD_CACHE_SIZE) is full, and the memory must not grow after that
                first, wall_first = await drive(api, plans[:half], sizes.concurrency, 600)
                await asyncio.sleep(1.0)
                full = server.rss_kib()
                second, wall_second = await drive(api, plans[half:], sizes.concurrency, 600)
            samples, wall = [*first, *second], wall_first + wall_second
            await asyncio.sleep(1.0)
            ended = server.rss_kib()
            after = server.metrics()
            # then no new digest at all: what still grows is not the caches
            known = [*pool, *new]
            plans = [
                planned(host, rng.sample(known, rng.choice((1, 2, 3, 4))))
                for _ in range(sizes.load_steady)
            ]
            steady, _ = await drive(api, plans, sizes.concurrency, 300)
            await asyncio.sleep(1.0)
            steady_end = server.rss_kib()
    audit = server.read_audit()
    wrong = [(x, p) for x in samples if (p := problem(x) or audit_problem(x, audit))]
    steady_wrong = sum(1 for x in steady if problem(x) or audit_problem(x, audit))
    steady_growth = (steady_end - ended) / ended * 100
    late = [s for s in samples if s.elapsed >= VALIDATE.timeout_seconds]
    unsent = sizes.load_requests - len(samples)
    on_error = after.total("wasmctl_on_error_total") - before.total("wasmctl_on_error_total")
    verified = after.total("wasmctl_verifications_total") - before.total(
        "wasmctl_verifications_total"
    )
    cold_samples = [s for s in samples if s.plan.cold]
    warm_samples = [s for s in samples if not s.plan.cold]
    caches = Counter(audit[s.plan.uid].cache for s in samples if s.plan.uid in audit)
    during = [kib for t, kib in rss.samples if t >= warmed_at]
    growth = (ended - warmed) / warmed * 100
    growth_full = (ended - full) / full * 100
    peak = max(during) if during else ended
    data = {
        "requests": len(samples),
        "unsent": unsent,
        "seconds": round(wall, 2),
        "perSecond": round(len(samples) / wall, 1),
        "coldRequests": len(cold_samples),
        "verifications": verified,
        "auditCache": dict(caches),
        "wrong": len(wrong),
        "wrongExamples": [f"{s.plan.uid}: {p}" for s, p in wrong[:5]],
        "late": len(late),
        "onError": on_error,
        "client": summary_ms([s.elapsed for s in samples]),
        "clientWarm": summary_ms([s.elapsed for s in warm_samples]),
        "clientCold": summary_ms([s.elapsed for s in cold_samples]),
        "serverWarm": summary_ms(server_latencies(server, warm_samples)),
        "serverCold": summary_ms(server_latencies(server, cold_samples)),
        "rssKiB": {
            "warmedUp": warmed,
            "cachesFull": full,
            "end": ended,
            "peak": peak,
            "growthPercent": growth,
            "growthAfterCachesFullPercent": growth_full,
        },
        "rssKiBPerVerification": round((ended - warmed) / max(verified, 1), 2),
        "steadyAfter": {
            "requests": len(steady),
            "wrong": steady_wrong,
            "rssKiB": {"start": ended, "end": steady_end},
            "growthPercent": steady_growth,
        },
        "rssSamples": [
            (round(t, 2), kib) for t, kib in rss.samples[:: max(1, len(rss.samples) // 400)]
        ],
        "verdictCacheEntries": {
            "warmedUp": before.total("wasmctl_verdict_cache_entries"),
            "end": after.total("wasmctl_verdict_cache_entries"),
        },
        "missingFromAudit": missing_from_audit(server, samples),
        "cpuCores": cpu.cores,
    }
    results.data["load"] = data
    results.add(
        "3",
        "load: answered, with the right verdict",
        f"{len(samples) - len(wrong)}/{sizes.load_requests} ({verified:.0f} verifications)",
        "all",
        not wrong and not unsent,
    )
    results.add(
        "3",
        "load: inside the deadline, no --on-error",
        f"{len(samples) - len(late)}/{len(samples)}, max {data['client']['max']:.0f} ms, "
        f"on-error {on_error:.0f}",
        "all < 10 s",
        not late and not on_error and not unsent,
    )
    results.add(
        "3",
        "load: server RSS, caches full (half-way) → end",
        f"{full / 1024:.1f} → {ended / 1024:.1f} MiB ({growth_full:+.1f} %)",
        "≤ +5 %",
        growth_full <= 5,
    )
    results.add(
        "3",
        "load: server RSS, end of warm-up → end (caches filling to their bounds)",
        f"{warmed / 1024:.1f} → {ended / 1024:.1f} MiB ({growth:+.1f} %)",
        "",
        None,
    )
    results.add(
        "3",
        "load: RSS per verification; then no new digest",
        f"{data['rssKiBPerVerification']:.1f} KiB; {len(steady)} more admissions: "
        f"{steady_growth:+.1f} % ({steady_wrong} wrong)",
        "",
        None,
    )
    results.add(
        "3",
        "load: throughput; client p50/p99 warm, cold",
        f"{data['perSecond']:.0f}/s; {data['clientWarm']['p50']:.1f}/"
        f"{data['clientWarm']['p99']:.0f}, {data['clientCold']['p50']:.0f}/"
        f"{data['clientCold']['p99']:.0f} ms",
        "",
        None,
    )
    results.add(
        "3",
        "load: server p50/p99 warm, cold (audit)",
        f"{data['serverWarm']['p50']:.2f}/{data['serverWarm']['p99']:.1f}, "
        f"{data['serverCold']['p50']:.0f}/{data['serverCold']['p99']:.0f} ms",
        "",
        None,
    )
    results.add("3", "load: CPU in cores while timed", cpu.describe(), "", None)
    for s, p in wrong[:3]:
        log(f"  wrong: {s.plan.uid} {[i.kind for i in s.plan.images]}: {p}")


async def connections(
    server: GateServer, host: str, images: list[Image], sizes: Sizes, results: Results
) -> None:
    """What a new TLS connection costs the server, and an open loop at the target rate
    (for information: the brief's targets are for 16 keep-alive clients)."""
    log("\n== 6. connections: handshakes, idle connections, an open loop")
    ep = endpoint(server.port, server.ca_bundle)
    report: dict[str, Any] = {}
    # (a) one fresh connection per admission, one after the other, as a client without
    # keep-alive (or beyond its idle pool) makes them
    plans = [planned(host, images) for _ in range(sizes.fresh_connections)]
    with server.cpu_meter() as cpu:
        began = time.monotonic()
        for plan in plans:
            async with AsyncApiserver(ep) as api:
                await api.call(VALIDATE, plan.body)
        wall = time.monotonic() - began
    fresh = cpu.cores["server"] * wall / len(plans) * 1000
    warm = results.data.get("warm", {}).get("serverCpuMsPerAdmission", float("nan"))
    report["freshConnection"] = {
        "serverCpuMsPerAdmission": round(fresh, 2),
        "perSecond": len(plans) / wall,
    }
    results.add(
        "6",
        "a new TLS connection per admission: server CPU",
        f"{fresh:.2f} ms/admission (keep-alive: {warm:.2f})",
        "",
        None,
    )
    # (b) idle connections: what each holds in the server's memory
    context = ep.client_context()
    rss_before = server.rss_kib()
    idle = [
        await asyncio.open_connection(
            "127.0.0.1", server.port, ssl=context, server_hostname=ep.server_name
        )
        for _ in range(sizes.idle_connections)
    ]
    await asyncio.sleep(1.0)
    rss_open = server.rss_kib()
    rss_closed = 0
    each = (rss_open - rss_before) / len(idle)
    report["idleConnections"] = {
        "count": len(idle),
        "rssKiB": {"before": rss_before, "open": rss_open, "closed": rss_closed},
        "kibEach": round(each),
    }
    # (b') over the cap: connections beyond MAX_CONNECTIONS are closed before TLS
    refused_before = server.metrics().total("wasmctl_refused_connections_total")
    extra = [
        await asyncio.open_connection("127.0.0.1", server.port)  # plain TCP is enough
        for _ in range(400 - len(idle))
    ]
    await asyncio.sleep(1.0)
    rss_over = server.rss_kib()
    for _, writer in [*extra, *idle]:
        writer.close()
    await asyncio.sleep(2.0)
    rss_closed = server.rss_kib()
    # read once there is room again: /metrics itself is a connection
    refused = server.metrics().total("wasmctl_refused_connections_total") - refused_before
    report["idleConnections"]["rssKiB"]["closed"] = rss_closed
    report["overTheCap"] = {
        "opened": len(extra) + len(idle),
        "refused": refused,
        "rssKiB": rss_over,
    }
    results.add(
        "6",
        f"{len(extra) + len(idle)} connections at once: refused over the cap of 256",
        f"{refused:.0f} refused; RSS {rss_over / 1024:.0f} MiB",
        "",
        None,
    )
    results.add(
        "6",
        f"{len(idle)} idle TLS connections: server RSS",
        f"+{each:.0f} KiB each; {rss_before / 1024:.0f} → {rss_open / 1024:.0f} → "
        f"{rss_closed / 1024:.0f} MiB closed",
        "",
        None,
    )
    # (c) an open loop: Poisson arrivals at the target rate, a client-go-like pool
    count = int(sizes.open_rate * sizes.open_seconds)
    plans = [planned(host, images) for _ in range(count)]
    async with AsyncApiserver(ep) as api:
        await drive(api, [planned(host, images) for _ in range(200)], sizes.concurrency, 30)
        opened = api.connections_opened
        with server.cpu_meter() as cpu:
            samples, wall, most = await drive_open(api, plans, sizes.open_rate)
        opened = api.connections_opened - opened
    audit = server.read_audit()
    wrong = [p for x in samples if (p := problem(x) or audit_problem(x, audit))]
    client = summary_ms([x.elapsed for x in samples])
    server_side = summary_ms(server_latencies(server, samples))
    rss_after = server.rss_kib()
    report["openLoop"] = {
        "rate": sizes.open_rate,
        "requests": len(samples),
        "perSecond": round(len(samples) / wall, 1),
        "mostInFlight": most,
        "connectionsOpened": opened,
        "client": client,
        "server": server_side,
        "wrong": len(wrong),
        "wrongExamples": wrong[:3],
        "cpuCores": cpu.cores,
        "rssKiBAfter": rss_after,
    }
    results.data["connections"] = report
    results.add(
        "6",
        f"open loop, {sizes.open_rate:.0f}/s for {sizes.open_seconds:.0f} s: client p50/p99",
        f"{client['p50']:.1f}/{client['p99']:.1f} ms, server {server_side['p50']:.2f}/"
        f"{server_side['p99']:.2f} ms",
        "",
        None,
    )
    results.add(
        "6",
        "open loop: failed, in flight, connections, RSS",
        f"{len(wrong)} failed, ≤ {most} in flight, {opened} new conns, "
        f"RSS {rss_after / 1024:.0f} MiB",
        "",
        None,
    )
    results.add("6", "open loop: CPU in cores", cpu.describe(), "", None)
    for text in wrong[:2]:
        log(f"  e.g. {text[:300]}")


class SlowProxy(FaultProxy):
    """The fault proxy, holding each request `delay` s before it is handled (a registry
    that far away); 0 by default."""

    delay = 0.0

    def _take_fault(self, method: str, path: str) -> Any:
        if self.delay:
            time.sleep(self.delay)
        return super()._take_fault(method, path)


ON_ERROR_WORDS = "registry unreachable"


async def outage(
    server: GateServer,
    proxy: SlowProxy,
    corpus: dict[str, list[Image]],
    sizes: Sizes,
    results: Results,
) -> None:
    host = proxy.host
    log(f"\n== 4. registry outage mid-load (through the fault proxy {host})")
    cached = corpus["outage-cached"]
    report: dict[str, Any] = {}
    async with AsyncApiserver(endpoint(server.port, server.ca_bundle)) as api:
        await prime(api, host, cached)
        background: list[Sample] = []
        stop = asyncio.Event()

        async def keep_loading() -> None:
            """Pods of cached images, 4 clients, all along."""
            rng = random.Random(SEED + 1)
            while not stop.is_set():
                plans = [planned(host, rng.sample(cached, rng.choice((1, 2)))) for _ in range(20)]
                got, _ = await drive(api, plans, 4, 60)
                background.extend(got)

        def reset() -> None:
            proxy.reset_connection(None, r".", after_bytes=None, times=None)

        def unavailable() -> None:
            proxy.fail(503, None, r".", times=None)

        loader = asyncio.ensure_future(keep_loading())
        try:
            for label, group, timeout, inject in (
                ("reset", "outage-reset", 10, reset),
                ("503", "outage-503", 10, unavailable),
                ("reset, ?timeout=5s", "outage-5s", 5, reset),
            ):
                mark = len(background)
                report[label] = await one_outage(
                    server, proxy, api, corpus[group], timeout, inject, results, label
                )
                during = background[mark:]
                cached_wrong = [p for p in (problem(s) for s in during) if p]
                report[label] |= {"cachedAnswered": len(during), "cachedWrong": cached_wrong[:3]}
                results.add(
                    "4",
                    f"outage ({label}): cached verdicts unchanged",
                    f"{len(during) - len(cached_wrong)}/{len(during)} right",
                    "all",
                    not cached_wrong and bool(during),
                )
        finally:
            stop.set()
            await loader
    results.data["outage"] = report


async def one_outage(
    server: GateServer,
    proxy: SlowProxy,
    api: AsyncApiserver,
    new: list[Image],
    timeout: int,
    inject: Callable[[], None],
    results: Results,
    label: str,
) -> dict[str, Any]:
    """New digests during an outage, then again after it."""
    host = proxy.host
    webhook = Webhook(VALIDATE.name, VALIDATE.path, timeout_seconds=timeout)
    before = server.metrics()
    proxy.clear_log()
    inject()
    plans = [planned(host, [i]) for i in new]
    during, _ = await drive(api, plans, len(new), 60, webhook)
    proxy.clear_faults()
    tried = len(proxy.requests)
    middle = server.metrics()
    await asyncio.sleep(0.5)
    plans = [planned(host, [i]) for i in new]
    recovered, _ = await drive(api, plans, len(new), 60)
    after = server.metrics()
    audit = server.read_audit()

    budget = timeout - 1.0  # the server answers a margin before the apiserver's deadline
    bad = [p for p in (on_error_problem(s, budget, ON_ERROR_WORDS) for s in during) if p]
    slowest = max(s.elapsed for s in during)
    recovered_wrong = [p for p in (problem(s) for s in recovered) if p]
    anew = sum(1 for s in recovered if s.plan.uid in audit and audit[s.plan.uid].cache == "miss")

    def delta(name: str, late: Metrics = middle, **labels: str) -> float:
        return late.total(name, **labels) - before.total(name, **labels)

    errors = delta("wasmctl_registry_errors_total")
    judged = timeout == VALIDATE.timeout_seconds
    results.add(
        "4",
        f"outage ({label}): new digests → on-error",
        f"{len(during) - len(bad)}/{len(during)} '{ON_ERROR_WORDS}', slowest {slowest:.1f} s",
        f"all < {budget:.0f} s" if judged else "info",
        not bad if judged else None,
    )
    results.add(
        "4", f"outage ({label}): registry errors counted", f"+{errors:.0f}", "> 0", errors > 0
    )
    results.add(
        "4",
        f"outage ({label}): after recovery, real verdicts",
        f"{len(recovered) - len(recovered_wrong)}/{len(recovered)} right, {anew} verified anew",
        "all, anew",
        not recovered_wrong and anew == len(recovered),
    )
    for text in bad:
        log(f"  {label}: {text}")
    return {
        "timeoutSeconds": timeout,
        "newDigests": len(new),
        "answers": [
            {"elapsedMs": round(s.elapsed * 1000), "code": s.code, "message": s.message}
            for s in during
        ],
        "wrong": bad,
        "slowestMs": round(slowest * 1000),
        "registryRequestsDuringOutage": tried,
        "registryErrors": errors,
        "onErrorByReason": {
            r: delta("wasmctl_on_error_total", reason=r) for r in ("outage", "timeout")
        },
        "recoveredWrong": recovered_wrong[:3],
        "recoveredVerifiedAnew": anew,
        "verificationsAfterRecovery": delta("wasmctl_verifications_total", after)
        - delta("wasmctl_verifications_total"),
    }


async def coalescing(
    server: GateServer,
    proxy: SlowProxy,
    corpus: dict[str, list[Image]],
    sizes: Sizes,
    results: Results,
) -> None:
    host = proxy.host
    baseline, judged, loopback = corpus["coalesce"]
    hit = corpus["outage-cached"][0]
    layer = layer_digest(proxy.upstream.host + f":{proxy.upstream.port}", judged)
    log(f"\n== 5. coalescing: {sizes.coalesce} concurrent first requests for one digest")
    report: dict[str, Any] = {}
    # Enough idle keep-alive connections for every request at once (the stand-in keeps 25
    # idle, as client-go does): the requests then arrive together, not one handshake apart.
    apis = [
        AsyncApiserver(endpoint(server.port, server.ca_bundle))
        for _ in range(math.ceil(sizes.coalesce / 25))
    ]
    try:
        for api in apis:
            await asyncio.gather(
                *(api.call(VALIDATE, planned(host, [hit]).body) for _ in range(25))
            )

        async def burst(image: Image, count: int, delay: float) -> dict[str, Any]:
            proxy.delay = delay
            proxy.clear_log()
            before = server.metrics()
            plans = [planned(host, [image]) for _ in range(count)]
            calls = [apis[i % len(apis)].call(VALIDATE, p.body) for i, p in enumerate(plans)]
            began = time.monotonic()
            answers = await asyncio.gather(*calls)
            wall = time.monotonic() - began
            await asyncio.sleep(0.3)
            after = server.metrics()
            proxy.delay = 0.0
            requests = proxy.requests
            samples = [sample_of(p, 0, r) for p, r in zip(plans, answers, strict=True)]
            audit = server.read_audit()
            return {
                "requests": count,
                "wrong": sum(1 for s in samples if problem(s)),
                "seconds": round(wall, 3),
                "verifications": after.total("wasmctl_verifications_total")
                - before.total("wasmctl_verifications_total"),
                "coalesced": after.total("wasmctl_coalesced_total")
                - before.total("wasmctl_coalesced_total"),
                "cacheHits": sum(
                    1 for s in samples if s.plan.uid in audit and audit[s.plan.uid].cache == "hit"
                ),
                "registryRequests": len(requests),
                "registryByPath": dict(
                    Counter(f"{r.method} {_shape(r.path, image, layer)}" for r in requests)
                ),
                "layerGets": sum(
                    1 for r in requests if r.method == "GET" and r.path.endswith(f"/blobs/{layer}")
                ),
                "repeated": sum(
                    n - 1 for n in Counter((r.method, r.path) for r in requests).values()
                ),
            }

        delay = sizes.coalesce_delay
        report["single"] = await burst(baseline, 1, delay)
        report["burst"] = await burst(judged, sizes.coalesce, delay)
        report["burstLoopbackSpeed"] = await burst(loopback, sizes.coalesce, 0.0)
    finally:
        for api in apis:
            await api.aclose()
    results.data["coalescing"] = {"delaySeconds": delay, **report}
    one, many, fast = report["single"], report["burst"], report["burstLoopbackSpeed"]
    n = sizes.coalesce
    results.add(
        "5",
        f"coalescing (+{delay * 1000:.0f} ms/request): verifications",
        f"{many['verifications']:.0f}",
        "= 1",
        many["verifications"] == 1,
    )
    results.add(
        "5",
        f"coalescing (+{delay * 1000:.0f} ms/request): coalesced",
        f"{many['coalesced']:.0f}",
        f"= {n - 1}",
        many["coalesced"] == n - 1,
    )
    results.add(
        "5",
        "coalescing: module blob GETs (proxy log)",
        f"{many['layerGets']} ({many['registryRequests']} requests, none repeated: "
        f"{many['repeated'] == 0}; one alone: {one['registryRequests']})",
        "= 1",
        many["layerGets"] == 1 and many["repeated"] == 0,
    )
    results.add(
        "5", f"coalescing: {n} answers right", f"{n - many['wrong']}/{n}", "all", many["wrong"] == 0
    )
    results.add(
        "5",
        "coalescing at loopback speed (no delay)",
        f"{fast['verifications']:.0f} verification, {fast['coalesced']:.0f} coalesced, "
        f"{fast['cacheHits']} hits",
        "info",
        None,
    )


def _shape(path: str, image: Image, layer: str) -> str:
    """A registry path with the digests named: what a verification asks for."""
    return (
        path.replace(image.digest, "<subject>")
        .replace(layer, "<module>")
        .replace(image.digest.replace(":", "-"), "<subject-tag>")
    )


# -- the run ---------------------------------------------------------------------------------


def context() -> dict[str, Any]:
    import wasmctl

    rev = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--", "wasmctl"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {
        "ncpu": os.cpu_count(),
        "loadBefore": os.getloadavg()[0],
        "python": platform.python_version(),
        "wasmctl": wasmctl.__version__,
        "gitRev": rev + ("+dirty" if dirty else ""),
    }


# The verdict cache of the server the load runs on: full before the load's half-way mark
# (1,000 of its 2,000 new digests), so what the memory does after that is not the cache
# filling up to its bound.
LOAD_CACHE_SIZE = 800


def server_arguments(policy: Path, cert: Path, key: Path, *plain: str) -> list[str]:
    arguments = ["--policy", str(policy), "--tls-cert", str(cert), "--tls-key", str(key)]
    for host in plain:
        arguments += ["--plain-http", host]
    return arguments


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts (a smoke run)")
    parser.add_argument(
        "--json", type=Path, default=WORK / "admission-results.json", help="results file"
    )
    parser.add_argument("--time-limit", type=float, default=1200, help="seconds, all included")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="only scenario 1, with the server under cProfile (CPU time); prints where it goes",
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else Sizes()

    def give_up(signum: int, frame: Any) -> None:
        raise SystemExit(f"stopped by signal {signum} (time limit {args.time_limit:.0f} s?)")

    signal.signal(signal.SIGTERM, give_up)
    signal.signal(signal.SIGALRM, give_up)
    signal.alarm(int(args.time_limit))
    try:
        if args.profile:
            return profile_warm(sizes)
        return run(sizes, args.json)
    finally:
        signal.alarm(0)


@dataclass(frozen=True)
class Prepared:
    work: Path
    ca: WebhookCA
    cert: Path
    key: Path
    signing_key: Path
    policy: Path


def prepare(work: Path) -> Prepared:
    """A clean work directory, the environment, the server's certificate, a cosign key
    pair and the policy: signatures by that key, the no-network scan."""
    from wasmctl.sign.keys import generate_key_pair, write_key_pair

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for name in list(os.environ):
        if re.match(r"^(https?_proxy|all_proxy|no_proxy)$", name, re.IGNORECASE):
            del os.environ[name]
    os.environ["REGISTRY_AUTH_FILE"] = str(work / "auth.json")
    os.environ["DOCKER_CONFIG"] = str(work / "docker")
    ca = WebhookCA()
    cert, key = ca.issue().write(work / "tls")
    signing_key, public = write_key_pair(generate_key_pair(b""), work / "cosign")
    policy = work / "gate.yaml"
    policy.write_text(
        json.dumps(
            {
                "version": 1,
                "runtimeClasses": [RUNTIME_CLASS],
                "signatures": {"keys": [public.name]},
                "scan": {"presets": ["no-network"]},
            }
        )
    )
    return Prepared(work, ca, cert, key, signing_key, policy)


def profile_warm(sizes: Sizes) -> int:
    """Scenario 1 against a server under cProfile; prints the functions that take the
    server's CPU, per admission."""
    import pstats

    from tests.registry import run_registry

    ready = prepare(WORK / "admission-profile")
    profile = ready.work / "server.prof"
    with run_registry(ready.work / "registry") as registry:
        corpus = build_corpus(registry.host, ready.signing_key, {"warm": [SIGNED] * 8})
        arguments = server_arguments(ready.policy, ready.cert, ready.key, registry.host)
        results = Results()
        with GateServer(ready.work, "profiled", arguments, ready.ca.ca_bundle, profile) as server:
            asyncio.run(warm(server, registry.host, corpus["warm"], sizes, results))
        split_warm_path(registry.host, corpus["warm"], ready.policy)
    count = sizes.warm_requests + sizes.warm_warmup + 8
    stats = pstats.Stats(str(profile))
    print(
        f"\n{count} admissions; CPU seconds in all: {stats.total_tt:.2f} "  # type: ignore[attr-defined]
        f"({stats.total_tt / count * 1000:.3f} ms each, with cProfile's own overhead)"
    )  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(40)
    print(f"profile: {profile} (python -m pstats {profile})")
    return 0


def split_warm_path(host: str, images: list[Image], policy: Path, runs: int = 2000) -> None:
    """The warm path of one 8-image admission, piece by piece, in this process (no I/O, no
    profiler: what each step costs on its own, in microseconds)."""
    import timeit

    from wasmctl._json import too_deep
    from wasmctl.gate.serve.admission import Admission, Judged, ServeOptions, audit_line, load
    from wasmctl.gate.serve.metrics import Metrics
    from wasmctl.gate.serve.review import parse_review, response

    options = ServeOptions(policy=policy, plain_http=frozenset({host}))
    admission = Admission(options, Metrics())
    admission.install(load(options))
    body = planned(host, images).body
    review = parse_review(body)

    async def validate(times: int) -> Any:
        decision = None
        for _ in range(times):
            decision = await admission.validate(review, 9.0)
        return decision

    decision = asyncio.run(validate(1))  # verifies the 8 images: cached from now on
    gc.collect()
    gc.freeze()  # this process's own objects (the scenario's samples) stay out of the GC's way
    assert decision.verdict == "allow", decision.record
    loaded = admission.loaded
    assert loaded is not None
    targets = admission._targets(review, loaded.policy)
    judged = [Judged(t) for t in targets]
    for item in judged:
        admission._from_cache(loaded, item)
    document = json.loads(body)

    def each(step: Callable[[], Any]) -> float:
        return timeit.timeit(step, number=runs) / runs * 1e6

    began = time.perf_counter()
    asyncio.run(validate(runs))
    validated = (time.perf_counter() - began) / runs * 1e6
    steps = [
        ("parse_review (the body, 7.4 KB)", each(lambda: parse_review(body))),
        ("  json.loads alone", each(lambda: json.loads(body))),
        ("  depth walk: wasmctl._json.too_deep", each(lambda: too_deep(document, 64))),
        ("Admission.validate, 8 cached images", validated),
        ("  of which _targets", each(lambda: admission._targets(review, loaded.policy))),
        (
            "  of which _from_cache x 8",
            each(lambda: [admission._from_cache(loaded, Judged(t)) for t in targets]),
        ),
        ("  of which _decide", each(lambda: admission._decide(review, judged))),
        ("audit_line", each(lambda: audit_line(review, "validate", decision, 0.001))),
        ("response", each(lambda: response(review.uid, decision.answer))),
    ]
    admission.close()
    print("\nthe warm path in process (µs per admission, no profiler):")
    for name, micros in steps:
        print(f"  {name:<40}{micros:8.1f}")


def run(sizes: Sizes, output: Path) -> int:
    from tests.registry import run_registry

    ready = prepare(WORK / "admission")
    work, ca, cert, key, policy = ready.work, ready.ca, ready.cert, ready.key, ready.policy
    signing_key = ready.signing_key
    results = Results()
    results.data["context"] = context()
    results.data["sizes"] = asdict(sizes)
    began = time.monotonic()

    with run_registry(work / "registry") as registry:
        host = registry.host
        plan = corpus_plan(sizes)
        count = sum(len(k) for k in plan.values())
        log(f"== setup: {count} artifacts into docker-registry on {host} (8 threads)")
        started = time.monotonic()
        corpus = build_corpus(host, signing_key, plan)
        setup = time.monotonic() - started
        kinds = Counter(i.kind for g in corpus.values() for i in g)
        results.data["setup"] = {"artifacts": count, "seconds": round(setup, 1), **kinds}
        results.add(
            "0",
            "setup: build, push, sign (not timed below)",
            f"{count} artifacts in {setup:.0f} s ({kinds[SIGNED] + kinds[SOCKETS]} signed)",
            "",
            None,
        )
        gc.collect()
        gc.freeze()  # the client's own garbage collections stay out of the latencies

        registry_pid = find_pid(str(registry.config))
        arguments = [
            *server_arguments(policy, cert, key, host),
            "--cache-size",
            str(LOAD_CACHE_SIZE),
        ]
        with GateServer(work, "server-a", arguments, ca.ca_bundle) as server:
            server.registry_pid = registry_pid
            results.data["serverA"] = {"pid": server.pid, "rssAtStartKiB": server.rss_kib()}
            asyncio.run(warm(server, host, corpus["warm"], sizes, results))
            asyncio.run(cold(server, host, corpus["cold"], sizes, results))
            asyncio.run(load(server, host, corpus["pool"], corpus["load"], sizes, results))
            asyncio.run(connections(server, host, corpus["warm"], sizes, results))
            results.data["serverA"]["metricsAtEnd"] = server.get("/metrics").text

        with SlowProxy(host) as proxy:
            # the cached denials must outlive the scenario (the default --deny-ttl is 1m)
            arguments = [*server_arguments(policy, cert, key, proxy.host), "--deny-ttl", "10m"]
            with GateServer(work, "server-b", arguments, ca.ca_bundle) as server:
                server.registry_pid = registry_pid
                asyncio.run(outage(server, proxy, corpus, sizes, results))
                asyncio.run(coalescing(server, proxy, corpus, sizes, results))
                results.data["serverB"] = {"metricsAtEnd": server.get("/metrics").text}

    results.data["seconds"] = round(time.monotonic() - began, 1)
    results.data["rows"] = [asdict(r) | {"verdict": r.verdict} for r in results.rows]
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results.data, indent=2, default=str) + "\n")
    print()
    print(results.table())
    failed = sum(1 for r in results.rows if r.passed is False)
    print(
        f"\n{len(results.rows)} rows, {failed} FAIL; {results.data['seconds']:.0f} s in all "
        f"(setup {setup:.0f} s); results in {output}, logs in {work}"
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as error:  # could not be run: say why, exit 2
        import traceback

        traceback.print_exc()
        log(f"error: the benchmark could not run: {type(error).__name__}: {error}")
        sys.exit(2)

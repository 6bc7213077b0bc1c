"""`gate serve` against the real registry behind a recording, fault-injecting proxy: what
it caches and what it never does, one verification for many askers, outages and deadlines
answered by --on-error, certificate rotation, start-up failures and a draining stop.

The proxy's request log is the registry's access log: "the registry was not asked again"
is a count of requests, never a time."""

from __future__ import annotations

import concurrent.futures
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.admission import reviews
from tests.admission.conftest import Artifacts, write_policy
from tests.admission.serving import SERVICE_NAME, GateServer, Tls, run_once, running
from tests.faultproxy import FaultProxy
from tests.registry import RegistryServer

WASM = {"runtime_class": "crun-wasm"}


@pytest.fixture
def proxy(registry: RegistryServer) -> Iterator[FaultProxy]:
    with FaultProxy(registry.host) as proxied:
        yield proxied


def through(proxy: FaultProxy, ref: str, artifacts: Artifacts) -> str:
    """The same image, named through the proxy."""
    return ref.replace(artifacts.host, proxy.host, 1)


def module_layer(ref: str) -> str:
    """The digest of the module layer of `ref`."""
    from wasmctl.oci.models import Manifest
    from wasmctl.oci.registry import RegistryClient

    host, _, rest = ref.partition("/")
    repository, _, tag = rest.rpartition(":")
    with RegistryClient(host, plain_http=True) as client:
        raw, _, _ = client.get_manifest(repository, tag)
    [layer] = Manifest.from_bytes(raw).layers
    return layer.digest


def pod(image: str, **settings: Any) -> dict[str, Any]:
    return reviews.pod_create(image=image, **{**WASM, **settings})


def post(
    server: GateServer,
    review: dict[str, Any],
    *,
    path: str = "/validate",
    timeout: int = 10,
    client: httpx.Client | None = None,
) -> dict[str, Any]:
    """The response of one AdmissionReview call, checked for the uid; the client gives up
    at the apiserver's deadline, so an answer that comes late fails the test."""
    own = client is None
    client = client or server.client()
    try:
        answer = client.post(
            f"{server.base}{path}?timeout={timeout}s", json=review, timeout=timeout
        )
    finally:
        if own:
            client.close()
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["apiVersion"] == "admission.k8s.io/v1" and body["kind"] == "AdmissionReview"
    response: dict[str, Any] = body["response"]
    assert response["uid"] == review["request"]["uid"]
    return response


def start(tmp_path: Path, artifacts: Artifacts, proxy: FaultProxy, *args: str) -> Any:
    return running(tmp_path / "server", artifacts.policy, "--plain-http", proxy.host, *args)


# -- the cache -------------------------------------------------------------------------------


def test_a_warm_verdict_asks_the_registry_nothing(
    tmp_path: Path, artifacts: Artifacts, proxy: FaultProxy
) -> None:
    image = through(proxy, artifacts.signed, artifacts)
    with start(tmp_path, artifacts, proxy) as server:
        assert post(server, pod(image))["allowed"] is True
        asked = proxy.count()
        assert asked > 0
        for _ in range(5):
            assert post(server, pod(image))["allowed"] is True
        assert proxy.count() == asked  # neither the tag nor the verdict went back
        [first, *rest] = [r for r in server.audit() if r["endpoint"] == "validate"]
        assert first["cache"] == "miss" and {r["cache"] for r in rest} == {"hit"}
        assert server.metric("wasmctl_verdict_cache_hits_total") == 5
        assert server.metric("wasmctl_verifications_total", outcome="pass") == 1


def test_fifty_first_requests_for_one_digest_make_one_verification(
    tmp_path: Path, artifacts: Artifacts, proxy: FaultProxy
) -> None:
    image = through(proxy, artifacts.signed, artifacts)
    with start(tmp_path, artifacts, proxy) as server:
        barrier = threading.Barrier(50)

        def ask(_: int) -> bool:
            with server.client() as client:
                client.get(server.base + "/healthz")  # connected before the race
                barrier.wait(timeout=30)
                return bool(post(server, pod(image), client=client)["allowed"])

        with concurrent.futures.ThreadPoolExecutor(50) as pool:
            answers = list(pool.map(ask, range(50)))
        assert answers == [True] * 50
        assert server.metric("wasmctl_verifications_total", outcome="pass") == 1
        # the module's layer, the one blob only a verification reads, was fetched once
        layer = module_layer(artifacts.signed)
        assert proxy.count("GET", f"/blobs/{layer}$") == 1, [r.path for r in proxy.requests]
        assert proxy.count("GET", r"/manifests/v1$") == 1  # and the tag resolved once
        joined = server.metric("wasmctl_coalesced_total")
        hits = server.metric("wasmctl_verdict_cache_hits_total")
        assert joined + hits >= 49


def test_editing_the_policy_forgets_every_verdict(
    tmp_path: Path, artifacts: Artifacts, proxy: FaultProxy
) -> None:
    policy = write_policy(tmp_path / "gate.yaml", str(artifacts.key.with_suffix(".pub")))
    image = through(proxy, artifacts.signed, artifacts)
    with running(tmp_path / "server", policy, "--plain-http", proxy.host) as server:
        assert post(server, pod(image))["allowed"] is True
        assert post(server, pod(image))["allowed"] is True
        write_policy(policy, str(artifacts.key.with_suffix(".pub")), formats=["compat"])
        assert server.wait_for("wasmctl_reloads_total", 1, what="policy", result="ok") == 1
        denied = post(server, pod(image))
        assert denied["allowed"] is False and "format" in denied["status"]["message"]
        assert server.audit()[-1]["cache"] == "miss"


def test_a_policy_that_no_longer_loads_leaves_the_old_one_in_force(
    tmp_path: Path, artifacts: Artifacts, proxy: FaultProxy
) -> None:
    policy = write_policy(tmp_path / "gate.yaml", str(artifacts.key.with_suffix(".pub")))
    image = through(proxy, artifacts.signed, artifacts)
    with running(tmp_path / "server", policy, "--plain-http", proxy.host) as server:
        assert post(server, pod(image))["allowed"] is True
        policy.write_text("version: 1\nsignatures: {keys: []}\n", encoding="utf-8")
        assert server.wait_for("wasmctl_reloads_total", 1, what="policy", result="error") == 1
        assert post(server, pod(image))["allowed"] is True
        assert server.audit()[-1]["cache"] == "hit"  # the same policy, the same verdicts
        assert "the one in force stays" in server.stderr()
        assert server.get("/readyz").status_code == 200


def test_a_denial_is_remembered_for_less_time_than_a_pass(
    tmp_path: Path, artifacts: Artifacts, proxy: FaultProxy
) -> None:
    signed = through(proxy, artifacts.signed, artifacts)
    unsigned = through(proxy, artifacts.unsigned, artifacts)
    with start(tmp_path, artifacts, proxy, "--deny-ttl", "0.3s", "--tag-ttl", "1h") as server:
        assert post(server, pod(signed))["allowed"] is True
        assert post(server, pod(unsigned))["allowed"] is False
        time.sleep(0.5)
        assert post(server, pod(signed))["allowed"] is True
        assert post(server, pod(unsigned))["allowed"] is False
        assert [r["cache"] for r in server.audit()] == ["miss", "miss", "hit", "miss"]
        assert server.metric("wasmctl_verifications_total", outcome="deny") == 2
        assert server.metric("wasmctl_verifications_total", outcome="pass") == 1


# -- outages and deadlines -------------------------------------------------------------------


@pytest.mark.parametrize("on_error", ["deny", "allow"])
def test_an_outage_is_answered_as_an_outage_and_nothing_of_it_is_cached(
    tmp_path: Path, artifacts: Artifacts, proxy: FaultProxy, on_error: str
) -> None:
    signed = through(proxy, artifacts.signed, artifacts)
    socket_server = through(proxy, artifacts.socket, artifacts)
    with start(tmp_path, artifacts, proxy, "--on-error", on_error) as server:
        assert post(server, pod(signed))["allowed"] is True
        proxy.fail(503, None, r".", times=None)
        assert post(server, pod(signed))["allowed"] is True  # cached: still answered
        during = post(server, pod(socket_server))
        if on_error == "deny":
            assert during["allowed"] is False
            message = during["status"]["message"]
        else:
            assert during["allowed"] is True
            [message] = during["warnings"]
        assert "registry unreachable" in message and "signature" not in message
        assert server.metric("wasmctl_registry_errors_total") >= 1
        assert server.metric("wasmctl_on_error_total", reason="outage") == 1
        proxy.clear_faults()
        after = post(server, pod(socket_server))  # the registry is back: a real verdict
        assert after["allowed"] is False and "scan" in after["status"]["message"]
        verdicts = [r["verdict"] for r in server.audit()]
        assert verdicts == ["allow", "allow", f"error-{on_error}", "deny"]


@pytest.fixture
def black_hole() -> Iterator[str]:
    """A loopback "registry" that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        for conn in accepted:
            conn.close()
        listener.close()


def test_a_registry_that_never_answers_gets_on_error_before_the_deadline(
    tmp_path: Path, artifacts: Artifacts, black_hole: str
) -> None:
    image = f"{black_hole}/acme/app:v1"
    with running(tmp_path / "s", artifacts.policy, "--plain-http", black_hole) as server:
        answer = post(server, pod(image), timeout=2)  # the client gives up at 2 s
        assert answer["allowed"] is False
        assert "no verdict within the deadline" in answer["status"]["message"]
        assert answer["status"]["code"] == 503
        assert server.metric("wasmctl_on_error_total", reason="timeout") == 1
        again = post(server, pod(image), timeout=2)  # joins the one still running
        assert again["allowed"] is False
        assert server.metric("wasmctl_verdict_cache_entries") == 0


def test_sigterm_answers_what_is_in_flight_then_exits_0(
    tmp_path: Path, artifacts: Artifacts, black_hole: str
) -> None:
    with running(tmp_path / "s", artifacts.policy, "--plain-http", black_hole) as server:
        result: dict[str, Any] = {}

        def ask() -> None:
            result.update(post(server, pod(f"{black_hole}/acme/app:v1"), timeout=3))

        asker = threading.Thread(target=ask)
        asker.start()
        time.sleep(0.5)  # in flight: its verification waits on the black hole
        assert server.stop() == 0
        asker.join(10)
        assert result.get("allowed") is False  # answered (by --on-error), not dropped
        assert "stopped" in server.stderr()


# -- TLS ------------------------------------------------------------------------------------


def _serial(host: str, port: int, context: ssl.SSLContext) -> int:
    with (
        socket.create_connection((host, port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=SERVICE_NAME) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    from cryptography import x509

    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def _keep_alive_get(tls: ssl.SSLSocket, path: str) -> bytes:
    tls.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += tls.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = int(next(x.split(b":")[1] for x in lines if x.lower().startswith(b"content-length")))
    while len(body) < length:
        body += tls.recv(4096)
    return head.split(b"\r\n")[0] + b" " + body


def test_a_rotated_certificate_serves_new_connections_and_keeps_the_old_ones(
    tmp_path: Path, artifacts: Artifacts
) -> None:
    tls = Tls.make(tmp_path / "tls")
    context = tls.client_context()
    with running(tmp_path / "s", artifacts.policy, tls=tls) as server:
        before = _serial(server.host, server.port, context)
        with (
            socket.create_connection((server.host, server.port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname=SERVICE_NAME) as kept,
        ):
            assert _keep_alive_get(kept, "/healthz").startswith(b"HTTP/1.1 200")
            tls.issue()
            server.wait_for("wasmctl_reloads_total", 1, what="certificate", result="ok")
            after = _serial(server.host, server.port, context)
            assert after != before
            # the connection made before the rotation still answers, on its old session
            assert _keep_alive_get(kept, "/healthz").startswith(b"HTTP/1.1 200")


def test_a_half_written_rotation_keeps_the_certificate_in_force(
    tmp_path: Path, artifacts: Artifacts
) -> None:
    tls = Tls.make(tmp_path / "tls")
    with running(tmp_path / "s", artifacts.policy, tls=tls) as server:
        before = _serial(server.host, server.port, tls.client_context())
        other = Tls.make(tmp_path / "other")
        tls.key.write_bytes(other.key.read_bytes())  # the key of another certificate
        server.wait_for("wasmctl_reloads_total", 1, what="certificate", result="error")
        assert _serial(server.host, server.port, tls.client_context()) == before
        assert server.get("/healthz").status_code == 200


def test_a_client_that_does_not_trust_the_ca_gets_no_answer(
    tmp_path: Path, artifacts: Artifacts
) -> None:
    with running(tmp_path / "s", artifacts.policy) as server:
        stranger = Tls.make(tmp_path / "stranger").client_context()
        with pytest.raises(ssl.SSLCertVerificationError):
            _serial(server.host, server.port, stranger)


# -- start-up and the audit log --------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ("no-cert", "cannot use the TLS certificate"),
        ("bad-policy", "no `version`"),
        ("missing-key-file", "cosign.pub"),
        ("mode", "--mode must be enforce or warn"),
        ("ttl", "--deny-ttl"),
    ],
)
def test_what_cannot_be_served_stops_the_start_with_exit_2(
    tmp_path: Path, artifacts: Artifacts, change: str, says: str
) -> None:
    tls = Tls.make(tmp_path / "tls")
    policy = artifacts.policy
    extra: list[str] = []
    if change == "no-cert":
        tls.cert.write_text("not a certificate")
    elif change == "bad-policy":
        policy = tmp_path / "gate.yaml"
        policy.write_text("signatures: {keys: [cosign.pub]}\n")
    elif change == "missing-key-file":
        policy = write_policy(tmp_path / "gate.yaml", "cosign.pub")
    elif change == "mode":
        extra = ["--mode", "audit"]
    else:
        extra = ["--deny-ttl", "a while"]
    done = run_once([
        "gate", "serve", "--policy", str(policy), "--tls-cert", str(tls.cert),
        "--tls-key", str(tls.key), "--address", "127.0.0.1", "--port", "0", *extra,
    ])  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert says in done.stderr and "Traceback" not in done.stderr


def test_a_port_in_use_is_exit_2(tmp_path: Path, artifacts: Artifacts) -> None:
    tls = Tls.make(tmp_path / "tls")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = str(taken.getsockname()[1])
        done = run_once([
            "gate", "serve", "--policy", str(artifacts.policy), "--tls-cert", str(tls.cert),
            "--tls-key", str(tls.key), "--address", "127.0.0.1", "--port", port,
        ])  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "cannot listen on 127.0.0.1" in done.stderr


def test_the_audit_log_has_a_line_per_decision_and_no_object(
    tmp_path: Path, artifacts: Artifacts, proxy: FaultProxy
) -> None:
    image = through(proxy, artifacts.unsigned, artifacts)
    review = pod(image)
    container = review["request"]["object"]["spec"]["containers"][0]
    container["env"] = [{"name": "API_TOKEN", "value": "hunter2-do-not-log"}]
    with start(tmp_path, artifacts, proxy) as server:
        denied = post(server, review)
        assert post(server, reviews.pod_delete())["allowed"] is True
        with server.client() as client:
            assert client.post(server.base + "/validate", content=b"{").status_code == 400
        text = server.audit_path.read_text()
        lines = [json.loads(line) for line in text.splitlines()]
    assert [line["verdict"] for line in lines] == ["deny", "skip", "invalid"]
    first = lines[0]
    assert first["uid"] == review["request"]["uid"]
    assert (first["namespace"], first["kind"], first["name"]) == (
        "default",
        "Pod",
        "web-7d9f8b6c4d-*",
    )
    assert first["images"][0]["image"] == image and first["images"][0]["digest"].startswith(
        "sha256:"
    )
    assert first["images"][0]["checks"][0]["check"] == "signature"
    assert isinstance(first["latencyMs"], float) and first["cache"] == "miss"
    assert image in denied["status"]["message"] and "signature" in denied["status"]["message"]
    assert "hunter2" not in text and "API_TOKEN" not in text and "serviceAccount" not in text


def test_a_trusted_root_out_of_reach_leaves_the_server_up_but_not_ready(
    tmp_path: Path, artifacts: Artifacts
) -> None:
    keyless = {
        "keyless": [
            {
                "identity": "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1",
                "issuer": "https://token.actions.githubusercontent.com",
            }
        ]
    }
    policy = write_policy(tmp_path / "gate.yaml", "unused.pub", signatures=keyless)
    # TUF's requests go to a closed loopback port: out of reach, at once, on any machine
    unreachable = {"HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": "127.0.0.1,localhost"}
    with running(tmp_path / "s", policy, env=unreachable, wait_ready=False) as server:
        deadline = time.monotonic() + 30
        while "not ready" not in server.stderr() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.get("/healthz").status_code == 200
        ready = server.get("/readyz")
        assert ready.status_code == 503
        assert "trusted root" in ready.text
        answer = post(server, pod(artifacts.signed))
        assert answer["allowed"] is False and answer["status"]["code"] == 503
        assert "not-ready" in answer["status"]["message"]
        assert server.metric("wasmctl_ready") == 0


@pytest.mark.parametrize("tag_ttl", ["1h", "0.2s"], ids=["tag-cached", "tag-expired"])
def test_during_an_outage_a_denial_past_its_ttl_still_denies_under_on_error_allow(
    tmp_path: Path, artifacts: Artifacts, proxy: FaultProxy, tag_ttl: str
) -> None:
    unsigned = through(proxy, artifacts.unsigned, artifacts)
    signed = through(proxy, artifacts.signed, artifacts)
    args = (
        "--on-error",
        "allow",
        "--deny-ttl",
        "0.2s",
        "--allow-ttl",
        "0.2s",
        "--tag-ttl",
        tag_ttl,
    )
    with start(tmp_path, artifacts, proxy, *args) as server:
        assert post(server, pod(unsigned))["allowed"] is False
        assert post(server, pod(signed))["allowed"] is True
        time.sleep(0.4)  # both verdicts (and with 0.2s, both tags) have expired
        proxy.fail(503, None, r".", times=None)
        stale = post(server, pod(unsigned))
        assert stale["allowed"] is False and "signature" in stale["status"]["message"]
        passed = post(server, pod(signed))  # a pass is never taken stale: --on-error
        assert passed["allowed"] is True and "admitted without a verdict" in passed["warnings"][0]
        caches = [r["images"][0]["cache"] for r in server.audit()]
        assert caches[-2:] == ["stale", "miss"]

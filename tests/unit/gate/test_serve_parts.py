"""`gate serve`'s parts that need no server: the AdmissionReview reader and writer, the
caches, the deadline arithmetic, durations and the Prometheus exposition."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from wasmctl.cli.serve import duration
from wasmctl.errors import InputError
from wasmctl.gate.serve.admission import ServeOptions
from wasmctl.gate.serve.cache import SingleFlight, TtlCache
from wasmctl.gate.serve.metrics import Metrics
from wasmctl.gate.serve.review import (
    MAX_BODY_BYTES,
    Answer,
    ReviewError,
    image_fields,
    parse_review,
    response,
)
from wasmctl.gate.serve.server import _timeout


def review(request: dict[str, Any] | None = None, **top: Any) -> bytes:
    body: dict[str, Any] = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "namespace": "apps",
            "operation": "CREATE",
            "dryRun": False,
            "name": "",
            "object": {
                "kind": "Pod",
                "metadata": {"generateName": "web-7d9f8b6c4d-"},
                "spec": {"containers": [{"name": "app", "image": "ghcr.io/acme/app:v1"}]},
            },
            **(request or {}),
        },
    }
    body.update(top)
    return json.dumps(body).encode()


# -- reading requests -----------------------------------------------------------------------


def test_a_generated_pod_is_named_by_its_generate_name() -> None:
    parsed = parse_review(review())
    assert parsed.uid == "705ab4f5-6393-11e8-b7cc-42010a800002"
    assert parsed.describe() == "Pod apps/web-7d9f8b6c4d-*"
    assert parsed.judged and not parsed.dry_run and not parsed.mirror


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"{", "not JSON"),
        (b"[]", "not an AdmissionReview object"),
        (review(apiVersion="admission.k8s.io/v1beta1"), "not an AdmissionReview"),
        (review(kind="Pod"), "not an AdmissionReview"),
        (review({"uid": ""}), "no uid"),
        (review({"uid": 7}), "no uid"),
        (review({"object": ["not", "an", "object"]}), "not a Kubernetes object"),
        (b"[" * 10_000 + b"]" * 10_000, "nested too deeply"),
        (json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).encode(),
         "no request"),
    ],
    ids=["truncated", "array", "v1beta1", "kind", "empty-uid", "number-uid", "object-list",
         "deep", "no-request"],
)  # fmt: skip
def test_what_is_no_review_is_refused_with_the_reason(body: bytes, says: str) -> None:
    with pytest.raises(ReviewError, match=says):
        parse_review(body)


@pytest.mark.parametrize(
    ("request_fields", "judged"),
    [
        ({}, True),
        ({"operation": "DELETE", "object": None}, False),
        ({"operation": "CONNECT"}, False),
        ({"subResource": "status", "operation": "UPDATE"}, False),
        ({"subResource": "ephemeralcontainers", "operation": "UPDATE"}, True),
        ({"kind": {"group": "", "version": "v1", "kind": "ConfigMap"}}, False),
        ({"kind": {"group": "apps", "version": "v1", "kind": "Deployment"}}, True),
        ({"kind": {"group": "example.com", "version": "v1", "kind": "Deployment"}}, False),
        ({"kind": {"group": "batch", "version": "v1", "kind": "CronJob"}}, True),
    ],
    ids=["create", "delete", "connect", "status", "ephemeral", "configmap", "deployment",
         "foreign-deployment", "cronjob"],
)  # fmt: skip
def test_only_requests_that_can_change_what_runs_are_judged(
    request_fields: dict[str, Any], judged: bool
) -> None:
    assert parse_review(review(request_fields)).judged is judged


def test_a_mirror_pod_is_recognised() -> None:
    obj = {"kind": "Pod", "metadata": {"annotations": {"kubernetes.io/config.mirror": "x"}}}
    assert parse_review(review({"object": obj})).mirror


@pytest.mark.parametrize(
    ("kind", "obj", "pointers"),
    [
        (
            "Pod",
            {"spec": {"initContainers": [{"image": "a"}], "containers": [{"image": "b"}, {}],
                      "ephemeralContainers": [{"image": "c"}]}},
            ["/spec/initContainers/0/image", "/spec/containers/0/image",
             "/spec/ephemeralContainers/0/image"],
        ),
        (
            "Deployment",
            {"spec": {"template": {"spec": {"containers": [{"image": "a"}, {"image": "b"}]}}}},
            ["/spec/template/spec/containers/0/image", "/spec/template/spec/containers/1/image"],
        ),
        (
            "CronJob",
            {"spec": {"jobTemplate": {"spec": {"template": {"spec": {
                "containers": [{"image": "a"}]}}}}}},
            ["/spec/jobTemplate/spec/template/spec/containers/0/image"],
        ),
        ("Deployment", {"spec": {"template": "not a mapping"}}, []),
    ],
    ids=["pod", "deployment", "cronjob", "malformed"],
)  # fmt: skip
def test_image_fields_are_found_with_their_json_pointers(
    kind: str, obj: dict[str, Any], pointers: list[str]
) -> None:
    parsed = parse_review(review({"kind": {"group": "", "kind": kind}, "object": obj}))
    assert [f.pointer for f in image_fields(parsed)] == pointers


# -- writing responses ----------------------------------------------------------------------


def test_a_denial_carries_the_uid_a_status_and_no_patch() -> None:
    raw = json.loads(response("u-1", Answer(False, "no", 403, "Forbidden")))
    assert raw == {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {
            "uid": "u-1",
            "allowed": False,
            "status": {"code": 403, "message": "no", "reason": "Forbidden"},
        },
    }


def test_a_patch_is_base64_jsonpatch_with_its_type() -> None:
    ops = [{"op": "replace", "path": "/spec/containers/0/image", "value": "a@sha256:0"}]
    raw = json.loads(response("u-2", Answer(True, warnings=["w"], patch=ops)))["response"]
    assert raw["patchType"] == "JSONPatch" and raw["warnings"] == ["w"]
    assert json.loads(base64.b64decode(raw["patch"])) == ops
    assert "status" not in raw


# -- deadlines and durations ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "seconds"),
    [("timeout=10s", 10.0), ("timeout=3s&x=1", 3.0), ("timeout=500ms", 0.5),
     ("timeout=1m", 60.0), ("", None), ("timeout=soon", None), ("timeout=-4s", None)],
)  # fmt: skip
def test_the_apiservers_timeout_query_is_read(query: str, seconds: float | None) -> None:
    assert _timeout(query) == seconds


@pytest.mark.parametrize(
    ("timeout", "budget"),
    [(10.0, 9.0), (30.0, 29.0), (300.0, 29.0), (2.0, 1.5), (1.0, 0.75), (None, 9.0)],
)
def test_the_answer_comes_before_the_deadline(timeout: float | None, budget: float) -> None:
    assert ServeOptions(policy=None).budget(timeout) == budget  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30.0), ("10m", 600.0), ("1h30m", 5400.0), ("2.5", 2.5), ("0", 0.0), ("1m5s", 65.0)],
)
def test_durations_read_as_kubectl_users_write_them(text: str, seconds: float) -> None:
    assert duration(text, "--x") == seconds


@pytest.mark.parametrize("text", ["", "ten", "5 minutes", "-1", "1d", "m"])
def test_a_duration_that_is_none_is_refused(text: str) -> None:
    with pytest.raises(InputError, match="--x"):
        duration(text, "--x")


# -- caches ---------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_cached_value_lives_exactly_its_own_ttl() -> None:
    clock = Clock()
    cache: TtlCache[str, str] = TtlCache(10, clock)
    cache.put("pass", "p", 600)
    cache.put("deny", "d", 60)
    clock.now += 59.9
    assert (cache.get("pass"), cache.get("deny")) == ("p", "d")
    clock.now += 0.2
    assert (cache.get("pass"), cache.get("deny")) == ("p", None)
    clock.now += 600
    assert cache.get("pass") is None and cache.live() == 0
    # kept for a stale read (a denial during an outage) until the room is needed
    assert (cache.get("pass", stale=True), cache.get("deny", stale=True)) == ("p", "d")
    for key in range(10):
        cache.put(str(key), "new", 60)
    assert cache.get("deny", stale=True) is None and len(cache) == 10


def test_a_full_cache_forgets_the_least_recently_used() -> None:
    cache: TtlCache[int, int] = TtlCache(3, Clock())
    for key in range(3):
        cache.put(key, key, 60)
    assert cache.get(0) == 0  # now the most recent
    cache.put(3, 3, 60)
    assert [cache.get(k) for k in range(4)] == [0, None, 2, 3]
    assert len(cache) == 3


def test_a_zero_ttl_caches_nothing() -> None:
    cache: TtlCache[str, str] = TtlCache(3, Clock())
    cache.put("a", "a", 0)
    assert cache.get("a") is None and len(cache) == 0


def test_concurrent_askers_share_one_computation_which_outlives_an_impatient_one() -> None:
    async def scenario() -> tuple[int, list[str], int]:
        flight: SingleFlight[str, str] = SingleFlight()
        started = 0
        release = asyncio.Event()

        async def work() -> str:
            nonlocal started
            started += 1
            await release.wait()
            return "verdict"

        impatient = asyncio.ensure_future(
            asyncio.wait_for(asyncio.shield(flight.run("d", work)), 0.01)
        )
        askers = [asyncio.shield(flight.run("d", work)) for _ in range(49)]
        with pytest.raises(asyncio.TimeoutError):
            await impatient
        release.set()
        results = await asyncio.gather(*askers)
        return started, results, len(flight)

    started, results, running = asyncio.run(scenario())
    assert started == 1
    assert results == ["verdict"] * 49
    assert running == 0  # forgotten once done: a later miss verifies again


# -- metrics --------------------------------------------------------------------------------


def test_the_metrics_are_valid_prometheus_text() -> None:
    metrics = Metrics()
    metrics.requests.inc(endpoint="validate", verdict="deny")
    metrics.requests.inc(endpoint="validate", verdict="deny")
    metrics.requests.inc(endpoint="mutate", verdict='odd "label"\n')
    for seconds in (0.0004, 0.003, 0.2, 45.0):
        metrics.latency.observe(seconds, endpoint="validate")
    families = {f.name: f for f in text_string_to_metric_families(metrics.render().decode())}
    requests = {
        (s.labels["endpoint"], s.labels["verdict"]): s.value
        for s in families["wasmctl_admission_requests"].samples
    }
    assert requests == {("validate", "deny"): 2.0, ("mutate", 'odd "label"\n'): 1.0}
    buckets = {
        s.labels["le"]: s.value
        for s in families["wasmctl_admission_duration_seconds"].samples
        if s.name.endswith("_bucket")
    }
    assert (buckets["0.001"], buckets["0.005"], buckets["0.25"], buckets["+Inf"]) == (1, 2, 3, 4)
    assert families["wasmctl_verdict_cache_hits"].samples[0].value == 0


def test_the_body_limit_is_the_apiservers() -> None:
    assert MAX_BODY_BYTES == 3 * 1024 * 1024

"""`wasmctl gate serve` called the way kube-apiserver calls it (tests/admission/apiserver.py:
TLS to a CA bundle and the Service's SAN, keep-alive, `?timeout=`, uid and GVK checks,
failurePolicy, JSONPatch applied), with AdmissionReviews shaped as the apiserver builds them
(tests/admission/reviews.py), against key-signed, unsigned and socket-importing artifacts
in the real registry."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.admission import reviews
from tests.admission.apiserver import (
    Apiserver,
    CallOutcome,
    FailurePolicy,
    ReinvocationPolicy,
    Webhook,
    WebhookEndpoint,
)
from tests.admission.conftest import Artifacts, write_policy
from tests.admission.serving import GateServer, running

VALIDATE = Webhook("validate.gate.wasmctl.dev", "/validate", timeout_seconds=10)
MUTATE = Webhook(
    "mutate.gate.wasmctl.dev",
    "/mutate",
    mutating=True,
    timeout_seconds=10,
    failure_policy=FailurePolicy.IGNORE,
    reinvocation_policy=ReinvocationPolicy.IF_NEEDED,
)
DENIED_BY = 'admission webhook "validate.gate.wasmctl.dev" denied the request: '
WASM = {"runtime_class": "crun-wasm"}


@pytest.fixture(scope="module")
def server(artifacts: Artifacts, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GateServer]:
    work = tmp_path_factory.mktemp("serve")
    with running(
        work, artifacts.policy, "--plain-http", artifacts.host, "--exclude-namespace", "legacy"
    ) as gate:
        yield gate


@pytest.fixture(scope="module")
def api(server: GateServer) -> Iterator[Apiserver]:
    endpoint = WebhookEndpoint.service(server.port, server.tls.ca_pem.read_bytes())
    with Apiserver(endpoint) as apiserver:
        yield apiserver


def validate(api: Apiserver, review: dict[str, Any]) -> Any:
    decision = api.admit(review, validating=[VALIDATE])
    [call] = decision.calls
    assert call.outcome in (CallOutcome.ALLOWED, CallOutcome.DENIED), call.error
    return decision


def denial(decision: Any) -> str:
    assert decision.allowed is False
    assert decision.status.code == 403
    message: str = decision.status.message
    assert message.startswith(DENIED_BY) and "\n" not in message
    return message.removeprefix(DENIED_BY)


# -- verdicts ---------------------------------------------------------------------------------


def test_a_signed_clean_module_is_admitted(api: Apiserver, artifacts: Artifacts) -> None:
    decision = validate(api, reviews.pod_create(image=artifacts.signed, **WASM))
    assert decision.allowed and decision.warnings == ()


def test_an_unsigned_module_is_denied_naming_the_image_and_the_check(
    api: Apiserver, artifacts: Artifacts
) -> None:
    said = denial(validate(api, reviews.pod_create(image=artifacts.unsigned, **WASM)))
    assert said.startswith("wasmctl gate denied Pod default/web-7d9f8b6c4d-*: ")
    assert f"{artifacts.unsigned} (containers[app]): signature: 0 of 1" in said


def test_a_socket_server_is_denied_by_the_scan(api: Apiserver, artifacts: Artifacts) -> None:
    said = denial(validate(api, reviews.pod_create(image=artifacts.socket, **WASM)))
    assert f"{artifacts.socket} (containers[app]): scan: denied by no-network" in said
    assert "signature" not in said  # it is signed: only what failed is named


def test_of_eight_containers_only_the_bad_one_is_named(
    api: Apiserver, artifacts: Artifacts
) -> None:
    images = [artifacts.signed] * 7 + [artifacts.unsigned]
    good = validate(api, reviews.pod_create(images=[artifacts.signed] * 8, **WASM))
    assert good.allowed
    said = denial(validate(api, reviews.pod_create(images=images, **WASM)))
    assert f"{artifacts.unsigned} (containers[app-7])" in said
    assert artifacts.signed not in said


@pytest.mark.parametrize("kind", sorted(reviews.WORKLOADS))
def test_every_workload_kind_is_judged_by_its_pod_template(
    api: Apiserver, artifacts: Artifacts, kind: str
) -> None:
    good = validate(api, reviews.workload_create(kind, image=artifacts.signed, **WASM))
    assert good.allowed
    review = reviews.workload_create(kind, image=artifacts.unsigned, **WASM)
    said = denial(validate(api, review))
    name = review["request"]["name"]
    assert said.startswith(f"wasmctl gate denied {kind} default/{name}: {artifacts.unsigned}")


def test_init_containers_are_judged(api: Apiserver, artifacts: Artifacts) -> None:
    review = reviews.pod_create(
        image=artifacts.signed, init_containers=1, init_image=artifacts.unsigned, **WASM
    )
    assert f"{artifacts.unsigned} (initContainers[init-0])" in denial(validate(api, review))


def test_an_ephemeral_container_added_to_a_running_pod_is_judged(
    api: Apiserver, artifacts: Artifacts
) -> None:
    review = reviews.pod_ephemeral_container(
        image=artifacts.signed, debug_image=artifacts.socket, **WASM
    )
    assert review["request"]["subResource"] == "ephemeralcontainers"
    said = denial(validate(api, review))
    assert f"{artifacts.socket} (ephemeralContainers[" in said and "scan" in said


def test_a_dry_run_is_judged_alike_and_logged_as_one(
    api: Apiserver, server: GateServer, artifacts: Artifacts
) -> None:
    review = reviews.pod_create(image=artifacts.unsigned, dry_run=True, **WASM)
    decision = validate(api, review)
    assert "signature" in denial(decision)
    [line] = [r for r in server.audit() if r.get("uid") == decision.calls[0].uid]
    assert line["dryRun"] is True and line["verdict"] == "deny"


# -- what passes unjudged ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda a: reviews.pod_delete(image=a.unsigned, **WASM),
        lambda a: reviews.pod_exec(),
        lambda a: reviews.pod_create(namespace="kube-system", image=a.unsigned, **WASM),
        lambda a: reviews.pod_create(namespace="wasmctl-system", image=a.unsigned, **WASM),
        lambda a: reviews.pod_create(namespace="legacy", image=a.unsigned, **WASM),
        lambda a: reviews.mirror_pod_create(image=a.unsigned, **WASM),
    ],
    ids=["delete", "connect", "kube-system", "own-namespace", "excluded", "mirror-pod"],
)
def test_what_runs_nothing_new_or_is_excluded_is_admitted_unjudged(
    api: Apiserver, server: GateServer, artifacts: Artifacts, make: Any
) -> None:
    decision = validate(api, make(artifacts))
    assert decision.allowed
    [line] = [r for r in server.audit() if r.get("uid") == decision.calls[0].uid]
    assert line["verdict"] == "skip" and line["skipped"]


def test_an_ordinary_pod_with_an_ordinary_image_passes(
    api: Apiserver, artifacts: Artifacts
) -> None:
    assert validate(api, reviews.pod_create(image=artifacts.plain)).allowed


def test_a_wasm_image_is_judged_even_in_a_pod_that_does_not_say_wasm(
    api: Apiserver, artifacts: Artifacts
) -> None:
    assert "signature" in denial(validate(api, reviews.pod_create(image=artifacts.unsigned)))


def test_an_ordinary_image_on_a_wasm_runtime_class_is_denied(
    api: Apiserver, artifacts: Artifacts
) -> None:
    said = denial(validate(api, reviews.pod_create(image=artifacts.plain, **WASM)))
    assert "is not a Wasm artifact" in said


def test_a_pod_image_naming_a_local_layout_is_denied_without_reading_it(
    api: Apiserver, server: GateServer
) -> None:
    said = denial(validate(api, reviews.pod_create(image="oci:/etc:passwd", **WASM)))
    assert "is not a registry reference" in said


# -- warn mode --------------------------------------------------------------------------------


def test_warn_mode_admits_with_the_reasons_as_warnings(
    artifacts: Artifacts, tmp_path: Path
) -> None:
    with running(
        tmp_path, artifacts.policy, "--plain-http", artifacts.host, "--warn-namespace", "dev"
    ) as gate:
        endpoint = WebhookEndpoint.service(gate.port, gate.tls.ca_pem.read_bytes())
        with Apiserver(endpoint) as api:
            warned = validate(
                api, reviews.pod_create(namespace="dev", image=artifacts.unsigned, **WASM)
            )
            enforced = validate(api, reviews.pod_create(image=artifacts.unsigned, **WASM))
        audit = [r["verdict"] for r in gate.audit()]
    assert warned.allowed
    [warning] = warned.warnings
    assert warning.startswith(f"wasmctl gate would deny {artifacts.unsigned}")
    assert "signature" in warning and len(warning) <= 256
    assert "signature" in denial(enforced)
    assert audit == ["warn", "deny"]


# -- mutation ---------------------------------------------------------------------------------


def digest_of(server: GateServer, image: str) -> str:
    lines = [r for r in server.audit() if r["endpoint"] == "validate"]
    for line in reversed(lines):
        for entry in line.get("images", []):
            if entry["image"] == image and entry.get("digest"):
                return str(entry["digest"])
    raise AssertionError(f"no digest recorded for {image}")


def test_mutate_pins_tags_to_digests_and_validate_then_admits(
    api: Apiserver, server: GateServer, artifacts: Artifacts
) -> None:
    review = reviews.workload_create(
        "Deployment", image=artifacts.signed, init_containers=1, init_image=artifacts.signed, **WASM
    )
    decision = api.admit(review, mutating=[MUTATE], validating=[VALIDATE])
    assert decision.allowed, decision.status
    spec = decision.object["spec"]["template"]["spec"]
    pinned = spec["containers"][0]["image"]
    assert pinned.startswith(artifacts.signed + "@sha256:")
    assert spec["initContainers"][0]["image"] == pinned
    assert pinned.endswith(digest_of(server, pinned))
    # only the image fields changed
    before = copy.deepcopy(review["request"]["object"])
    before["spec"]["template"]["spec"]["containers"][0]["image"] = pinned
    before["spec"]["template"]["spec"]["initContainers"][0]["image"] = pinned
    assert decision.object == before


def test_mutate_is_idempotent_under_reinvocation(api: Apiserver, artifacts: Artifacts) -> None:
    first = api.call(MUTATE, reviews.pod_create(image=artifacts.signed, **WASM))
    assert first.outcome is CallOutcome.ALLOWED and first.changed
    again = reviews.pod_create(image=artifacts.signed, **WASM)
    again["request"]["object"] = first.patched_object
    second = api.call(MUTATE, again)
    assert second.outcome is CallOutcome.ALLOWED and not second.changed
    assert json.loads(second.response_body or b"{}")["response"].get("patch") is None


def test_mutate_leaves_what_it_cannot_resolve_with_a_warning(
    api: Apiserver, artifacts: Artifacts
) -> None:
    missing = artifacts.signed.replace("hello:v1", "hello:no-such-tag")
    call = api.call(MUTATE, reviews.pod_create(images=[missing, artifacts.signed], **WASM))
    assert call.outcome is CallOutcome.ALLOWED
    containers = call.patched_object["spec"]["containers"]
    assert containers[0]["image"] == missing
    assert "@sha256:" in containers[1]["image"]
    [warning] = call.warnings
    assert warning.startswith(f"wasmctl left {missing} unpinned")


def test_mutate_does_not_contact_a_registry_the_policy_does_not_allow(
    artifacts: Artifacts, tmp_path: Path
) -> None:
    policy = write_policy(
        tmp_path / "gate.yaml",
        str(artifacts.key.with_suffix(".pub")),
        registries=["ghcr.io/acme/"],
    )
    with running(tmp_path / "s", policy, "--plain-http", artifacts.host) as gate:
        endpoint = WebhookEndpoint.service(gate.port, gate.tls.ca_pem.read_bytes())
        with Apiserver(endpoint) as api:
            call = api.call(MUTATE, reviews.pod_create(image=artifacts.signed, **WASM))
            judged = validate(api, reviews.pod_create(image=artifacts.signed, **WASM))
        assert gate.metric("wasmctl_tag_cache_misses_total") == 0  # nothing resolved
    assert call.outcome is CallOutcome.ALLOWED and not call.changed
    said = denial(judged)
    assert f"{artifacts.signed} (containers[app]): registry: " in said


# -- hostile input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "status"),
    [
        (lambda: reviews.without_uid(reviews.pod_create()), 400),
        (lambda: reviews.with_type_meta(reviews.pod_create()), 400),
        (lambda: reviews.with_type_meta(reviews.pod_create(), kind="Pod"), 400),
        (lambda: reviews.with_object(reviews.pod_create(), ["not", "an", "object"]), 400),
    ],
    ids=["no-uid", "v1beta1", "wrong-kind", "object-list"],
)
def test_what_is_no_review_gets_a_clean_error_and_fail_policy_decides(
    api: Apiserver, server: GateServer, make: Any, status: int
) -> None:
    call = api.call(VALIDATE, make())
    assert call.http_status == status
    assert call.outcome is CallOutcome.CALL_FAILED  # so failurePolicy: Fail denies (500)
    assert call.status is not None and call.status.code == 500
    assert server.get("/healthz").status_code == 200


def test_a_body_over_3_mib_is_refused_unread(api: Apiserver, server: GateServer) -> None:
    review = reviews.pod_create()
    review["request"]["object"]["metadata"]["annotations"] = {"padding": "x" * (3 << 20)}
    call = api.call(VALIDATE, review)
    assert call.http_status == 413 and call.outcome is CallOutcome.CALL_FAILED
    assert server.get("/healthz").status_code == 200


def test_a_truncated_body_is_no_crash(api: Apiserver, server: GateServer) -> None:
    body = json.dumps(reviews.pod_create()).encode()
    head = (
        f"POST /validate?timeout=10s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    exchange = api.send_raw([head, body[: len(body) // 2]], wait=1.0)
    assert exchange.responses == ()  # waits for the rest, then the client goes away
    garbage = api.send_raw(b"NOT HTTP AT ALL\r\n\r\n", wait=2.0)
    assert [r[0] for r in garbage.responses] in ([400], [])
    assert server.get("/healthz").status_code == 200


def bare(review: dict[str, Any], images: list[str]) -> dict[str, Any]:
    """`review` with one bare container (a name and an image) per image: 10,000 of them
    fit in the apiserver's 3 MiB, as defaulted containers would not."""
    review["request"]["object"]["spec"]["containers"] = [
        {"name": f"c{i}", "image": image} for i, image in enumerate(images)
    ]
    return review


def test_ten_thousand_containers_of_one_image_get_a_verdict(
    api: Apiserver, artifacts: Artifacts
) -> None:
    review = bare(reviews.pod_create(**WASM), [artifacts.unsigned] * 10_000)
    assert "signature" in denial(validate(api, review))


def test_ten_thousand_defaulted_containers_are_too_large_a_body(api: Apiserver) -> None:
    call = api.call(VALIDATE, reviews.pod_with_containers(10_000, **WASM))
    assert call.http_status == 413 and call.outcome is CallOutcome.CALL_FAILED


def test_ten_thousand_distinct_images_are_denied_without_a_registry_request(
    api: Apiserver, server: GateServer
) -> None:
    images = [f"registry.invalid/acme/app-{i}:v1" for i in range(10_000)]
    before = server.metric("wasmctl_tag_cache_misses_total")
    decision = validate(api, bare(reviews.pod_create(**WASM), images))
    assert decision.allowed is False and decision.status.code == 400
    assert "more than 64 distinct container images" in decision.status.message
    assert server.metric("wasmctl_tag_cache_misses_total") == before

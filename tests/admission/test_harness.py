"""Self-tests of the apiserver harness against the stand-in webhook, and of the fixtures.

Each test pins one behaviour of kube-apiserver's webhook client as ``apiserver.py`` describes
it: the outcome under ``Fail`` and ``Ignore``, what goes over the wire, connection reuse,
dry-run refusal, reinvocation, TLS name checks. Outcomes are asserted exactly.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import ssl
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.admission import reviews
from tests.admission.apiserver import (
    MUTATION_FAILED_OPEN_PREFIX,
    SERVICE_DNS,
    VALIDATING_FAILED_OPEN_PREFIX,
    Apiserver,
    ApiStatus,
    AsyncApiserver,
    CallOutcome,
    FailurePolicy,
    ReinvocationPolicy,
    SideEffects,
    WarningRecorder,
    Webhook,
    WebhookCA,
    WebhookEndpoint,
    encode_go_json,
    go_duration,
    http_request,
    interpret_response,
    is_qualified_name,
)
from tests.admission.standin import StandinWebhook

# -- Fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> WebhookCA:
    return WebhookCA()


@pytest.fixture
def standin(ca: WebhookCA) -> Iterator[StandinWebhook]:
    with StandinWebhook(ca.issue()) as hook:
        yield hook


@pytest.fixture
def api(standin: StandinWebhook, ca: WebhookCA) -> Iterator[Apiserver]:
    with Apiserver(WebhookEndpoint.service(standin.port, ca.ca_bundle)) as apiserver:
        yield apiserver


def validating(path: str, **settings: Any) -> Webhook:
    return Webhook(_name(path), path, **settings)


def mutating(path: str, **settings: Any) -> Webhook:
    return Webhook(_name(path), path, mutating=True, **settings)


def _name(path: str) -> str:
    return path.strip("/").lower().replace("/", "-") + ".standin.wasmctl.io"


def internal(webhook: Webhook, reason: str) -> str:
    return f'Internal error occurred: failed calling webhook "{webhook.name}": {reason}'


# -- Allowed and denied ------------------------------------------------------------------------


def test_allow_admits_and_prefixes_audit_annotations_with_the_webhook_name(api: Apiserver) -> None:
    hook = validating("/allow")
    decision = api.admit(reviews.pod_create(), validating=[hook])
    assert decision.allowed
    assert decision.status is None
    assert decision.audit_annotations == {"allow.standin.wasmctl.io/key1": "value1"}
    assert [call.outcome for call in decision.calls] == [CallOutcome.ALLOWED]


@pytest.mark.parametrize("policy", list(FailurePolicy))
def test_denial_is_the_webhooks_status_prefixed_whatever_the_failure_policy(
    api: Apiserver, policy: FailurePolicy
) -> None:
    hook = validating("/disallow", failure_policy=policy)
    decision = api.admit(reviews.pod_create(), validating=[hook])
    assert not decision.allowed
    assert decision.status == ApiStatus(
        403,
        'admission webhook "disallow.standin.wasmctl.io" denied the request: you shall not pass',
    )


def test_denial_code_below_400_is_raised_to_400_and_says_without_explanation(
    api: Apiserver,
) -> None:
    hook = validating("/disallowNoReason")
    decision = api.admit(reviews.pod_create(), validating=[hook])
    assert decision.status == ApiStatus(
        400,
        'admission webhook "disallownoreason.standin.wasmctl.io" denied the request '
        "without explanation",
    )


def test_http_200_to_206_is_success_as_in_client_go(api: Apiserver) -> None:
    result = api.call(validating("/created"), reviews.pod_create())
    assert (result.http_status, result.outcome) == (201, CallOutcome.ALLOWED)


def test_gzip_encoded_answer_is_decoded_like_gos_transport(api: Apiserver) -> None:
    result = api.call(validating("/gzip"), reviews.pod_create())
    assert result.outcome is CallOutcome.ALLOWED


def test_warnings_reach_the_client_once_each(api: Apiserver) -> None:
    decision = api.admit(reviews.pod_create(), validating=[validating("/warn")])
    assert decision.allowed
    assert decision.warnings == ("module is unsigned", "tag latest is mutable")


def test_audit_annotation_keys_that_are_not_qualified_names_are_dropped(api: Apiserver) -> None:
    decision = api.admit(reviews.pod_create(), validating=[validating("/badAnnotations")])
    assert decision.audit_annotations == {"badannotations.standin.wasmctl.io/ok": "kept"}


# -- Call failures and failurePolicy -----------------------------------------------------------

CALL_FAILURES = [
    # (webhook, the reason after 'failed calling webhook "<name>": ')
    (
        validating("/internalErr"),
        'failed to call webhook: an error on the server ("webhook internal server error") '
        "has prevented the request from succeeding",
    ),
    (validating("/nilResponse"), "received invalid webhook response: webhook response was absent"),
    (validating("/wrongUid"), "received invalid webhook response: expected response.uid="),
    (validating("/wrongKind"), 'failed to call webhook: no kind "AdmissionResponse"'),
    (
        validating("/noTypeMeta"),
        "received invalid webhook response: expected webhook response of "
        "admission.k8s.io/v1, Kind=AdmissionReview, got /, Kind=",
    ),
    (
        validating("/patchFromValidating"),
        "received invalid webhook response: validating webhook may not return response.patch",
    ),
    (
        mutating("/patchWithoutType"),
        "received invalid webhook response: webhook returned response.patch but not "
        "response.patchType",
    ),
    (mutating("/invalidPatch"), "received undecodable patch in webhook response: "),
    (validating("/garbage"), 'failed to call webhook: Post "https://'),
]


@pytest.mark.parametrize(
    ("hook", "reason"), CALL_FAILURES, ids=[hook.path for hook, _ in CALL_FAILURES]
)
def test_call_failure_under_fail_is_a_500_naming_the_webhook(
    api: Apiserver, hook: Webhook, reason: str
) -> None:
    decision = _admit_one(api, hook)
    assert not decision.allowed
    assert decision.status is not None
    assert (decision.status.code, decision.status.reason) == (500, "InternalError")
    assert decision.status.message.startswith(internal(hook, reason))
    assert [call.outcome for call in decision.calls] == [CallOutcome.CALL_FAILED]


@pytest.mark.parametrize(
    ("hook", "reason"), CALL_FAILURES, ids=[hook.path for hook, _ in CALL_FAILURES]
)
def test_call_failure_under_ignore_fails_open_with_the_annotation(
    api: Apiserver, hook: Webhook, reason: str
) -> None:
    hook = dataclasses.replace(hook, failure_policy=FailurePolicy.IGNORE)
    decision = _admit_one(api, hook)
    assert decision.allowed
    prefix = MUTATION_FAILED_OPEN_PREFIX if hook.mutating else VALIDATING_FAILED_OPEN_PREFIX
    failed_open = {k: v for k, v in decision.audit_annotations.items() if k.startswith(prefix)}
    assert failed_open == {f"{prefix}round_0_index_0": hook.name}
    assert decision.calls[0].failed_open


def _admit_one(api: Apiserver, hook: Webhook) -> Any:
    if hook.mutating:
        return api.admit(reviews.pod_create(), mutating=[hook])
    return api.admit(reviews.pod_create(), validating=[hook])


@pytest.mark.parametrize("policy", list(FailurePolicy))
def test_patch_that_does_not_apply_is_a_500_even_under_ignore(
    api: Apiserver, policy: FailurePolicy
) -> None:
    hook = mutating("/unappliablePatch", failure_policy=policy)
    decision = api.admit(reviews.pod_create(), mutating=[hook])
    assert not decision.allowed
    assert decision.status is not None
    assert decision.status.code == 500
    assert decision.status.message.startswith("Internal error occurred: ")
    assert "failed calling webhook" not in decision.status.message
    assert decision.calls[0].outcome is CallOutcome.REJECTED


def test_patch_on_a_delete_is_rejected(api: Apiserver) -> None:
    decision = api.admit(reviews.pod_delete(), mutating=[mutating("/patch")])
    assert decision.status == ApiStatus(
        500,
        'Internal error occurred: admission webhook "patch.standin.wasmctl.io" attempted to '
        "modify the object, which is not supported for this operation",
        "InternalError",
    )


def test_connection_refused_is_a_call_failure(ca: WebhookCA) -> None:
    with StandinWebhook(ca.issue()) as gone:
        port = gone.port
    hook = validating("/allow")
    with Apiserver(WebhookEndpoint.service(port, ca.ca_bundle)) as api:
        decision = api.admit(reviews.pod_create(), validating=[hook])
    assert decision.status is not None
    assert decision.status.message == internal(
        hook,
        f'failed to call webhook: Post "https://{SERVICE_DNS}:443/allow?timeout=10s": '
        f"dial tcp 127.0.0.1:{port}: connect: connection refused",
    )


# -- Deadlines ---------------------------------------------------------------------------------


def test_slow_webhook_fails_at_the_deadline_and_the_call_is_abandoned(
    api: Apiserver, standin: StandinWebhook
) -> None:
    hook = validating("/slow", timeout_seconds=1)
    decision = api.admit(reviews.pod_create(), validating=[hook])
    assert decision.status is not None
    assert decision.status.message == internal(
        hook,
        f'failed to call webhook: Post "https://{SERVICE_DNS}:443/slow?timeout=1s": '
        "context deadline exceeded",
    )
    assert standin.wait_for(lambda: standin.abandoned == 1)


def test_chained_ignore_timeouts_end_in_a_504_when_the_request_runs_out(
    api: Apiserver, standin: StandinWebhook
) -> None:
    first = mutating("/slow", timeout_seconds=1, failure_policy=FailurePolicy.IGNORE)
    second = Webhook(
        "second-slow.standin.wasmctl.io",
        "/slow",
        mutating=True,
        timeout_seconds=1,
        failure_policy=FailurePolicy.IGNORE,
    )
    decision = api.admit(reviews.pod_create(), mutating=[first, second], request_timeout=1.5)
    assert decision.status == ApiStatus(
        504, "Timeout: request did not complete within requested timeout", "Timeout"
    )
    assert [call.failed_open for call in decision.calls] == [True, True]
    assert [r.query["timeout"] for r in standin.requests_to("/slow")] == [["1s"], ["1s"]]


# -- The request on the wire -------------------------------------------------------------------


def test_request_is_a_post_with_the_apiservers_headers_and_timeout_query(
    api: Apiserver, standin: StandinWebhook
) -> None:
    review = reviews.pod_create()
    api.call(validating("/allow", timeout_seconds=7), review)
    (seen,) = standin.requests
    assert (seen.method, seen.target) == ("POST", "/allow?timeout=7s")
    assert seen.header("Host") == f"{SERVICE_DNS}:443"
    assert seen.header("User-Agent") == "kube-apiserver-admission"
    assert seen.header("Content-Type") == "application/json"
    assert seen.header("Accept") == "application/json, */*"
    assert seen.review == review


def test_timeout_query_rounds_up_what_is_left_of_the_request(
    api: Apiserver, standin: StandinWebhook
) -> None:
    api.admit(reviews.pod_create(), validating=[validating("/allow")], request_timeout=2.5)
    assert standin.requests[0].query == {"timeout": ["3s"]}


def test_every_call_gets_a_fresh_uid(api: Apiserver, standin: StandinWebhook) -> None:
    review = reviews.pod_create()
    hooks = [validating("/allow"), validating("/warn")]
    decision = api.admit(review, validating=hooks)
    uids = {seen.review["request"]["uid"] for seen in standin.requests}
    assert len(uids) == 2
    assert review["request"]["uid"] not in uids
    assert uids == {call.uid for call in decision.calls}


def test_body_is_encoded_as_gos_json_encoder_does() -> None:
    assert encode_go_json({"a": "<b>&", "c": [1, None]}) == (
        b'{"a":"\\u003cb\\u003e\\u0026","c":[1,null]}\n'
    )
    assert [go_duration(s) for s in (1, 30, 60, 90)] == ["1s", "30s", "1m0s", "1m30s"]


# -- Connections -------------------------------------------------------------------------------


def test_keep_alive_reuses_one_connection(api: Apiserver, standin: StandinWebhook) -> None:
    results = [api.call(validating("/allow"), reviews.pod_create()) for _ in range(5)]
    assert [r.outcome for r in results] == [CallOutcome.ALLOWED] * 5
    assert [r.connection_reused for r in results] == [False, True, True, True, True]
    assert standin.connections_accepted == 1
    assert {seen.connection for seen in standin.requests} == {1}


def test_reconnects_after_the_server_closed_the_connection(
    api: Apiserver, standin: StandinWebhook
) -> None:
    paths = ["/allow", "/closeAfter", "/allow", "/closeAfter", "/allow"]
    results = []
    for path in paths:
        results.append(api.call(validating(path), reviews.pod_create()))
        closed = paths[: len(results)].count("/closeAfter")
        # The close must be on the wire before the next call; otherwise that call races it
        # and may read EOF, as it would in Go.
        assert standin.wait_for(lambda n=closed: standin.closes_after_answer == n)
    assert [r.outcome for r in results] == [CallOutcome.ALLOWED] * 5
    assert [seen.connection for seen in standin.requests] == [1, 1, 2, 2, 3]
    assert standin.connections_accepted == api.connections_opened == 3


def test_concurrent_calls_use_separate_keep_alive_connections(
    api: Apiserver, standin: StandinWebhook
) -> None:
    hook = validating("/rendezvous/16")

    async def sixteen_at_once(aio: AsyncApiserver) -> list[CallOutcome]:
        calls = [aio.call(hook, reviews.pod_create()) for _ in range(16)]
        return [result.outcome for result in await asyncio.gather(*calls)]

    assert api.run(sixteen_at_once) == [CallOutcome.ALLOWED] * 16
    assert api.run(sixteen_at_once) == [CallOutcome.ALLOWED] * 16
    assert standin.connections_accepted == 16


def test_validating_webhooks_are_called_concurrently(api: Apiserver) -> None:
    first = validating("/rendezvous/2")
    second = Webhook("rendezvous-b.standin.wasmctl.io", "/rendezvous/2")
    decision = api.admit(reviews.pod_create(), validating=[first, second])
    assert decision.allowed


def test_first_validating_denial_wins_and_all_webhooks_are_called(
    api: Apiserver, standin: StandinWebhook
) -> None:
    decision = api.admit(
        reviews.pod_create(), validating=[validating("/allow"), validating("/disallow")]
    )
    assert decision.status is not None
    assert decision.status.code == 403
    assert sorted(seen.path for seen in standin.requests) == ["/allow", "/disallow"]


# -- Dry run -----------------------------------------------------------------------------------


@pytest.mark.parametrize("side_effects", [SideEffects.UNKNOWN, SideEffects.SOME])
def test_dry_run_to_a_webhook_with_side_effects_is_refused_without_a_call(
    api: Apiserver, standin: StandinWebhook, side_effects: SideEffects
) -> None:
    hook = validating("/allow", side_effects=side_effects, failure_policy=FailurePolicy.IGNORE)
    decision = api.admit(reviews.pod_create(dry_run=True), validating=[hook])
    assert decision.status == ApiStatus(
        400, 'admission webhook "allow.standin.wasmctl.io" does not support dry run', "BadRequest"
    )
    assert standin.requests == []
    assert not decision.calls[0].called


@pytest.mark.parametrize("side_effects", [SideEffects.NONE, SideEffects.NONE_ON_DRY_RUN])
def test_dry_run_to_a_webhook_without_side_effects_is_called(
    api: Apiserver, standin: StandinWebhook, side_effects: SideEffects
) -> None:
    hook = validating("/allow", side_effects=side_effects)
    decision = api.admit(reviews.pod_create(dry_run=True), validating=[hook])
    assert decision.allowed
    assert [seen.review["request"]["dryRun"] for seen in standin.requests] == [True]


# -- Mutation and reinvocation -----------------------------------------------------------------


def test_patch_is_applied_and_each_webhook_sees_the_object_so_far(
    api: Apiserver, standin: StandinWebhook
) -> None:
    decision = api.admit(
        reviews.pod_create(),
        mutating=[mutating("/patch"), mutating("/annotate")],
        validating=[validating("/allow")],
    )
    assert decision.allowed
    assert decision.object["metadata"]["labels"]["patched"] == "true"
    assert decision.object["metadata"]["annotations"] == {"standin/annotated": "true"}
    (annotate,) = standin.requests_to("/annotate")
    assert annotate.review["request"]["object"]["metadata"]["labels"]["patched"] == "true"
    (final,) = standin.requests_to("/allow")
    assert final.review["request"]["object"] == decision.object
    mutation = json.loads(
        decision.audit_annotations["mutation.webhook.admission.k8s.io/round_0_index_0"]
    )
    assert mutation == {
        "configuration": "wasmctl-gate",
        "mutated": True,
        "webhook": "patch.standin.wasmctl.io",
    }


def test_if_needed_webhook_is_reinvoked_once_after_a_later_change(
    api: Apiserver, standin: StandinWebhook
) -> None:
    first = mutating("/patch", reinvocation_policy=ReinvocationPolicy.IF_NEEDED)
    decision = api.admit(reviews.pod_create(), mutating=[first, mutating("/annotate")])
    assert decision.allowed
    assert [(c.webhook.path, c.round, c.index) for c in decision.calls] == [
        ("/patch", 0, 0),
        ("/annotate", 0, 1),
        ("/patch", 1, 0),
    ]
    again = standin.requests_to("/patch")[1].review["request"]["object"]["metadata"]
    assert again["annotations"] == {"standin/annotated": "true"}


@pytest.mark.parametrize(
    ("policy", "later"),
    [
        (ReinvocationPolicy.IF_NEEDED, "/allow"),  # the later webhook changes nothing
        (ReinvocationPolicy.NEVER, "/annotate"),  # it changes something, but Never
    ],
)
def test_no_reinvocation_without_a_later_change_or_without_if_needed(
    api: Apiserver, standin: StandinWebhook, policy: ReinvocationPolicy, later: str
) -> None:
    first = mutating("/patch", reinvocation_policy=policy)
    decision = api.admit(reviews.pod_create(), mutating=[first, mutating(later)])
    assert decision.allowed
    assert len(standin.requests_to("/patch")) == 1


def test_a_webhooks_own_change_does_not_reinvoke_it(
    api: Apiserver, standin: StandinWebhook
) -> None:
    hook = mutating("/patch", reinvocation_policy=ReinvocationPolicy.IF_NEEDED)
    api.admit(reviews.pod_create(), mutating=[hook])
    assert len(standin.requests_to("/patch")) == 1


# -- TLS ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "issue",
    [
        pytest.param(lambda ca: ca.issue("other.wasmctl-system.svc"), id="wrong-san"),
        pytest.param(lambda ca: ca.issue_common_name_only(), id="common-name-only"),
        pytest.param(lambda ca: WebhookCA().issue(), id="other-ca"),
    ],
)
def test_certificate_that_go_would_refuse_fails_the_call(ca: WebhookCA, issue: Any) -> None:
    hook = validating("/allow")
    with (
        StandinWebhook(issue(ca)) as server,
        Apiserver(WebhookEndpoint.service(server.port, ca.ca_bundle)) as api,
    ):
        result = api.call(hook, reviews.pod_create())
        assert server.requests == []
    assert result.outcome is CallOutcome.CALL_FAILED
    assert result.error is not None
    assert result.error.startswith(
        f'failed calling webhook "{hook.name}": failed to call webhook: '
        f'Post "https://{SERVICE_DNS}:443/allow?timeout=10s": tls: failed to verify certificate: '
    )


def test_common_name_only_cert_is_refused_for_its_missing_san_alone(ca: WebhookCA) -> None:
    """The same certificate verifies once Common Name fallback is allowed (Go never allows it)."""
    with StandinWebhook(ca.issue_common_name_only()) as server:
        context = WebhookEndpoint.service(server.port, ca.ca_bundle).client_context()
        context.hostname_checks_common_name = True

        async def handshake() -> str | None:
            _, writer = await asyncio.open_connection(
                "127.0.0.1", server.port, ssl=context, server_hostname=SERVICE_DNS
            )
            protocol = writer.get_extra_info("ssl_object").selected_alpn_protocol()
            writer.close()
            await writer.wait_closed()
            return protocol

        assert asyncio.run(handshake()) == "http/1.1"


def test_url_client_config_verifies_the_ip_san_and_sends_its_host(
    ca: WebhookCA, standin: StandinWebhook
) -> None:
    with Apiserver(WebhookEndpoint.url(standin.port, ca.ca_bundle)) as api:
        result = api.call(validating("/allow"), reviews.pod_create())
    assert result.outcome is CallOutcome.ALLOWED
    assert standin.requests[0].header("Host") == f"127.0.0.1:{standin.port}"


# -- Raw sends ---------------------------------------------------------------------------------


def test_send_raw_reports_the_answer_to_a_well_formed_request(api: Apiserver) -> None:
    review = reviews.pod_create()
    exchange = api.send_raw(http_request("/allow", encode_go_json(review)))
    assert exchange.status == 200
    assert json.loads(exchange.responses[0][2])["response"]["uid"] == review["request"]["uid"]
    assert not exchange.timed_out


def test_send_raw_reports_a_400_and_the_close_for_garbage(api: Apiserver) -> None:
    exchange = api.send_raw(b"\x16\x03 not http at all\r\n\r\n", until_closed=True)
    assert [status for status, _, _ in exchange.responses] == [400]
    assert exchange.closed


def test_send_raw_is_bounded_when_the_body_never_arrives(api: Apiserver) -> None:
    body = encode_go_json(reviews.pod_create())
    exchange = api.send_raw(http_request("/allow", body[:10], content_length=len(body)), wait=0.3)
    assert (exchange.status, exchange.timed_out, exchange.closed) == (None, True, False)


def test_send_raw_streams_a_body_given_in_chunks(api: Apiserver, standin: StandinWebhook) -> None:
    body = encode_go_json(reviews.pod_create())
    head = http_request("/allow", b"", content_length=len(body))
    exchange = api.send_raw([head, body[:100], body[100:]])
    assert exchange.status == 200
    assert standin.requests[0].body == body


# -- Judging answers without a network ---------------------------------------------------------


def test_interpret_response_checks_a_mutating_patch_pair() -> None:
    hook = mutating("/x")
    body = json.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {"uid": "u", "allowed": True, "patchType": "JSONPatch"},
        }
    ).encode()
    result = interpret_response(hook, status=200, headers=(), body=body, uid="u", obj={})
    assert result.outcome is CallOutcome.CALL_FAILED
    assert result.error == (
        'failed calling webhook "x.standin.wasmctl.io": received invalid webhook response: '
        "webhook returned response.patchType but not response.patch"
    )


def test_interpret_response_refuses_a_type_the_go_decoder_would() -> None:
    body = json.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {"uid": "u", "allowed": "true"},
        }
    ).encode()
    result = interpret_response(
        validating("/x"), status=200, headers=(), body=body, uid="u", obj={}
    )
    assert result.outcome is CallOutcome.CALL_FAILED
    assert "cannot unmarshal string into Go struct field AdmissionReview.response.allowed" in (
        result.error or ""
    )


def test_warning_recorder_truncates_once_the_total_is_exceeded() -> None:
    recorder = WarningRecorder()
    for i in range(20):
        recorder.add(f"{i:02d}" + "x" * 298)
    # 13 fit whole (3,900 characters); the 14th overflows, so all 14 are cut to 256 (3,584);
    # cut warnings are still added until the total reaches 4,096: two more, then none.
    assert len(recorder.warnings) == 16
    assert all(len(text) == 256 for text in recorder.warnings)


def test_qualified_names_follow_apimachinery() -> None:
    assert is_qualified_name("allow.example.com/key1")
    assert not is_qualified_name("internalErr A/key1")
    assert not is_qualified_name("a.b.c/" + "k" * 64)


@pytest.mark.parametrize(
    "settings",
    [
        {"timeout_seconds": 0},
        {"timeout_seconds": 31},
        {"reinvocation_policy": ReinvocationPolicy.IF_NEEDED},
        {"name": "allow"},
        {"name": "Allow.Example.com"},
    ],
)
def test_webhook_configuration_is_validated(settings: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Webhook(**{"name": "allow.example.com", **settings})


# -- Fixtures: the reviews ---------------------------------------------------------------------


def test_replicaset_pod_create_has_no_name_but_a_generate_name_and_owner() -> None:
    review = reviews.pod_create(namespace="apps", image="registry.example/a:v2", containers=3)
    request = review["request"]
    assert (review["apiVersion"], review["kind"]) == ("admission.k8s.io/v1", "AdmissionReview")
    assert "name" not in request
    assert request["namespace"] == "apps"
    assert request["operation"] == "CREATE"
    assert request["kind"] == {"group": "", "version": "v1", "kind": "Pod"}
    assert request["resource"] == {"group": "", "version": "v1", "resource": "pods"}
    assert request["requestKind"] == request["kind"]
    assert request["userInfo"]["username"] == (
        "system:serviceaccount:kube-system:replicaset-controller"
    )
    assert (request["oldObject"], request["dryRun"]) == (None, False)
    assert request["options"] == {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}
    meta = request["object"]["metadata"]
    assert "name" not in meta
    assert meta["generateName"] == "web-7d9f8b6c4d-"
    assert meta["labels"]["pod-template-hash"] == "7d9f8b6c4d"
    assert meta["ownerReferences"][0]["kind"] == "ReplicaSet"
    images = [c["image"] for c in request["object"]["spec"]["containers"]]
    assert images == ["registry.example/a:v2"] * 3


def test_uid_is_fresh_for_every_review() -> None:
    uids = {reviews.pod_create()["request"]["uid"] for _ in range(3)}
    assert len(uids) == 3
    assert all(uuid.UUID(uid).version == 4 for uid in uids)


def test_wasm_pod_carries_runtime_class_and_crun_annotations() -> None:
    review = reviews.pod_create(
        **reviews.wasm_pod_settings(), init_containers=1, ephemeral_containers=1
    )
    obj = review["request"]["object"]
    assert obj["spec"]["runtimeClassName"] == "crun-wasm"
    assert obj["metadata"]["annotations"] == {
        "module.wasm.image/variant": "compat-smart",
        "run.oci.handler": "wasm",
    }
    assert [
        len(obj["spec"][k]) for k in ("initContainers", "containers", "ephemeralContainers")
    ] == [
        1,
        1,
        1,
    ]


@pytest.mark.parametrize(
    ("kind", "group", "resource", "pod_spec_path"),
    [
        ("Deployment", "apps", "deployments", ("spec", "template", "spec")),
        ("StatefulSet", "apps", "statefulsets", ("spec", "template", "spec")),
        ("DaemonSet", "apps", "daemonsets", ("spec", "template", "spec")),
        ("ReplicaSet", "apps", "replicasets", ("spec", "template", "spec")),
        ("Job", "batch", "jobs", ("spec", "template", "spec")),
        ("CronJob", "batch", "cronjobs", ("spec", "jobTemplate", "spec", "template", "spec")),
    ],
)
def test_workload_review_nests_the_pod_spec_where_the_api_does(
    kind: str, group: str, resource: str, pod_spec_path: tuple[str, ...]
) -> None:
    review = reviews.workload_create(kind, image="registry.example/w:v3", runtime_class="wasm")
    request = review["request"]
    assert request["kind"] == {"group": group, "version": "v1", "kind": kind}
    assert request["resource"] == {"group": group, "version": "v1", "resource": resource}
    spec: Any = request["object"]
    for key in pod_spec_path:
        spec = spec[key]
    assert spec["runtimeClassName"] == "wasm"
    assert spec["containers"][0]["image"] == "registry.example/w:v3"
    assert request["name"] == request["object"]["metadata"]["name"]


def test_update_carries_old_and_new_objects() -> None:
    request = reviews.pod_update(image="r.example/a:v2", old_image="r.example/a:v1")["request"]
    assert request["operation"] == "UPDATE"
    assert request["options"]["kind"] == "UpdateOptions"
    assert request["oldObject"]["spec"]["containers"][0]["image"] == "r.example/a:v1"
    assert request["object"]["spec"]["containers"][0]["image"] == "r.example/a:v2"


def test_delete_has_a_null_object_and_the_old_one() -> None:
    request = reviews.pod_delete(name="gone")["request"]
    assert (request["operation"], request["object"], request["name"]) == ("DELETE", None, "gone")
    assert request["oldObject"]["metadata"]["name"] == "gone"
    assert request["options"]["kind"] == "DeleteOptions"


def test_exec_is_a_connect_of_pod_exec_options() -> None:
    request = reviews.pod_exec(name="hello")["request"]
    assert request["operation"] == "CONNECT"
    assert request["kind"]["kind"] == "PodExecOptions"
    assert (request["resource"]["resource"], request["subResource"]) == ("pods", "exec")
    assert request["requestSubResource"] == "exec"
    assert request["object"]["kind"] == "PodExecOptions"
    assert (request["oldObject"], request["options"]) == (None, None)


def test_ephemeral_container_update_is_the_whole_pod_on_the_subresource() -> None:
    request = reviews.pod_ephemeral_container(debug_image="busybox:1.37")["request"]
    assert (request["operation"], request["subResource"]) == ("UPDATE", "ephemeralcontainers")
    assert request["kind"]["kind"] == "Pod"
    assert "ephemeralContainers" not in request["oldObject"]["spec"]
    (added,) = request["object"]["spec"]["ephemeralContainers"]
    assert added["image"] == "busybox:1.37"


def test_mirror_pod_is_created_by_the_kubelet_with_the_mirror_annotation() -> None:
    request = reviews.mirror_pod_create(node="n7")["request"]
    assert request["userInfo"]["username"] == "system:node:n7"
    annotations = request["object"]["metadata"]["annotations"]
    assert "kubernetes.io/config.mirror" in annotations
    assert request["object"]["spec"]["nodeName"] == "n7"


def test_dry_run_is_in_the_request_and_the_options() -> None:
    request = reviews.pod_create(dry_run=True)["request"]
    assert request["dryRun"] is True
    assert request["options"]["dryRun"] == ["All"]


def test_hostile_builders_change_only_what_they_name() -> None:
    review = reviews.pod_create()
    assert "uid" not in reviews.without_uid(review)["request"]
    assert "uid" in review["request"]
    assert reviews.with_type_meta(review)["apiVersion"] == "admission.k8s.io/v1beta1"
    assert "kind" not in reviews.with_type_meta(review, kind=None)
    assert reviews.with_object(review, ["not", "a", "mapping"])["request"]["object"] == [
        "not",
        "a",
        "mapping",
    ]
    assert len(reviews.pod_with_containers(10_000)["request"]["object"]["spec"]["containers"]) == (
        10_000
    )


def test_every_fixture_goes_through_the_harness(api: Apiserver, standin: StandinWebhook) -> None:
    built = [
        reviews.pod_create(),
        reviews.pod_create(by_replicaset=False, name="solo"),
        reviews.workload_create("CronJob"),
        reviews.pod_update(),
        reviews.pod_delete(),
        reviews.pod_exec(),
        reviews.pod_ephemeral_container(),
        reviews.mirror_pod_create(),
    ]
    for review in built:
        decision = api.admit(review, validating=[validating("/allow")])
        assert decision.allowed
    sent = [seen.review["request"] for seen in standin.requests]
    assert [r["operation"] for r in sent] == [
        "CREATE",
        "CREATE",
        "CREATE",
        "UPDATE",
        "DELETE",
        "CONNECT",
        "UPDATE",
        "CREATE",
    ]
    assert all(r["uid"] != b["request"]["uid"] for r, b in zip(sent, built, strict=True))
    assert [r["object"] for r in sent] == [b["request"]["object"] for b in built]


def test_ten_thousand_containers_cross_the_wire_intact(
    api: Apiserver, standin: StandinWebhook
) -> None:
    review = reviews.pod_with_containers(10_000)
    result = api.call(validating("/allow"), review)
    assert result.outcome is CallOutcome.ALLOWED
    assert len(standin.requests[0].review["request"]["object"]["spec"]["containers"]) == 10_000


def test_a_client_context_trusts_only_the_ca_bundle(ca: WebhookCA) -> None:
    context = WebhookEndpoint.service(1, ca.ca_bundle).client_context()
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    assert not context.hostname_checks_common_name
    assert len(context.get_ca_certs()) == 1

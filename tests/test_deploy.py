"""deploy/: the manifests, image and workflow of `wasmctl gate serve`, checked offline.

No cluster and no image build can run here (docs/admission.md says how to do both by hand),
so every Kubernetes object is validated against the API's own OpenAPI schemas
(kubernetes-validate, strict: an unknown field fails) for Kubernetes 1.30, the first with
`matchConditions` GA, and for the newest version the library ships; the webhooks'
`matchConditions` are evaluated as CEL (cel-python) on objects they must send and must
skip; the policy is loaded as `wasmctl gate` loads it; and the pieces that must agree (the
Service and the certificate, the arguments and the mounts, the user and the port of the
image and of the Deployment) are compared.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import celpy
import kubernetes_validate
import pytest
import yaml
from celpy import celtypes
from lark import Tree

ROOT = Path(__file__).parents[1]
DEPLOY = ROOT / "deploy"
ADMISSION_DOC = ROOT / "docs" / "admission.md"
CONTAINERFILE = DEPLOY / "Containerfile"
UNIT = DEPLOY / "k3s" / "wasmctl-gate.service"
WORKFLOW = ROOT / ".github" / "workflows" / "server-image.yml"

NAMESPACE = "wasmctl-system"
ALWAYS_EXCLUDED = {"kube-system", NAMESPACE}
# The oldest Kubernetes the webhooks need (matchConditions GA), and the newest shipped.
K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())

# `wasmctl gate serve`'s options, as docs/admission.md describes them; the command's own
# --help is compared too.
SERVE_FLAGS = {
    "--policy",
    "--tls-cert",
    "--tls-key",
    "--address",
    "--port",
    "--mode",
    "--warn-namespace",
    "--exclude-namespace",
    "--on-error",
    "--allow-ttl",
    "--deny-ttl",
    "--tag-ttl",
    "--cache-size",
    "--jobs",
    "--plain-http",
    "--ca-file",
    "--trusted-root",
    "--reload-interval",
}
# typer's own, on every command of an app with completion
TYPER_FLAGS = {"--help", "--install-completion", "--show-completion"}
FLAG_CHOICES = {"--mode": {"enforce", "warn"}, "--on-error": {"deny", "allow"}}
METRICS = (
    "wasmctl_admission_requests_total",
    "wasmctl_admission_duration_seconds",
    "wasmctl_verdict_cache_hits_total",
    "wasmctl_verdict_cache_misses_total",
    "wasmctl_tag_cache_hits_total",
    "wasmctl_tag_cache_misses_total",
    "wasmctl_registry_errors_total",
    "wasmctl_verifications_total",
    "wasmctl_on_error_total",
)
WORKLOAD_RESOURCES = {
    ("", "pods"),
    ("", "pods/ephemeralcontainers"),
    ("", "replicationcontrollers"),
    ("apps", "deployments"),
    ("apps", "statefulsets"),
    ("apps", "daemonsets"),
    ("apps", "replicasets"),
    ("batch", "jobs"),
    ("batch", "cronjobs"),
}
WEBHOOK_KINDS = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
CERT_MANAGER = "cert-manager.io/"
SHA_PINNED = re.compile(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}")


# -- The manifests -----------------------------------------------------------------------


@dataclass(frozen=True)
class Manifest:
    path: Path
    doc: dict[str, Any]

    @property
    def id(self) -> str:
        where = self.path.relative_to(DEPLOY)
        return f"{where}:{self.doc['kind']}/{self.doc['metadata']['name']}"


def _load_all(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


def _manifests() -> list[Manifest]:
    return [
        Manifest(path, doc)
        for path in sorted(DEPLOY.rglob("*.yaml"))
        if path.name != "kustomization.yaml"
        for doc in _load_all(path)
    ]


MANIFESTS = _manifests()
WEBHOOK_CONFIGS = [m for m in MANIFESTS if m.doc["kind"] in WEBHOOK_KINDS]
WEBHOOKS = [(m, w) for m in WEBHOOK_CONFIGS for w in m.doc["webhooks"]]


def _webhook_id(item: tuple[Manifest, dict[str, Any]]) -> str:
    return f"{item[0].path.relative_to(DEPLOY)}:{item[1]['name']}"


def _one(kind: str, directory: Path = DEPLOY / "base", name: str | None = None) -> dict[str, Any]:
    found = [
        m.doc
        for m in MANIFESTS
        if m.doc["kind"] == kind
        and m.path.is_relative_to(directory)
        and (name is None or m.doc["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"{len(found)} {kind} objects named {name} in {directory}"
    return found[0]


def _cert_manager(kind: str, name: str) -> dict[str, Any]:
    return _one(kind, DEPLOY / "cert-manager.yaml", name)


def _pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = _one("Deployment")["spec"]["template"]["spec"]
    return spec


def _container() -> dict[str, Any]:
    containers = _pod_spec()["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def _flags(args: list[str]) -> dict[str, list[str]]:
    """`--name=value` and `--name value` arguments, by name."""
    found: dict[str, list[str]] = {}
    tokens = iter(args)
    for token in tokens:
        assert token.startswith("--"), f"{token!r} is not an option"
        name, equals, value = token.partition("=")
        found.setdefault(name, []).append(value if equals else next(tokens))
    return found


def _deployment_flags() -> dict[str, list[str]]:
    return _flags(_container()["args"])


def _unit_exec_start() -> list[str]:
    text = UNIT.read_text(encoding="utf-8").replace("\\\n", " ")
    line = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    return shlex.split(line.removeprefix("ExecStart="))


def _unit_flags() -> dict[str, list[str]]:
    command = _unit_exec_start()
    assert command[1:3] == ["gate", "serve"], command
    return _flags(command[3:])


def _mount_of(path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The volume mount a file path is under, and its volume."""
    mounts = [
        m
        for m in _container()["volumeMounts"]
        if PurePosixPath(path).is_relative_to(PurePosixPath(m["mountPath"]))
    ]
    assert len(mounts) == 1, f"{path} is under {len(mounts)} mounts"
    volume = next(v for v in _pod_spec()["volumes"] if v["name"] == mounts[0]["name"])
    return mounts[0], volume


# -- Every object against the Kubernetes API's schemas ----------------------------------


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda m: m.id)
def test_every_object_is_valid_for_kubernetes(manifest: Manifest, version: str) -> None:
    if manifest.doc["apiVersion"].startswith(CERT_MANAGER):
        pytest.skip(
            "cert-manager's kinds are CRDs, not in the Kubernetes schemas kubernetes-validate "
            "ships; test_the_serving_certificate_* checks the fields deploy/ relies on"
        )
    kubernetes_validate.validate(manifest.doc, version, strict=True)


def test_the_validation_is_strict_about_misspelt_fields() -> None:
    deployment = json.loads(json.dumps(_one("Deployment")))
    context = deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    context["readOnlyRootFileSystem"] = context.pop("readOnlyRootFilesystem")
    with pytest.raises(kubernetes_validate.ValidationError, match="readOnlyRootFileSystem"):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[0], strict=True)


def test_every_manifest_is_in_a_kustomization() -> None:
    listed = set()
    for kustomization in DEPLOY.rglob("kustomization.yaml"):
        (doc,) = _load_all(kustomization)
        for resource in doc["resources"]:
            target = (kustomization.parent / resource).resolve()
            if target.is_file():
                listed.add(target)
    assert {m.path.resolve() for m in MANIFESTS} == listed


def _kustomize(directory: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (whose `kubectl kustomize` renders the overlays) is not installed")
    proc = subprocess.run(
        [kubectl, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc is not None]


def _key(doc: dict[str, Any]) -> tuple[str, str, str]:
    return (doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"])


@pytest.mark.parametrize(
    "directory",
    sorted(p.parent for p in DEPLOY.rglob("kustomization.yaml")),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_each_kustomization_renders_objects_kubernetes_accepts(directory: Path) -> None:
    rendered = _kustomize(directory)
    assert rendered
    for doc in rendered:
        if not doc["apiVersion"].startswith(CERT_MANAGER):
            kubernetes_validate.validate(doc, K8S_VERSIONS[0], strict=True)


def test_the_install_renders_every_base_object_the_certificate_and_the_image() -> None:
    rendered = _kustomize(DEPLOY)
    expected = [
        m.doc
        for m in MANIFESTS
        if m.path.is_relative_to(DEPLOY / "base") or m.path == DEPLOY / "cert-manager.yaml"
    ]
    assert sorted(map(_key, rendered)) == sorted(map(_key, expected))
    (image,) = _load_all(DEPLOY / "base" / "kustomization.yaml")[0]["images"]
    (deployment,) = [d for d in rendered if d["kind"] == "Deployment"]
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert containers[0]["image"] == f"{image['newName']}:{image['newTag']}"


def test_the_kustomization_deploys_the_image_of_this_version() -> None:
    from wasmctl import __version__

    (image,) = _load_all(DEPLOY / "base" / "kustomization.yaml")[0]["images"]
    assert image["name"] == _container()["image"]
    assert image["newTag"] == __version__


def test_the_manual_tls_overlay_trades_the_injector_for_a_ca_bundle_to_fill_in() -> None:
    rendered = _kustomize(DEPLOY / "manual-tls")
    assert not [d for d in rendered if d["apiVersion"].startswith(CERT_MANAGER)]
    configs = [d for d in rendered if d["kind"] in WEBHOOK_KINDS]
    assert sorted(d["kind"] for d in configs) == sorted(WEBHOOK_KINDS)
    for config in configs:
        assert "cert-manager.io/inject-ca-from" not in config["metadata"].get("annotations", {})
        for webhook in config["webhooks"]:
            placeholder = webhook["clientConfig"]["caBundle"]
            assert placeholder in (DEPLOY / "manual-tls" / "kustomization.yaml").read_text()
            assert f'"s|{placeholder}|' in ADMISSION_DOC.read_text(encoding="utf-8")
            # not base64: an unreplaced placeholder is refused by the apiserver
            with pytest.raises(ValueError):
                base64.b64decode(placeholder, validate=True)


# -- The webhook configurations -----------------------------------------------------------


@pytest.mark.parametrize("item", WEBHOOKS, ids=_webhook_id)
def test_every_webhook_is_side_effect_free_bounded_in_time_and_speaks_v1(
    item: tuple[Manifest, dict[str, Any]],
) -> None:
    _, webhook = item
    assert webhook["sideEffects"] == "None"
    assert 1 <= webhook["timeoutSeconds"] <= 30
    assert webhook["admissionReviewVersions"] == ["v1"]
    assert webhook["matchPolicy"] == "Equivalent"


@pytest.mark.parametrize("item", WEBHOOKS, ids=_webhook_id)
def test_every_webhook_is_narrowed_by_at_most_64_named_match_conditions(
    item: tuple[Manifest, dict[str, Any]],
) -> None:
    names = [c["name"] for c in item[1]["matchConditions"]]
    assert 1 <= len(names) <= 64
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("item", WEBHOOKS, ids=_webhook_id)
def test_every_webhook_leaves_kube_system_and_the_gates_namespace_alone(
    item: tuple[Manifest, dict[str, Any]],
) -> None:
    selector = item[1]["namespaceSelector"]
    assert set(selector) == {"matchExpressions"}
    excluded = {
        value
        for expression in selector["matchExpressions"]
        if expression["key"] == "kubernetes.io/metadata.name" and expression["operator"] == "NotIn"
        for value in expression["values"]
    }
    assert excluded >= ALWAYS_EXCLUDED
    assert _one("Namespace")["metadata"]["name"] == NAMESPACE


@pytest.mark.parametrize("item", WEBHOOKS, ids=_webhook_id)
def test_every_webhook_sees_creates_and_updates_of_every_workload_kind(
    item: tuple[Manifest, dict[str, Any]],
) -> None:
    seen = set()
    for rule in item[1]["rules"]:
        assert set(rule["operations"]) == {"CREATE", "UPDATE"}
        assert rule["apiVersions"] == ["v1"]
        assert rule["scope"] == "Namespaced"
        seen |= {(group, r) for group in rule["apiGroups"] for r in rule["resources"]}
    assert seen == WORKLOAD_RESOURCES


@pytest.mark.parametrize("item", WEBHOOKS, ids=_webhook_id)
def test_validation_fails_closed_and_mutation_fails_open_and_is_reinvoked(
    item: tuple[Manifest, dict[str, Any]],
) -> None:
    manifest, webhook = item
    if manifest.doc["kind"] == "ValidatingWebhookConfiguration":
        assert webhook["failurePolicy"] == "Fail"
        assert "reinvocationPolicy" not in webhook
    else:
        assert webhook["failurePolicy"] == "Ignore"
        assert webhook["reinvocationPolicy"] == "IfNeeded"


@pytest.mark.parametrize("item", WEBHOOKS, ids=_webhook_id)
def test_every_webhook_calls_its_own_endpoint_of_the_server(
    item: tuple[Manifest, dict[str, Any]],
) -> None:
    manifest, webhook = item
    path = "/validate" if manifest.doc["kind"] == "ValidatingWebhookConfiguration" else "/mutate"
    client = webhook["clientConfig"]
    if manifest.path.is_relative_to(DEPLOY / "k3s"):
        flags = _unit_flags()
        assert client["url"] == f"https://{flags['--address'][0]}:{flags['--port'][0]}{path}"
        return
    service = _one("Service")
    assert client["service"] == {
        "name": service["metadata"]["name"],
        "namespace": service["metadata"]["namespace"],
        "path": path,
        "port": service["spec"]["ports"][0]["port"],
    }


def test_the_in_cluster_webhooks_trust_the_ca_of_the_serving_certificate() -> None:
    for manifest in WEBHOOK_CONFIGS:
        if not manifest.path.is_relative_to(DEPLOY / "base"):
            continue
        namespace, name = manifest.doc["metadata"]["annotations"][
            "cert-manager.io/inject-ca-from"
        ].split("/")
        certificate = _cert_manager("Certificate", name)
        assert certificate["metadata"]["namespace"] == namespace
        assert (
            _mount_of("/etc/wasmctl/tls/tls.crt")[1]["secret"]["secretName"]
            == (certificate["spec"]["secretName"])
        )


def _without_client(config: dict[str, Any]) -> dict[str, Any]:
    copy = json.loads(json.dumps(config))
    copy["metadata"].pop("annotations", None)
    for webhook in copy["webhooks"]:
        del webhook["clientConfig"]
    return copy


def test_the_k3s_webhooks_differ_from_the_in_cluster_ones_only_in_how_they_are_called() -> None:
    for kind in WEBHOOK_KINDS:
        in_cluster = _one(kind, DEPLOY / "base")
        host = _one(kind, DEPLOY / "k3s")
        assert _without_client(host) == _without_client(in_cluster)
        assert all(w["clientConfig"]["url"].startswith("https://") for w in host["webhooks"])


def test_every_webhook_sends_the_same_objects() -> None:
    first = WEBHOOKS[0][1]
    for _, webhook in WEBHOOKS:
        assert webhook["rules"] == first["rules"]
        assert webhook["matchConditions"] == first["matchConditions"]
        assert webhook["namespaceSelector"] == first["namespaceSelector"]


# -- The matchConditions, evaluated -------------------------------------------------------


def _conditions() -> list[dict[str, str]]:
    conditions: list[dict[str, str]] = _one("ValidatingWebhookConfiguration")["webhooks"][0][
        "matchConditions"
    ]
    return conditions


@functools.cache
def _programs() -> dict[str, Any]:
    environment = celpy.Environment()
    return {
        c["name"]: environment.program(environment.compile(c["expression"])) for c in _conditions()
    }


def _sent(obj: dict[str, Any], operation: str = "CREATE", old: Any = None) -> bool:
    """Whether the apiserver would call the webhooks for this object: every condition true."""
    activation = {
        "object": celpy.json_to_cel(obj),
        "oldObject": celpy.json_to_cel(old),
        "request": celpy.json_to_cel({"operation": operation}),
    }
    results = {name: program.evaluate(activation) for name, program in _programs().items()}
    for name, result in results.items():
        # an evaluation error would reject the request under failurePolicy Fail
        assert isinstance(result, celtypes.BoolType), f"{name}: {result!r}"
    return all(results.values())


def _pod_spec_of(runtime_class: str | None = None, image: str = "ghcr.io/acme/app:v1") -> Any:
    spec: dict[str, Any] = {"containers": [{"name": "app", "image": image}]}
    if runtime_class:
        spec["runtimeClassName"] = runtime_class
    return spec


def _pod(
    runtime_class: str | None = None,
    annotations: dict[str, str] | None = None,
    image: str = "ghcr.io/acme/app:v1",
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"generateName": "app-", "namespace": "apps"}
    if annotations:
        metadata["annotations"] = annotations
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": _pod_spec_of(runtime_class, image),
    }


def _template(
    runtime_class: str | None, annotations: dict[str, str] | None, image: str
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"labels": {"app": "app"}}
    if annotations:
        metadata["annotations"] = annotations
    return {"metadata": metadata, "spec": _pod_spec_of(runtime_class, image)}


def _workload(
    kind: str,
    runtime_class: str | None = None,
    annotations: dict[str, str] | None = None,
    image: str = "ghcr.io/acme/app:v1",
    replicas: int = 2,
) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1" if kind == "Job" else "apps/v1",
        "kind": kind,
        "metadata": {"name": "app", "namespace": "apps"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "app"}},
            "template": _template(runtime_class, annotations, image),
        },
    }


def _cronjob(
    runtime_class: str | None = None,
    annotations: dict[str, str] | None = None,
    image: str = "ghcr.io/acme/app:v1",
    schedule: str = "*/5 * * * *",
) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "app", "namespace": "apps"},
        "spec": {
            "schedule": schedule,
            "jobTemplate": {"spec": {"template": _template(runtime_class, annotations, image)}},
        },
    }


CRUN_VARIANT = {"module.wasm.image/variant": "compat-smart"}
CRUN_HANDLER = {"run.oci.handler": "wasm"}
MIRROR = {"kubernetes.io/config.mirror": "0123abcd"}

SELECTION_CASES: list[tuple[str, dict[str, Any], bool]] = [
    ("a Pod on a Wasm runtime class", _pod("wasmtime"), True),
    ("an nginx Pod on the default runtime", _pod(image="nginx:1.27"), False),
    ("a Pod on another runtime class", _pod("gvisor"), False),
    ("a Pod with crun's variant annotation", _pod(annotations=CRUN_VARIANT), True),
    ("a Pod with crun's handler annotation", _pod(annotations=CRUN_HANDLER), True),
    ("a mirror Pod of a static Wasm pod", _pod("wasmtime", annotations=MIRROR), False),
    ("a Deployment of Wasm pods", _workload("Deployment", "spin"), True),
    ("a Deployment of nginx", _workload("Deployment", image="nginx:1.27"), False),
    ("a StatefulSet with crun's annotation", _workload("StatefulSet", None, CRUN_VARIANT), True),
    ("a DaemonSet of Wasm pods", _workload("DaemonSet", "wasmedge"), True),
    ("a ReplicaSet of Wasm pods", _workload("ReplicaSet", "crun-wasm"), True),
    ("a Job of Wasm pods", _workload("Job", "wasmtime-spin-v2"), True),
    ("a CronJob of Wasm pods", _cronjob("crun-wasm"), True),
    ("a CronJob with crun's annotation", _cronjob(annotations=CRUN_HANDLER), True),
    ("a CronJob of ordinary pods", _cronjob(), False),
    ("a Pod with no spec", {"apiVersion": "v1", "kind": "Pod", "metadata": {}}, False),
    ("an object with nothing", {}, False),
]


@pytest.mark.parametrize(
    ("obj", "sent"), [c[1:] for c in SELECTION_CASES], ids=[c[0] for c in SELECTION_CASES]
)
def test_the_match_conditions_send_wasm_workloads_and_nothing_else(
    obj: dict[str, Any], sent: bool
) -> None:
    assert _sent(obj) is sent


def _with_ephemeral_container(pod: dict[str, Any]) -> dict[str, Any]:
    changed = json.loads(json.dumps(pod))
    changed["spec"]["ephemeralContainers"] = [{"name": "debug", "image": "busybox"}]
    return changed


def _relabelled(pod: dict[str, Any]) -> dict[str, Any]:
    changed = json.loads(json.dumps(pod))
    changed["metadata"]["labels"] = {"tier": "edge"}
    return changed


UPDATE_CASES: list[tuple[str, dict[str, Any], dict[str, Any], bool]] = [
    (
        "a Deployment scaled",
        _workload("Deployment", "spin", replicas=2),
        _workload("Deployment", "spin", replicas=5),
        False,
    ),
    (
        "a Deployment given a new image",
        _workload("Deployment", "spin"),
        _workload("Deployment", "spin", image="ghcr.io/acme/app:v2"),
        True,
    ),
    ("a Pod relabelled", _pod("wasmtime"), _relabelled(_pod("wasmtime")), False),
    (
        "a Pod given an ephemeral container",
        _pod("wasmtime"),
        _with_ephemeral_container(_pod("wasmtime")),
        True,
    ),
    ("a CronJob rescheduled", _cronjob("spin"), _cronjob("spin", schedule="0 * * * *"), False),
    (
        "a CronJob given a new image",
        _cronjob("spin"),
        _cronjob("spin", image="ghcr.io/acme/app:v2"),
        True,
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "sent"), [c[1:] for c in UPDATE_CASES], ids=[c[0] for c in UPDATE_CASES]
)
def test_an_update_is_sent_only_when_it_changes_what_runs(
    old: dict[str, Any], new: dict[str, Any], sent: bool
) -> None:
    assert _sent(new, "UPDATE", old) is sent
    assert _sent(new, "CREATE") is True


FieldPath = tuple[str, ...]
_WRAPPERS = {
    "expr",
    "conditionalor",
    "conditionaland",
    "relation",
    "addition",
    "multiplication",
    "unary",
    "member",
    "primary",
    "paren_expr",
    "exprlist",
}


def _unwrap(node: Any) -> Any:
    while isinstance(node, Tree) and node.data in _WRAPPERS and len(node.children) == 1:
        node = node.children[0]
    return node


def _flatten(node: Any, kind: str) -> list[Any]:
    node = _unwrap(node)
    if isinstance(node, Tree) and node.data == kind and len(node.children) == 2:
        return _flatten(node.children[0], kind) + _flatten(node.children[1], kind)
    return [node]


def _field_path(node: Any) -> FieldPath:
    node = _unwrap(node)
    if node.data == "member_dot":
        return (*_field_path(node.children[0]), str(node.children[1]))
    assert node.data == "ident", f"not a field selection: {node.data}"
    return (str(node.children[0]),)


def _shape(node: Any) -> tuple[str, Any]:
    """What a parse-tree node is, for the guard analysis below."""
    node = _unwrap(node)
    if not isinstance(node, Tree):
        return "token", node
    children = node.children
    if node.data == "expr" and len(children) == 3:
        return "if", children
    if node.data == "conditionalor" and len(children) == 2:
        return "or", _flatten(node, "conditionalor")
    if node.data == "conditionaland" and len(children) == 2:
        return "and", _flatten(node, "conditionaland")
    if node.data == "unary" and isinstance(children[0], Tree) and children[0].data == "unary_not":
        return "not", children[1]
    if node.data == "ident_arg" and str(children[0]) == "has":
        return "has", _field_path(children[1])
    if node.data in ("member_dot", "ident"):
        return "select", _field_path(node)
    return "other", node


def _and_prefixes(path: FieldPath) -> frozenset[FieldPath]:
    return frozenset(path[:end] for end in range(2, len(path) + 1))


def _when_true(node: Any) -> frozenset[FieldPath]:
    """Fields known to exist when `node` is true."""
    shape, value = _shape(node)
    if shape == "has":
        return _and_prefixes(value)
    if shape == "and":
        return frozenset().union(*map(_when_true, value))
    return _when_false(value) if shape == "not" else frozenset()


def _when_false(node: Any) -> frozenset[FieldPath]:
    """Fields known to exist when `node` is false."""
    shape, value = _shape(node)
    if shape == "or":
        return frozenset().union(*map(_when_false, value))
    return _when_true(value) if shape == "not" else frozenset()


def _unguarded(expression: str) -> list[str]:
    """Fields of `object`/`oldObject` read where an earlier has() does not vouch for them.

    Kubernetes types `object` as dyn in matchConditions: reading an absent field is an
    error, not null (cel-python answers null there, so its evaluation cannot show this).
    A read is safe when every step of it is vouched for by the has() tests before it in
    its conjunction, the failed tests before it in its disjunction, or the condition of
    its ternary branch (a left-to-right reading: if an earlier operand decides, the read
    never matters; if it does not, its facts hold)."""
    found: list[str] = []

    def check(node: Any, known: frozenset[FieldPath]) -> None:
        shape, value = _shape(node)
        if shape == "if":
            condition, then, otherwise = value
            check(condition, known)
            check(then, known | _when_true(condition))
            check(otherwise, known | _when_false(condition))
        elif shape in ("or", "and"):
            implied = _when_false if shape == "or" else _when_true
            for operand in value:
                check(operand, known)
                known |= implied(operand)
        elif shape == "not":
            check(value, known)
        elif shape in ("has", "select"):
            path = value[:-1] if shape == "has" else value
            if path[0] in ("object", "oldObject"):
                found.extend(".".join(p) for p in sorted(_and_prefixes(path) - known))
        elif shape == "other":
            if value.data in ("member_index", "member_dot_arg"):
                found.append(f"{value.data}: indexing and macros are not analysed")
            for child in value.children:
                check(child, known)

    check(celpy.Environment().compile(expression), frozenset())
    return found


@pytest.mark.parametrize("item", WEBHOOKS, ids=_webhook_id)
def test_the_match_conditions_read_no_field_before_testing_it_with_has(
    item: tuple[Manifest, dict[str, Any]],
) -> None:
    assert _unguarded("has(object.spec) && object.spec.x == 1") == ["object.spec.x"]
    assert _unguarded("has(object.a.b) && has(object.a)") == ["object.a"]
    assert _unguarded("has(object.a) && has(object.a.b) || object.a.b == 1") == [
        "object.a",
        "object.a.b",
    ]
    assert _unguarded("!has(object.a) || (has(object.a.b) ? object.a.b != 1 : true)") == []
    for condition in item[1]["matchConditions"]:
        assert _unguarded(condition["expression"]) == [], condition["name"]


@pytest.mark.parametrize("item", WEBHOOKS, ids=_webhook_id)
def test_the_match_conditions_name_the_policys_runtime_classes(
    item: tuple[Manifest, dict[str, Any]],
) -> None:
    policy = yaml.safe_load(_one("ConfigMap")["data"]["gate.yaml"])
    (wasm,) = [c for c in item[1]["matchConditions"] if c["name"] == "wasm-workload"]
    lists = re.findall(r"\bin\s*\[([^\]]*)\]", wasm["expression"])
    assert len(lists) == 3  # a Pod's spec, a workload's template, a CronJob's job template
    for listed in lists:
        assert sorted(re.findall(r'"([^"]+)"', listed)) == sorted(policy["runtimeClasses"])


# -- The Deployment -----------------------------------------------------------------------


def test_the_server_runs_as_non_root_on_a_read_only_root_with_no_capabilities() -> None:
    pod = _pod_spec()["securityContext"]
    container = _container()["securityContext"]
    for context in (pod, container):
        assert context["runAsNonRoot"] is True
        assert context["runAsUser"] == 65532
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["readOnlyRootFilesystem"] is True
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}


def test_the_namespace_enforces_the_restricted_pod_security_standard() -> None:
    labels = _one("Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_the_probes_ask_healthz_and_readyz_over_https_on_the_serving_port() -> None:
    container = _container()
    (port,) = container["ports"]
    assert port["containerPort"] == int(_deployment_flags()["--port"][0])
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = container[probe]["httpGet"]
        assert get == {"path": path, "port": port["name"], "scheme": "HTTPS"}


def test_the_service_sends_443_to_the_serving_port() -> None:
    service = _one("Service")
    (port,) = service["spec"]["ports"]
    assert port["port"] == 443
    assert port["targetPort"] == _container()["ports"][0]["name"]
    labels = _one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()


def test_two_replicas_spread_over_nodes_and_a_budget_keeps_one_up() -> None:
    deployment = _one("Deployment")
    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    spread = {c["topologyKey"] for c in _pod_spec()["topologySpreadConstraints"]}
    assert "kubernetes.io/hostname" in spread
    budget = _one("PodDisruptionBudget")
    assert budget["spec"]["minAvailable"] == 1
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_resources_are_requested_and_memory_is_limited() -> None:
    resources = _container()["resources"]
    assert set(resources["requests"]) == {"cpu", "memory"}
    assert "memory" in resources["limits"]


def test_the_server_has_no_api_token_and_learns_its_namespace_from_the_downward_api() -> None:
    assert _pod_spec()["automountServiceAccountToken"] is False
    account = _one("ServiceAccount")
    assert account["automountServiceAccountToken"] is False
    assert _pod_spec()["serviceAccountName"] == account["metadata"]["name"]
    env = {e["name"]: e for e in _container()["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}


def test_everything_the_server_writes_goes_to_an_empty_dir_at_tmp() -> None:
    env = {e["name"]: e.get("value") for e in _container()["env"]}
    for name in ("HOME", "XDG_CACHE_HOME", "TMPDIR"):
        mount, volume = _mount_of(env[name])
        assert mount["mountPath"] == "/tmp"
        assert "emptyDir" in volume
    writable = [m for m in _container()["volumeMounts"] if not m.get("readOnly")]
    assert [m["mountPath"] for m in writable] == ["/tmp"]


def test_the_policy_and_certificate_arguments_are_files_of_their_mounts() -> None:
    flags = _deployment_flags()
    policy = _one("ConfigMap")
    _, volume = _mount_of(flags["--policy"][0])
    assert volume["configMap"]["name"] == policy["metadata"]["name"]
    assert PurePosixPath(flags["--policy"][0]).name in policy["data"]
    for flag, key in (("--tls-cert", "tls.crt"), ("--tls-key", "tls.key")):
        _, volume = _mount_of(flags[flag][0])
        assert volume["secret"]["secretName"] == "wasmctl-gate-tls"
        assert PurePosixPath(flags[flag][0]).name == key
    # subPath mounts are never updated: a renewed certificate or new policy would not arrive
    assert not [m for m in _container()["volumeMounts"] if "subPath" in m]


def test_registry_credentials_are_a_docker_config_json_from_an_optional_secret() -> None:
    env = {e["name"]: e.get("value") for e in _container()["env"]}
    mount, volume = _mount_of(f"{env['DOCKER_CONFIG']}/config.json")
    assert mount["mountPath"] == env["DOCKER_CONFIG"]
    assert volume["secret"]["optional"] is True
    assert volume["secret"]["items"] == [{"key": ".dockerconfigjson", "path": "config.json"}]


# -- `wasmctl gate serve`'s arguments ------------------------------------------------------


@pytest.mark.parametrize("where", ["deployment", "k3s unit"])
def test_the_server_is_given_only_gate_serve_options(where: str) -> None:
    flags = _deployment_flags() if where == "deployment" else _unit_flags()
    assert set(flags) <= SERVE_FLAGS
    assert {"--policy", "--tls-cert", "--tls-key"} <= set(flags)
    for flag, choices in FLAG_CHOICES.items():
        assert set(flags.get(flag, [])) <= choices


@functools.cache
def _serve_help() -> str | None:
    """`wasmctl gate serve --help`, or None while the command is not registered."""
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    proc = subprocess.run(
        [sys.executable, "-m", "wasmctl", "gate", "serve", "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=env,
    )
    # `gate serve --help` is `gate`'s own help (with "serve" a target) until serve exists
    return proc.stdout if proc.returncode == 0 and "--tls-cert" in proc.stdout else None


def _help_flags() -> set[str]:
    text = _serve_help()
    if text is None:
        pytest.skip("gate serve not yet registered")
    return set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", text)) - TYPER_FLAGS


@pytest.mark.parametrize("where", ["deployment", "k3s unit"])
def test_the_server_is_given_options_gate_serve_accepts(where: str) -> None:
    flags = _deployment_flags() if where == "deployment" else _unit_flags()
    assert set(flags) <= _help_flags()


def test_the_docs_describe_every_gate_serve_option() -> None:
    text = ADMISSION_DOC.read_text(encoding="utf-8")
    assert [f for f in sorted(SERVE_FLAGS) if f"`{f}" not in text] == []


def test_the_docs_describe_every_option_gate_serve_has() -> None:
    text = ADMISSION_DOC.read_text(encoding="utf-8")
    assert [f for f in sorted(_help_flags()) if f"`{f}" not in text] == []


def test_the_docs_describe_every_metric() -> None:
    text = ADMISSION_DOC.read_text(encoding="utf-8")
    names = set(METRICS)
    try:
        from wasmctl.gate.serve.metrics import Metrics
    except ImportError:
        pass  # the server is being written; the designed names are checked meanwhile
    else:
        rendered = Metrics().render().decode()
        names |= set(re.findall(r"^# TYPE (\S+) ", rendered, re.MULTILINE))
    assert [n for n in sorted(names) if f"`{n}" not in text] == []


# -- The policy ----------------------------------------------------------------------------


def test_the_policy_configmap_loads_as_a_gate_policy_with_every_file_it_names(
    tmp_path: Path,
) -> None:
    import jsonschema

    from tests.schemas import doc_schema
    from wasmctl.gate.policy import load_gate_policy

    # the ConfigMap's keys are the files of the mounted directory
    for key, value in _one("ConfigMap")["data"].items():
        (tmp_path / key).write_text(value, encoding="utf-8")
    policy_file = tmp_path / PurePosixPath(_deployment_flags()["--policy"][0]).name
    policy = load_gate_policy(policy_file)
    jsonschema.validate(yaml.safe_load(policy_file.read_text()), doc_schema("gate.schema.json"))
    named = [policy.trusted_root] if policy.trusted_root else []
    for rules in (policy.rules, *(o.rules for o in policy.overrides)):
        named += rules.signatures.keys if rules.signatures else ()
        named += rules.scan.policies if rules.scan else ()
    assert [p for p in named if not p.is_file()] == []
    assert policy.runtime_classes


# -- cert-manager ----------------------------------------------------------------------------


def test_the_serving_certificate_names_the_service_and_fills_the_mounted_secret() -> None:
    service = _one("Service")["metadata"]
    certificate = _cert_manager("Certificate", "wasmctl-gate-tls")["spec"]
    host = f"{service['name']}.{service['namespace']}.svc"
    assert set(certificate["dnsNames"]) == {host, f"{host}.cluster.local"}
    assert (
        certificate["secretName"]
        == _mount_of("/etc/wasmctl/tls/tls.crt")[1]["secret"]["secretName"]
    )
    assert "server auth" in certificate["usages"]
    assert certificate["issuerRef"]["kind"] == "Issuer"
    issuer = _cert_manager("Issuer", certificate["issuerRef"]["name"])["spec"]
    ca = _cert_manager("Certificate", "wasmctl-gate-ca")["spec"]
    assert issuer["ca"]["secretName"] == ca["secretName"]
    assert ca["isCA"] is True
    assert _cert_manager("Issuer", ca["issuerRef"]["name"])["spec"] == {"selfSigned": {}}


def test_the_cert_manager_objects_live_with_the_server() -> None:
    objects = [m.doc for m in MANIFESTS if m.path == DEPLOY / "cert-manager.yaml"]
    assert len(objects) == 4
    for doc in objects:
        assert doc["apiVersion"] == "cert-manager.io/v1"
        assert doc["metadata"]["namespace"] == NAMESPACE
        if doc["kind"] == "Certificate":
            assert doc["spec"]["issuerRef"]["group"] == "cert-manager.io"


def _shell_blocks(text: str) -> Iterator[str]:
    yield from re.findall(r"```sh\n(.*?)```", text, re.DOTALL)


@pytest.mark.parametrize("variant", ["service", "k3s host process"])
def test_the_documented_openssl_commands_make_a_certificate_the_apiserver_accepts(
    variant: str, tmp_path: Path
) -> None:
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    blocks = [b for b in _shell_blocks(ADMISSION_DOC.read_text()) if "openssl req -x509" in b]
    assert len(blocks) == 2
    script = blocks[0 if variant == "service" else 1]
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.crt").read_bytes())
    served = x509.load_pem_x509_certificate((tmp_path / "tls.crt").read_bytes())
    served.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    usage = served.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usage
    names = served.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    if variant == "service":
        certificate = _cert_manager("Certificate", "wasmctl-gate-tls")["spec"]
        assert set(names.get_values_for_type(x509.DNSName)) == set(certificate["dnsNames"])
    else:
        address = _unit_flags()["--address"][0]
        assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == [address]


# -- The image -------------------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    text = CONTAINERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    found = []
    for line in lines:
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def _instruction(keyword: str) -> list[str]:
    return [rest for k, rest in _instructions() if k == keyword]


def test_the_image_builds_a_wheel_on_python_311_slim_and_ships_only_the_venv() -> None:
    (base,) = [a for a in _instruction("ARG") if a.startswith("PYTHON_IMAGE=")]
    assert ":3.11-slim" in base
    froms = _instruction("FROM")
    assert froms == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE}"]
    copies = _instruction("COPY")
    assert "--from=build /opt/wasmctl /opt/wasmctl" in copies
    assert any("pip wheel" in run for run in _instruction("RUN"))


def test_the_image_copies_what_a_wheel_build_needs_and_nothing_missing() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    sources = []
    for copy in _instruction("COPY"):
        if copy.startswith("--from="):
            continue
        *paths, _destination = copy.split()
        sources += paths
    assert [s for s in sources if not (ROOT / s).exists()] == []
    assert {"pyproject.toml", project["readme"], "wasmctl/"} <= set(sources)


def test_the_image_runs_gate_serve_as_the_deployments_user_on_its_port() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (entrypoint,) = _instruction("ENTRYPOINT")
    command = json.loads(entrypoint)
    assert command == ["wasmctl", "gate", "serve"]
    assert command[0] in project["scripts"]
    (user,) = _instruction("USER")
    context = _container()["securityContext"]
    assert user == f"{context['runAsUser']}:{context['runAsGroup']}"
    assert _instruction("EXPOSE") == [str(_container()["ports"][0]["containerPort"])]


def test_the_image_carries_oci_labels() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    labels = dict(
        re.findall(r'(org\.opencontainers\.image\.[a-z.]+)="([^"]*)"', CONTAINERFILE.read_text())
    )
    for key in ("title", "description", "licenses", "version", "revision"):
        assert labels.get(f"org.opencontainers.image.{key}"), key
    assert labels["org.opencontainers.image.licenses"] == project["license"]


# -- The image workflow ------------------------------------------------------------------------


def _workflow() -> dict[str, Any]:
    (document,) = _load_all(WORKFLOW)
    return document


def _steps() -> list[dict[str, Any]]:
    return [step for job in _workflow()["jobs"].values() for step in job["steps"]]


def _step(uses: str) -> dict[str, Any]:
    (step,) = [s for s in _steps() if s.get("uses", "").startswith(uses + "@")]
    return step


def test_the_image_workflow_follows_the_github_workflows_schema() -> None:
    program = shutil.which("check-jsonschema")
    if program is None:
        pytest.fail("check-jsonschema is not installed (pip install check-jsonschema)")
    # the network namespace cut where possible: the vendored schema is used, offline
    can_cut = (
        shutil.which("unshare") is not None
        and subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode == 0
    )
    jail = ["unshare", "--net"] if can_cut else []
    proc = subprocess.run(
        [*jail, program, "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_image_workflow_builds_both_architectures_from_the_containerfile() -> None:
    build = _step("docker/build-push-action")["with"]
    assert build["file"] == str(CONTAINERFILE.relative_to(ROOT))
    assert build["context"] == "."
    assert set(build["platforms"].split(",")) == {"linux/amd64", "linux/arm64"}
    assert {"docker/setup-qemu-action", "docker/setup-buildx-action"} <= {
        s["uses"].split("@")[0] for s in _steps() if "uses" in s
    }


def test_the_image_workflow_pushes_to_ghcr_on_main_and_tags_with_the_job_token() -> None:
    workflow = _workflow()
    trigger = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads `on` as true
    assert trigger["push"]["branches"] == ["main"]
    assert trigger["push"]["tags"]
    assert workflow["permissions"] == {"contents": "read"}
    (job,) = workflow["jobs"].values()
    assert job["permissions"]["packages"] == "write"
    assert job["permissions"]["contents"] == "read"
    login = _step("docker/login-action")["with"]
    assert login["registry"] == "ghcr.io"
    assert login["password"] == "${{ secrets.GITHUB_TOKEN }}"
    assert job["env"]["IMAGE"].startswith("ghcr.io/")


def test_the_image_workflow_signs_keyless_what_it_pushed() -> None:
    (job,) = _workflow()["jobs"].values()
    assert job["permissions"]["id-token"] == "write"
    _step("sigstore/cosign-installer")
    (sign,) = [s for s in _steps() if "cosign sign" in s.get("run", "")]
    assert sign["env"]["DIGEST"] == "${{ steps.build.outputs.digest }}"


def test_the_image_workflow_pins_actions_and_keeps_expressions_out_of_scripts() -> None:
    used = [s["uses"] for s in _steps() if "uses" in s]
    assert used
    assert [u for u in used if not SHA_PINNED.fullmatch(u)] == []
    assert [s["name"] for s in _steps() if "${{" in s.get("run", "")] == []


# -- K3s: the host process -------------------------------------------------------------------


def test_the_k3s_unit_is_a_unit_systemd_reads_without_complaint(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    unit = tmp_path / UNIT.name
    unit.write_bytes(UNIT.read_bytes())
    proc = subprocess.run(
        [analyze, "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    complaints = [
        line
        for line in (proc.stdout + proc.stderr).splitlines()
        if UNIT.name in line and "is not executable" not in line  # not installed here
    ]
    assert complaints == []
    assert _unit_exec_start()[0] == "/opt/wasmctl/bin/wasmctl"


def test_the_docs_index_links_the_admission_page() -> None:
    index = (ROOT / "docs" / "README.md").read_text(encoding="utf-8")
    assert "](admission.md)" in index

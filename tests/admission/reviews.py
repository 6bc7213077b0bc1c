"""AdmissionReview ``admission.k8s.io/v1`` requests shaped as kube-apiserver builds them.

The shapes follow ``CreateV1AdmissionReview`` (apiserver request/admissionreview.go) and the
JSON tags of kubernetes/api admission/v1 (both read at the snapshots admission.md names):

- every builder call gets a fresh ``uid`` (the apiserver makes one per webhook call; the harness
  replaces it again for each call it makes);
- ``kind``/``resource``/``subResource`` and ``requestKind``/``requestResource``/
  ``requestSubResource`` are always filled (the ``*SubResource`` fields left out when empty);
  ``name`` and ``namespace`` are left out when empty, as ``omitempty`` does;
- ``object`` and ``oldObject`` are always present and ``null`` when absent (a nil
  ``RawExtension`` marshals as ``null``): ``oldObject`` on CREATE and CONNECT, ``object`` on
  DELETE; ``dryRun`` is always present; ``options`` holds Create/Update/DeleteOptions
  (``null`` for CONNECT);
- objects are as admission sees them: already defaulted, and for Pods already through the
  in-tree mutating plugins that run before webhooks (the ServiceAccount plugin's
  ``kube-api-access-*`` volume and mounts, DefaultTolerationSeconds' tolerations, Priority's
  ``priority: 0``), but not yet through ``PrepareForCreate``: no ``uid``, ``resourceVersion`` or
  ``status.phase``, ``creationTimestamp: null``, and **no ``name`` on a CREATE with
  ``generateName``**, as for every Pod a ReplicaSet makes.

Builders return plain dicts; change them freely (they are fresh on every call).
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

DEFAULT_IMAGE = "registry.example/acme/hello:v1"
DEBUG_IMAGE = "busybox:1.36"
WASM_RUNTIME_CLASS = "crun-wasm"
CRUN_WASM_ANNOTATIONS: Mapping[str, str] = {
    "module.wasm.image/variant": "compat-smart",
    "run.oci.handler": "wasm",
}
"""The annotations crun reads to run a Pod's containers as Wasm (crun wasm-wasi docs)."""

POD_TEMPLATE_HASH = "7d9f8b6c4d"
EXISTING_TIMESTAMP = "2026-11-26T10:00:00Z"

# -- Who asks --------------------------------------------------------------------------------


@dataclass(frozen=True)
class UserInfo:
    """``userInfo`` (authentication/v1): every field is ``omitempty``."""

    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        info: dict[str, Any] = {}
        if self.username:
            info["username"] = self.username
        if self.uid:
            info["uid"] = self.uid
        if self.groups:
            info["groups"] = list(self.groups)
        if self.extra:
            info["extra"] = {key: list(values) for key, values in self.extra.items()}
        return info


def service_account(namespace: str, name: str) -> UserInfo:
    return UserInfo(
        f"system:serviceaccount:{namespace}:{name}",
        uid=str(uuid.uuid4()),
        groups=(
            "system:serviceaccounts",
            f"system:serviceaccounts:{namespace}",
            "system:authenticated",
        ),
    )


REPLICASET_CONTROLLER = service_account("kube-system", "replicaset-controller")
"""kube-controller-manager's ReplicaSet controller, which creates every Deployment's Pods."""
KUBECTL_ADMIN = UserInfo(
    "kubernetes-admin", groups=("kubeadm:cluster-admins", "system:authenticated")
)
"""The user of a kubeadm cluster's admin.conf."""


def kubelet(node: str = "node-1") -> UserInfo:
    """A kubelet's identity (it creates mirror Pods for static Pods)."""
    return UserInfo(f"system:node:{node}", groups=("system:nodes", "system:authenticated"))


# -- Objects ---------------------------------------------------------------------------------


def _pull_policy(image: str) -> str:
    """The defaulted ``imagePullPolicy``: Always for ``:latest`` or no tag, else IfNotPresent."""
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else ""
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def _sa_volume_name() -> str:
    return "kube-api-access-" + uuid.uuid4().hex[:5]


def container(
    name: str, image: str, *, sa_volume: str | None = None, **extra: Any
) -> dict[str, Any]:
    """A container as defaulting leaves it (plus the service account token mount)."""
    spec: dict[str, Any] = {"name": name, "image": image, **extra, "resources": {}}
    if sa_volume:
        spec["volumeMounts"] = [
            {
                "name": sa_volume,
                "readOnly": True,
                "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
            }
        ]
    spec["terminationMessagePath"] = "/dev/termination-log"
    spec["terminationMessagePolicy"] = "File"
    spec["imagePullPolicy"] = _pull_policy(image)
    return spec


def pod_spec(
    *,
    image: str = DEFAULT_IMAGE,
    containers: int = 1,
    images: Sequence[str] | None = None,
    init_containers: int = 0,
    init_image: str | None = None,
    ephemeral_containers: int = 0,
    ephemeral_image: str = DEBUG_IMAGE,
    runtime_class: str | None = None,
    image_volumes: Sequence[str] = (),
    node_name: str | None = None,
    restart_policy: str = "Always",
    admitted: bool = True,
) -> dict[str, Any]:
    """A defaulted Pod spec.

    ``images`` gives each container its own image (overrides ``image`` and ``containers``);
    ``image_volumes`` adds ``volumes[].image.reference`` volumes (ImageVolume, K8s 1.31+).
    ``admitted`` adds what the in-tree plugins add to a Pod before webhooks see it; a workload's
    Pod template has none of it.
    """
    sa_volume = _sa_volume_name() if admitted else None
    names = list(images) if images is not None else [image] * containers
    spec: dict[str, Any] = {}
    volumes: list[dict[str, Any]] = [
        {"name": f"wasm-module-{i}", "image": {"reference": ref, "pullPolicy": _pull_policy(ref)}}
        for i, ref in enumerate(image_volumes)
    ]
    if sa_volume:
        volumes.append(_service_account_volume(sa_volume))
    if volumes:
        spec["volumes"] = volumes
    if init_containers:
        spec["initContainers"] = [
            container(f"init-{i}", init_image or image, sa_volume=sa_volume)
            for i in range(init_containers)
        ]
    spec["containers"] = [
        container("app" if len(names) == 1 else f"app-{i}", ref, sa_volume=sa_volume)
        for i, ref in enumerate(names)
    ]
    if ephemeral_containers:
        spec["ephemeralContainers"] = [
            ephemeral_container(f"debugger-{i}", ephemeral_image)
            for i in range(ephemeral_containers)
        ]
    spec["restartPolicy"] = restart_policy
    spec["terminationGracePeriodSeconds"] = 30
    spec["dnsPolicy"] = "ClusterFirst"
    if admitted:
        spec["serviceAccountName"] = "default"
        spec["serviceAccount"] = "default"
    if node_name:
        spec["nodeName"] = node_name
    spec["securityContext"] = {}
    spec["schedulerName"] = "default-scheduler"
    if admitted:
        spec["tolerations"] = [
            {
                "key": f"node.kubernetes.io/{taint}",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            }
            for taint in ("not-ready", "unreachable")
        ]
        spec["priority"] = 0
    if runtime_class:
        spec["runtimeClassName"] = runtime_class
    spec["enableServiceLinks"] = True
    spec["preemptionPolicy"] = "PreemptLowerPriority"
    return spec


def ephemeral_container(name: str, image: str, target: str | None = "app") -> dict[str, Any]:
    """An ephemeral container as ``kubectl debug`` adds it."""
    spec = container(name, image, stdin=True, tty=True)
    if target:
        spec["targetContainerName"] = target
    return spec


def _service_account_volume(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "projected": {
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {
                    "configMap": {
                        "name": "kube-root-ca.crt",
                        "items": [{"key": "ca.crt", "path": "ca.crt"}],
                    }
                },
                {
                    "downwardAPI": {
                        "items": [
                            {
                                "path": "namespace",
                                "fieldRef": {
                                    "apiVersion": "v1",
                                    "fieldPath": "metadata.namespace",
                                },
                            }
                        ]
                    }
                },
            ],
            "defaultMode": 420,
        },
    }


def metadata(
    *,
    name: str | None = None,
    generate_name: str | None = None,
    namespace: str | None = "default",
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    owner: Mapping[str, Any] | None = None,
    existing: bool = False,
) -> dict[str, Any]:
    """Object metadata; ``existing`` adds uid, resourceVersion and a creation time (UPDATE,
    DELETE, CONNECT), otherwise ``creationTimestamp`` is null as on every CREATE."""
    meta: dict[str, Any] = {}
    if name:
        meta["name"] = name
    if generate_name:
        meta["generateName"] = generate_name
    if namespace:
        meta["namespace"] = namespace
    if existing:
        meta["uid"] = str(uuid.uuid4())
        meta["resourceVersion"] = "48213"
        meta["creationTimestamp"] = EXISTING_TIMESTAMP
    else:
        meta["creationTimestamp"] = None
    if labels:
        meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    if owner:
        meta["ownerReferences"] = [dict(owner)]
    return meta


def owner_reference(kind: str, name: str, api_version: str = "apps/v1") -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": name,
        "uid": str(uuid.uuid4()),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def pod(
    *,
    name: str | None = None,
    generate_name: str | None = None,
    namespace: str = "default",
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    owner: Mapping[str, Any] | None = None,
    existing: bool = False,
    **spec: Any,
) -> dict[str, Any]:
    """A Pod object; ``spec`` keywords go to :func:`pod_spec`."""
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": metadata(
            name=name,
            generate_name=generate_name,
            namespace=namespace,
            labels=labels,
            annotations=annotations,
            owner=owner,
            existing=existing,
        ),
        "spec": pod_spec(**spec),
        "status": {"phase": "Running"} if existing else {},
    }


def pod_template(
    *,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """``spec.template`` of a workload: metadata with a null creationTimestamp, bare defaults."""
    meta: dict[str, Any] = {"creationTimestamp": None, "labels": dict(labels or {"app": "web"})}
    if annotations:
        meta["annotations"] = dict(annotations)
    return {"metadata": meta, "spec": pod_spec(admitted=False, **spec)}


def _workload(
    kind: str, api_version: str, name: str, namespace: str, spec: Any, status: Any
) -> dict[str, Any]:
    return {
        "kind": kind,
        "apiVersion": api_version,
        "metadata": metadata(name=name, namespace=namespace, labels={"app": name}),
        "spec": spec,
        "status": status,
    }


def _selector(name: str) -> dict[str, Any]:
    return {"matchLabels": {"app": name}}


def deployment(
    name: str = "web", namespace: str = "default", replicas: int = 1, **template: Any
) -> dict[str, Any]:
    template.setdefault("labels", {"app": name})
    spec = {
        "replicas": replicas,
        "selector": _selector(name),
        "template": pod_template(**template),
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
        },
        "revisionHistoryLimit": 10,
        "progressDeadlineSeconds": 600,
    }
    return _workload("Deployment", "apps/v1", name, namespace, spec, {})


def replicaset(
    name: str = "web", namespace: str = "default", replicas: int = 1, **template: Any
) -> dict[str, Any]:
    labels = {"app": name, "pod-template-hash": POD_TEMPLATE_HASH}
    template.setdefault("labels", labels)
    spec = {
        "replicas": replicas,
        "selector": {"matchLabels": labels},
        "template": pod_template(**template),
    }
    return _workload(
        "ReplicaSet", "apps/v1", f"{name}-{POD_TEMPLATE_HASH}", namespace, spec, {"replicas": 0}
    )


def statefulset(
    name: str = "web", namespace: str = "default", replicas: int = 1, **template: Any
) -> dict[str, Any]:
    template.setdefault("labels", {"app": name})
    spec = {
        "replicas": replicas,
        "selector": _selector(name),
        "template": pod_template(**template),
        "serviceName": name,
        "podManagementPolicy": "OrderedReady",
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
        "revisionHistoryLimit": 10,
        "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
    }
    return _workload(
        "StatefulSet", "apps/v1", name, namespace, spec, {"replicas": 0, "availableReplicas": 0}
    )


def daemonset(name: str = "web", namespace: str = "default", **template: Any) -> dict[str, Any]:
    template.setdefault("labels", {"app": name})
    spec = {
        "selector": _selector(name),
        "template": pod_template(**template),
        "updateStrategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0},
        },
        "revisionHistoryLimit": 10,
    }
    status = {
        "currentNumberScheduled": 0,
        "numberMisscheduled": 0,
        "desiredNumberScheduled": 0,
        "numberReady": 0,
    }
    return _workload("DaemonSet", "apps/v1", name, namespace, spec, status)


def _job_spec(template: dict[str, Any]) -> dict[str, Any]:
    template.setdefault("restart_policy", "Never")
    return {
        "parallelism": 1,
        "completions": 1,
        "backoffLimit": 6,
        "template": pod_template(**template),
        "completionMode": "NonIndexed",
        "suspend": False,
        "podReplacementPolicy": "TerminatingOrFailed",
    }


def job(name: str = "batch", namespace: str = "default", **template: Any) -> dict[str, Any]:
    """A Job on CREATE: its selector and controller-uid labels come later (PrepareForCreate)."""
    template.setdefault("labels", {"app": name})
    return _workload("Job", "batch/v1", name, namespace, _job_spec(template), {})


def cronjob(
    name: str = "nightly", namespace: str = "default", schedule: str = "0 3 * * *", **template: Any
) -> dict[str, Any]:
    """A CronJob: the Pod spec is at ``spec.jobTemplate.spec.template.spec``."""
    template.setdefault("labels", {"app": name})
    spec = {
        "schedule": schedule,
        "concurrencyPolicy": "Allow",
        "suspend": False,
        "jobTemplate": {"metadata": {"creationTimestamp": None}, "spec": _job_spec(template)},
        "successfulJobsHistoryLimit": 3,
        "failedJobsHistoryLimit": 1,
    }
    return _workload("CronJob", "batch/v1", name, namespace, spec, {})


WORKLOADS: Mapping[str, tuple[str, str, str, Any]] = {
    # kind: (group, version, resource, builder)
    "Deployment": ("apps", "v1", "deployments", deployment),
    "StatefulSet": ("apps", "v1", "statefulsets", statefulset),
    "DaemonSet": ("apps", "v1", "daemonsets", daemonset),
    "ReplicaSet": ("apps", "v1", "replicasets", replicaset),
    "Job": ("batch", "v1", "jobs", job),
    "CronJob": ("batch", "v1", "cronjobs", cronjob),
}

# -- Reviews ---------------------------------------------------------------------------------


def _options(kind: str, *, dry_run: bool, field_manager: str | None) -> dict[str, Any]:
    options: dict[str, Any] = {"kind": kind, "apiVersion": "meta.k8s.io/v1"}
    if dry_run:
        options["dryRun"] = ["All"]
    if field_manager:
        options["fieldManager"] = field_manager
    return options


def create_options(*, dry_run: bool = False, field_manager: str | None = None) -> dict[str, Any]:
    return _options("CreateOptions", dry_run=dry_run, field_manager=field_manager)


def update_options(*, dry_run: bool = False, field_manager: str | None = None) -> dict[str, Any]:
    return _options("UpdateOptions", dry_run=dry_run, field_manager=field_manager)


def delete_options(*, dry_run: bool = False, propagation: str = "Background") -> dict[str, Any]:
    options = _options("DeleteOptions", dry_run=dry_run, field_manager=None)
    options["propagationPolicy"] = propagation
    return options


def admission_review(
    *,
    operation: str,
    kind: tuple[str, str, str],
    resource: tuple[str, str, str],
    obj: Any,
    old_object: Any = None,
    sub_resource: str = "",
    request_kind: tuple[str, str, str] | None = None,
    request_resource: tuple[str, str, str] | None = None,
    request_sub_resource: str | None = None,
    name: str = "",
    namespace: str = "",
    user: UserInfo = KUBECTL_ADMIN,
    dry_run: bool = False,
    options: Any = None,
) -> dict[str, Any]:
    """An AdmissionReview request in ``CreateV1AdmissionReview``'s field order.

    ``kind`` and ``resource`` are (group, version, kind/resource); the ``request*`` variants
    default to the same (they differ only after a ``matchPolicy: Equivalent`` conversion).
    """
    request_kind = request_kind or kind
    request_resource = request_resource or resource
    request_sub_resource = sub_resource if request_sub_resource is None else request_sub_resource
    request: dict[str, Any] = {
        "uid": str(uuid.uuid4()),
        "kind": _gvk(kind),
        "resource": _gvr(resource),
    }
    if sub_resource:
        request["subResource"] = sub_resource
    request["requestKind"] = _gvk(request_kind)
    request["requestResource"] = _gvr(request_resource)
    if request_sub_resource:
        request["requestSubResource"] = request_sub_resource
    if name:
        request["name"] = name
    if namespace:
        request["namespace"] = namespace
    request["operation"] = operation
    request["userInfo"] = user.to_json()
    request["object"] = obj
    request["oldObject"] = old_object
    request["dryRun"] = dry_run
    request["options"] = options
    return {"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": request}


def _gvk(value: tuple[str, str, str]) -> dict[str, str]:
    return {"group": value[0], "version": value[1], "kind": value[2]}


def _gvr(value: tuple[str, str, str]) -> dict[str, str]:
    return {"group": value[0], "version": value[1], "resource": value[2]}


POD_KIND = ("", "v1", "Pod")
PODS = ("", "v1", "pods")


def wasm_pod_settings(
    *,
    runtime_class: str | None = WASM_RUNTIME_CLASS,
    annotations: Mapping[str, str] | None = CRUN_WASM_ANNOTATIONS,
) -> dict[str, Any]:
    """Keywords for the Pod builders selecting a Wasm runtime both ways gate serve knows."""
    return {"runtime_class": runtime_class, "annotations": annotations}


def pod_create(
    *,
    namespace: str = "default",
    by_replicaset: bool = True,
    name: str | None = None,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    user: UserInfo | None = None,
    dry_run: bool = False,
    **spec: Any,
) -> dict[str, Any]:
    """CREATE of a Pod; by default as the ReplicaSet controller makes one for Deployment ``web``:
    no name, ``generateName: web-7d9f8b6c4d-``, an ownerReference to the ReplicaSet and the
    ``pod-template-hash`` label. ``by_replicaset=False`` is a bare Pod named ``name``.
    ``spec`` keywords (image, containers, runtime_class, ...) go to :func:`pod_spec`.
    """
    if by_replicaset:
        rs_name = f"web-{POD_TEMPLATE_HASH}"
        obj = pod(
            generate_name=f"{rs_name}-",
            namespace=namespace,
            labels=labels or {"app": "web", "pod-template-hash": POD_TEMPLATE_HASH},
            annotations=annotations,
            owner=owner_reference("ReplicaSet", rs_name),
            **spec,
        )
        user = user or REPLICASET_CONTROLLER
        options = create_options(dry_run=dry_run)
    else:
        obj = pod(
            name=name or "hello",
            namespace=namespace,
            labels=labels or {"app": "hello"},
            annotations=annotations,
            **spec,
        )
        user = user or KUBECTL_ADMIN
        options = create_options(dry_run=dry_run, field_manager="kubectl-client-side-apply")
    return admission_review(
        operation="CREATE",
        kind=POD_KIND,
        resource=PODS,
        obj=obj,
        name=obj["metadata"].get("name", ""),
        namespace=namespace,
        user=user,
        dry_run=dry_run,
        options=options,
    )


def workload_create(
    kind: str, *, namespace: str = "default", dry_run: bool = False, **template: Any
) -> dict[str, Any]:
    """CREATE of a Deployment, StatefulSet, DaemonSet, ReplicaSet, Job or CronJob by kubectl.

    ``template`` keywords (image, containers, runtime_class, annotations, labels, name, ...) go
    to the workload builder and from there to its Pod template.
    """
    group, version, resource, build = WORKLOADS[kind]
    obj = build(namespace=namespace, **template)
    return admission_review(
        operation="CREATE",
        kind=(group, version, kind),
        resource=(group, version, resource),
        obj=obj,
        name=obj["metadata"]["name"],
        namespace=namespace,
        user=KUBECTL_ADMIN,
        dry_run=dry_run,
        options=create_options(dry_run=dry_run, field_manager="kubectl-client-side-apply"),
    )


def pod_update(
    *,
    namespace: str = "default",
    name: str = "hello",
    image: str = DEFAULT_IMAGE,
    old_image: str = "registry.example/acme/hello:v0",
    dry_run: bool = False,
    **spec: Any,
) -> dict[str, Any]:
    """UPDATE of a running Pod whose container image changes from ``old_image`` to ``image``."""
    old = pod(
        name=name, namespace=namespace, labels={"app": name}, existing=True, image=old_image, **spec
    )
    new = copy.deepcopy(old)
    for section in ("initContainers", "containers"):
        for item in new["spec"].get(section, []):
            if item["image"] == old_image:
                item["image"] = image
                item["imagePullPolicy"] = _pull_policy(image)
    return admission_review(
        operation="UPDATE",
        kind=POD_KIND,
        resource=PODS,
        obj=new,
        old_object=old,
        name=name,
        namespace=namespace,
        dry_run=dry_run,
        options=update_options(dry_run=dry_run, field_manager="kubectl-client-side-apply"),
    )


def pod_delete(
    *, namespace: str = "default", name: str = "hello", dry_run: bool = False, **spec: Any
) -> dict[str, Any]:
    """DELETE of a Pod: ``object`` null, ``oldObject`` the Pod, DeleteOptions."""
    old = pod(name=name, namespace=namespace, labels={"app": name}, existing=True, **spec)
    return admission_review(
        operation="DELETE",
        kind=POD_KIND,
        resource=PODS,
        obj=None,
        old_object=old,
        name=name,
        namespace=namespace,
        dry_run=dry_run,
        options=delete_options(dry_run=dry_run),
    )


def pod_exec(
    *,
    namespace: str = "default",
    name: str = "hello",
    container_name: str = "app",
    command: Sequence[str] = ("sh",),
) -> dict[str, Any]:
    """CONNECT ``pods/exec`` (``kubectl exec -it``): the object is a PodExecOptions."""
    exec_options = {
        "kind": "PodExecOptions",
        "apiVersion": "v1",
        "stdin": True,
        "stdout": True,
        "tty": True,
        "container": container_name,
        "command": list(command),
    }
    return admission_review(
        operation="CONNECT",
        kind=("", "v1", "PodExecOptions"),
        resource=PODS,
        sub_resource="exec",
        obj=exec_options,
        name=name,
        namespace=namespace,
        options=None,
    )


def pod_ephemeral_container(
    *,
    namespace: str = "default",
    name: str = "hello",
    debug_image: str = DEBUG_IMAGE,
    dry_run: bool = False,
    **spec: Any,
) -> dict[str, Any]:
    """UPDATE of the ``ephemeralcontainers`` subresource (``kubectl debug``): kind Pod, and the
    object is the whole Pod with one new ephemeral container."""
    old = pod(name=name, namespace=namespace, labels={"app": name}, existing=True, **spec)
    new = copy.deepcopy(old)
    debugger = ephemeral_container(f"debugger-{uuid.uuid4().hex[:5]}", debug_image)
    new["spec"].setdefault("ephemeralContainers", []).append(debugger)
    return admission_review(
        operation="UPDATE",
        kind=POD_KIND,
        resource=PODS,
        sub_resource="ephemeralcontainers",
        obj=new,
        old_object=old,
        name=name,
        namespace=namespace,
        dry_run=dry_run,
        options=update_options(dry_run=dry_run, field_manager="kubectl-debug"),
    )


def mirror_pod_create(
    *,
    namespace: str = "default",
    static_name: str = "hello",
    node: str = "node-1",
    annotations: Mapping[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """CREATE of a mirror Pod by the kubelet for a static Pod (``kubernetes.io/config.mirror``).

    Mirror Pods carry no service account volume, are owned by their Node and are already bound.
    """
    config_hash = uuid.uuid4().hex
    name = f"{static_name}-{node}"
    marks = {
        "kubernetes.io/config.hash": config_hash,
        "kubernetes.io/config.mirror": config_hash,
        "kubernetes.io/config.seen": "2026-11-26T10:00:00.000000000Z",
        "kubernetes.io/config.source": "file",
        **(annotations or {}),
    }
    obj = pod(
        name=name,
        namespace=namespace,
        labels={"app": static_name},
        annotations=marks,
        owner={
            "apiVersion": "v1",
            "kind": "Node",
            "name": node,
            "uid": str(uuid.uuid4()),
            "controller": True,
        },
        node_name=node,
        admitted=False,
        **spec,
    )
    return admission_review(
        operation="CREATE",
        kind=POD_KIND,
        resource=PODS,
        obj=obj,
        name=name,
        namespace=namespace,
        user=kubelet(node),
        options=create_options(),
    )


# -- Hostile reviews ---------------------------------------------------------------------------


def without_uid(review: Mapping[str, Any]) -> dict[str, Any]:
    """The review with ``request.uid`` removed."""
    hostile = copy.deepcopy(dict(review))
    del hostile["request"]["uid"]
    return hostile


def with_type_meta(
    review: Mapping[str, Any],
    *,
    api_version: str | None = "admission.k8s.io/v1beta1",
    kind: str | None = "AdmissionReview",
) -> dict[str, Any]:
    """The review with another ``apiVersion``/``kind`` (None removes the field)."""
    hostile = copy.deepcopy(dict(review))
    for key, value in (("apiVersion", api_version), ("kind", kind)):
        if value is None:
            hostile.pop(key, None)
        else:
            hostile[key] = value
    return hostile


def with_object(review: Mapping[str, Any], value: Any) -> dict[str, Any]:
    """The review with ``request.object`` replaced, e.g. by a list or a string."""
    hostile = copy.deepcopy(dict(review))
    hostile["request"]["object"] = value
    return hostile


def pod_with_containers(count: int = 10_000, **settings: Any) -> dict[str, Any]:
    """A CREATE of a Pod with ``count`` containers (no apiserver would accept it from a user,
    but a webhook must stay bounded when one arrives)."""
    return pod_create(containers=count, **settings)

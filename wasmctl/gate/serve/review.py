"""AdmissionReview `admission.k8s.io/v1`: the request the apiserver sends, read with bounds,
and the response it accepts (docs/admission.md; the contract: kubernetes/api
admission/v1/types.go, checked by the apiserver's `VerifyAdmissionResponse`).

A response must carry the request's `uid` and the same apiVersion and kind, or the call
counts as failed and the webhook's `failurePolicy` decides instead of us. A request we
cannot read (not JSON, no uid, another kind) therefore gets an HTTP error: there is no uid
to answer, and the apiserver treats it exactly as a failed call.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wasmctl.errors import InputError

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"

# The apiserver refuses request bodies over 3 MiB (apiserver `MaxRequestBodyBytes`), and an
# object it stores is smaller still (etcd's 1.5 MiB): a bigger body is no review of a
# real object.
MAX_BODY_BYTES = 3 << 20

# Where each kind keeps its pod spec (the gate's manifest reader knows the same kinds).
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
CONTAINER_FIELDS = ("initContainers", "containers", "ephemeralContainers")
# Subresources that change what runs: none but the pod itself and its ephemeral containers
JUDGED_SUBRESOURCES = ("", "ephemeralcontainers")
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"


class ReviewError(InputError):
    """A request that is not an AdmissionReview we can answer."""


@dataclass(frozen=True)
class Review:
    """The fields of an AdmissionRequest the gate reads (never the whole object again)."""

    uid: str
    kind: str
    group: str
    namespace: str
    name: str
    operation: str
    sub_resource: str
    dry_run: bool
    object: Mapping[str, Any] | None

    @property
    def judged(self) -> bool:
        """Whether this request can change what runs: a create or update of a workload's
        pod spec (or of a Pod's ephemeral containers)."""
        return (
            self.operation in ("CREATE", "UPDATE")
            and self.kind in POD_SPEC_PATHS
            and self.group in ("", "apps", "batch")
            and self.sub_resource in JUDGED_SUBRESOURCES
        )

    @property
    def mirror(self) -> bool:
        """A static pod's mirror: the kubelet runs it whatever the apiserver says."""
        metadata = (self.object or {}).get("metadata")
        annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
        return isinstance(annotations, Mapping) and MIRROR_ANNOTATION in annotations

    def describe(self) -> str:
        """`Kind namespace/name` as kubectl users know it (a generated name ends in `*`)."""
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"


def parse_review(body: bytes) -> Review:
    """The request of an AdmissionReview v1, or ReviewError saying why it is not one."""
    try:
        # json's own recursion guard refuses absurd nesting (RecursionError); nothing here
        # walks the object recursively afterwards, so the review is not walked again for
        # depth (`wasmctl._json` does that for documents that are): it is the hot path
        document = json.loads(body)
    except RecursionError:
        raise ReviewError("the AdmissionReview is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise ReviewError(f"the AdmissionReview is not JSON: {e}") from None
    if not isinstance(document, Mapping):
        raise ReviewError("the body is not an AdmissionReview object")
    if document.get("apiVersion") != API_VERSION or document.get("kind") != KIND:
        raise ReviewError(
            f"not an {KIND} {API_VERSION} (apiVersion {document.get('apiVersion')!r}, "
            f"kind {document.get('kind')!r})"
        )
    request = document.get("request")
    if not isinstance(request, Mapping):
        raise ReviewError("the AdmissionReview has no request")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid or len(uid) > 128:
        raise ReviewError("the AdmissionReview's request has no uid")
    kind = request.get("kind")
    kind = kind if isinstance(kind, Mapping) else {}
    obj = request.get("object")
    if obj is not None and not isinstance(obj, Mapping):
        raise ReviewError("the request's object is not a Kubernetes object")
    metadata = obj.get("metadata") if obj is not None else None
    metadata = metadata if isinstance(metadata, Mapping) else {}
    name = _string(request.get("name")) or _string(metadata.get("name"))
    if not name and _string(metadata.get("generateName")):
        name = _string(metadata.get("generateName")) + "*"
    return Review(
        uid=uid,
        kind=_string(kind.get("kind")),
        group=_string(kind.get("group")),
        namespace=_string(request.get("namespace")) or _string(metadata.get("namespace")),
        name=name,
        operation=_string(request.get("operation")),
        sub_resource=_string(request.get("subResource")),
        dry_run=request.get("dryRun") is True,
        object=obj,
    )


def _string(value: Any) -> str:
    return value[:253] if isinstance(value, str) else ""


@dataclass(frozen=True)
class ImageField:
    """A container's image in the object: where it is (a JSON pointer) and what it says."""

    pointer: str
    image: str


def image_fields(review: Review) -> Iterator[ImageField]:
    """Every container image of the review's object, with its JSON pointer."""
    spec: Any = review.object
    path = POD_SPEC_PATHS.get(review.kind, ())
    for key in path:
        spec = spec.get(key) if isinstance(spec, Mapping) else None
    if not isinstance(spec, Mapping):
        return
    base = "/" + "/".join(path)
    for name in CONTAINER_FIELDS:
        containers = spec.get(name)
        if not isinstance(containers, list):
            continue
        for index, container in enumerate(containers):
            image = container.get("image") if isinstance(container, Mapping) else None
            if isinstance(image, str) and image:
                yield ImageField(f"{base}/{name}/{index}/image", image)


@dataclass(frozen=True)
class Answer:
    """What to tell the apiserver."""

    allowed: bool
    message: str = ""
    code: int = 200
    reason: str = ""
    warnings: Sequence[str] = ()
    patch: Sequence[Mapping[str, Any]] = ()
    annotations: Mapping[str, str] = field(default_factory=dict)


def response(uid: str, answer: Answer) -> bytes:
    """The AdmissionReview answering request `uid`."""
    body: dict[str, Any] = {"uid": uid, "allowed": answer.allowed}
    if not answer.allowed:
        status: dict[str, Any] = {"code": answer.code, "message": answer.message}
        if answer.reason:
            status["reason"] = answer.reason
        body["status"] = status
    if answer.warnings:
        body["warnings"] = list(answer.warnings)
    if answer.patch:
        body["patchType"] = "JSONPatch"
        body["patch"] = base64.b64encode(
            json.dumps(list(answer.patch), separators=(",", ":")).encode()
        ).decode()
    if answer.annotations:
        body["auditAnnotations"] = dict(answer.annotations)
    review = {"apiVersion": API_VERSION, "kind": KIND, "response": body}
    return json.dumps(review, separators=(",", ":")).encode()

"""Call an admission webhook the way kube-apiserver does, and judge its answers the same way.

There is no kube-apiserver on the test machines (admission.md §3), so this module stands in for
its webhook client and dispatchers. Behaviour follows kubernetes/apiserver 24a394e5 and
client-go 32ce75a7 (read, not copied):

- **Transport** (util/webhook/client.go, client-go rest): HTTPS only, verified against the
  webhook's ``caBundle`` alone and the service name ``<svc>.<ns>.svc`` (a ``url`` config verifies
  its own host), SAN required (no Common Name fallback, as in Go since 1.15), ALPN ``http/1.1``
  for services, TLS >= 1.2, a 10 s TLS handshake limit. HTTP/1.1 keep-alive with a pool of
  idle connections reused most-recent-first (up to 25, as client-go's transport keeps).
- **Request** (validating/dispatcher.go ``callHook``, mutating/dispatcher.go): ``POST
  <path>?timeout=<N>s`` where N is the time left before the call's deadline rounded up to whole
  seconds; ``Content-Type: application/json``, ``Accept: application/json, */*``,
  ``User-Agent: kube-apiserver-admission``, ``Accept-Encoding: gzip`` (Go's transport adds it and
  undoes gzip itself); a body encoded as Go's ``json.Encoder`` does. The deadline is
  ``timeoutSeconds`` (or less, when the whole request has less left) and covers dialling, TLS,
  writing and reading; when it passes the call fails with ``context deadline exceeded``.
- **Response** (request/admissionreview.go ``VerifyAdmissionResponse``, client-go
  ``transformResponse``): HTTP 200-206 is success (client-go's range), anything else is a call
  failure; the body must decode as an AdmissionReview; then response present, ``uid`` echoed,
  ``apiVersion: admission.k8s.io/v1`` and ``kind: AdmissionReview``; a validating webhook may not
  return ``patch``/``patchType``; a mutating one returns both or neither.
- **Outcomes**: see :class:`CallOutcome`. A denial becomes ``ToStatusErr`` (code forced >= 400,
  message prefixed). A *call failure* (``ErrCallingWebhook``) is decided by ``failurePolicy``:
  ``Fail`` gives ``500 Internal error occurred: failed calling webhook ...``, ``Ignore`` fails open
  with a ``failed-open...`` audit annotation. Some errors are *not* call failures and reject
  whatever the policy: a JSON patch that decodes but does not apply, a patch on a DELETE, and a
  dry run sent to a webhook whose ``sideEffects`` is neither ``None`` nor ``NoneOnDryRun``.
- **Dispatch** (:meth:`AsyncApiserver.admit`): mutating webhooks in series, each seeing the
  object as patched so far, with one reinvocation round for ``IfNeeded`` webhooks when a later
  webhook changed the object (mutating/reinvocationcontext.go); then validating webhooks
  concurrently, the first error to arrive wins. Warnings are deduplicated and truncated as the
  apiserver's warning recorder does (endpoints/filters/warning.go); audit annotations from a
  webhook are keyed ``<webhook name>/<key>`` and dropped when that is not a qualified name.

Usage, against a server on 127.0.0.1:PORT whose certificate a CA with PEM ``CA_PEM`` issued
for ``wasmctl-gate.wasmctl-system.svc``::

    hook = Webhook("verify.gate.wasmctl.io", "/validate", timeout_seconds=5)
    with Apiserver(WebhookEndpoint.service(PORT, CA_PEM)) as api:
        decision = api.admit(reviews.pod_create(**reviews.wasm_pod_settings()), validating=[hook])
        assert decision.allowed, decision.status
        result = api.call(hook, reviews.pod_with_containers(10_000))  # one raw call

For load, ``api.run(coroutine_function)`` awaits ``coroutine_function(api.aio)`` on the
harness's loop, where concurrent ``api.aio.call(...)`` use separate keep-alive connections.

Not emulated: matchConditions, namespace/object selectors and rules (every webhook given is
called), conversion between API versions, defaulting and typed decoding of the patched object
(fields a typed decode would drop still count as changes here), in-tree admission plugins,
redirects (Go would follow them; here a 3xx is a failure), decoding YAML or protobuf bodies.
Inner error texts that come from Go's libraries (JSON decoding, TLS verification, dialling) are
approximations; the frames around them (``failed calling webhook "<name>": failed to call
webhook: ...``), status codes, reasons and annotation keys are the apiserver's.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import datetime
import enum
import gzip
import json
import math
import re
import select
import ssl
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import h11
import jsonpatch
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

T = TypeVar("T")

SERVICE_NAME = "wasmctl-gate"
SERVICE_NAMESPACE = "wasmctl-system"
SERVICE_DNS = f"{SERVICE_NAME}.{SERVICE_NAMESPACE}.svc"
"""The name a ``service`` clientConfig makes the apiserver verify: ``<svc>.<ns>.svc``."""

ADMISSION_API_VERSION = "admission.k8s.io/v1"
USER_AGENT = "kube-apiserver-admission"
PATCH_TYPE_JSON_PATCH = "JSONPatch"

VALIDATING_FAILED_OPEN_PREFIX = "failed-open.validating.webhook.admission.k8s.io/"
MUTATION_ANNOTATION_PREFIX = "mutation.webhook.admission.k8s.io/"
MUTATION_FAILED_OPEN_PREFIX = "failed-open." + MUTATION_ANNOTATION_PREFIX
PATCH_ANNOTATION_PREFIX = "patch.webhook.admission.k8s.io/"

MAX_IDLE_CONNECTIONS = 25  # client-go transport's MaxIdleConnsPerHost
IDLE_CONNECTION_TIMEOUT = 90.0  # client-go transport's IdleConnTimeout
TLS_HANDSHAKE_TIMEOUT = 10.0  # client-go transport's TLSHandshakeTimeout
MAX_RESPONSE_HEADER_BYTES = 1 << 20
MAX_RESPONSE_BODY_BYTES = 64 << 20  # a harness guard; the apiserver reads any size
_WARNINGS_TOTAL_RUNES = 4 * 1024
_WARNING_ITEM_RUNES = 256

# -- Configuration ---------------------------------------------------------------------


class FailurePolicy(enum.StrEnum):
    FAIL = "Fail"
    IGNORE = "Ignore"


class SideEffects(enum.StrEnum):
    """``sideEffects``. v1 configurations accept only None and NoneOnDryRun; Some and Unknown
    survive from v1beta1 and make every dry-run request fail without a call."""

    NONE = "None"
    NONE_ON_DRY_RUN = "NoneOnDryRun"
    SOME = "Some"
    UNKNOWN = "Unknown"


class ReinvocationPolicy(enum.StrEnum):
    NEVER = "Never"
    IF_NEEDED = "IfNeeded"


_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_QUALIFIED_NAME_PART = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")


@dataclass(frozen=True)
class Webhook:
    """One webhook of a Validating/MutatingWebhookConfiguration, as far as calling it goes.

    ``name`` must be fully qualified (three or more DNS labels), as the apiserver's validation
    of webhook configurations requires; ``path`` is the service path or the URL's path.
    """

    name: str
    path: str = "/"
    mutating: bool = False
    timeout_seconds: int = 10
    failure_policy: FailurePolicy = FailurePolicy.FAIL
    side_effects: SideEffects = SideEffects.NONE
    reinvocation_policy: ReinvocationPolicy = ReinvocationPolicy.NEVER
    configuration: str = SERVICE_NAME

    def __post_init__(self) -> None:
        if (
            len(self.name) > 253
            or not _DNS1123_SUBDOMAIN.fullmatch(self.name)
            or self.name.count(".") < 2
        ):
            raise ValueError(
                f"webhook name {self.name!r}: should be a domain with at least three segments "
                "separated by dots"
            )
        if not self.path.startswith("/") or "?" in self.path or "#" in self.path:
            raise ValueError(f"webhook path {self.path!r} must start with '/' and have no query")
        if not 1 <= self.timeout_seconds <= 30:
            raise ValueError(f"timeoutSeconds {self.timeout_seconds}: must be between 1 and 30")
        if not self.mutating and self.reinvocation_policy is not ReinvocationPolicy.NEVER:
            raise ValueError("reinvocationPolicy applies to mutating webhooks only")

    @property
    def kind(self) -> str:
        return "mutating" if self.mutating else "validating"


# -- Certificates ----------------------------------------------------------------------


@dataclass(frozen=True)
class ServingCert:
    """A webhook's serving certificate chain and key, PEM."""

    cert_chain_pem: bytes
    private_key_pem: bytes

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        with tempfile.TemporaryDirectory(prefix="wasmctl-webhook-cert-") as directory:
            cert_file, key_file = self.write(Path(directory))
            context.load_cert_chain(cert_file, key_file)
        context.set_alpn_protocols(["http/1.1"])
        return context

    def write(self, directory: Path) -> tuple[Path, Path]:
        """Write ``tls.crt`` and ``tls.key`` into ``directory`` (for a server's flags)."""
        directory.mkdir(parents=True, exist_ok=True)
        cert_file, key_file = directory / "tls.crt", directory / "tls.key"
        cert_file.write_bytes(self.cert_chain_pem)
        key_file.write_bytes(self.private_key_pem)
        key_file.chmod(0o600)
        return cert_file, key_file


class WebhookCA:
    """A private CA whose PEM certificate is the webhook configuration's ``caBundle``."""

    def __init__(self) -> None:
        self._ca = trustme.CA(organization_name="wasmctl admission tests")

    @property
    def ca_bundle(self) -> bytes:
        return self._ca.cert_pem.bytes()

    def issue(self, *identities: str) -> ServingCert:
        """A certificate with these SANs (default: the service name and 127.0.0.1)."""
        leaf = self._ca.issue_cert(*(identities or (SERVICE_DNS, "127.0.0.1")))
        chain = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
        return ServingCert(chain, leaf.private_key_pem.bytes())

    def issue_common_name_only(self, common_name: str = SERVICE_DNS) -> ServingCert:
        """A certificate naming the service only in its subject CN, with no SAN at all.

        Go (and so the apiserver) has refused these since 1.15: "x509: certificate relies on
        legacy Common Name field, use SANs instead" (IBM/portieris#196).
        """
        ca_key = serialization.load_pem_private_key(self._ca.private_key_pem.bytes(), None)
        ca_cert = x509.load_pem_x509_certificate(self._ca.cert_pem.bytes())
        if not isinstance(ca_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise TypeError(f"unexpected CA key type {type(ca_key).__name__}")
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return ServingCert(cert.public_bytes(serialization.Encoding.PEM), key_pem)


# -- Where the webhook is ------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookEndpoint:
    """A ``clientConfig``: what the harness dials, and what the apiserver would verify and show.

    The harness always dials ``host:port`` on loopback; ``server_name`` is verified against the
    certificate (and sent as SNI unless it is an IP address), ``url_host`` appears in URLs,
    error messages and the ``Host`` header.
    """

    port: int
    ca_bundle: bytes
    host: str = "127.0.0.1"
    server_name: str = SERVICE_DNS
    url_host: str = f"{SERVICE_DNS}:443"
    alpn: bool = True

    @classmethod
    def service(
        cls,
        port: int,
        ca_bundle: bytes,
        *,
        name: str = SERVICE_NAME,
        namespace: str = SERVICE_NAMESPACE,
        service_port: int = 443,
    ) -> Self:
        """``clientConfig.service``: the apiserver verifies ``<name>.<namespace>.svc``."""
        server_name = f"{name}.{namespace}.svc"
        return cls(
            port, ca_bundle, server_name=server_name, url_host=f"{server_name}:{service_port}"
        )

    @classmethod
    def url(cls, port: int, ca_bundle: bytes, *, host: str = "127.0.0.1") -> Self:
        """``clientConfig.url: https://<host>:<port>/...``: the host itself is verified.

        For a loopback host the apiserver offers no ALPN (util/webhook/client.go isLocalHost).
        """
        return cls(port, ca_bundle, server_name=host, url_host=f"{host}:{port}", alpn=False)

    def client_context(self) -> ssl.SSLContext:
        """TLS as the apiserver's webhook client sets it up."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies chain and host name
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        # Only the caBundle is trusted when one is given (client-go CAData), and Go matches
        # host names against SANs only.
        context.load_verify_locations(cadata=self.ca_bundle.decode("ascii"))
        context.hostname_checks_common_name = False
        if self.alpn:
            context.set_alpn_protocols(["http/1.1"])
        return context


# -- Wire format ---------------------------------------------------------------------------


def encode_go_json(value: Any) -> bytes:
    """JSON as Go's ``json.Encoder`` writes it (the apiserver's serializer uses one).

    Compact, HTML-significant characters and U+2028/U+2029 escaped, and a trailing newline.
    Those characters can only occur inside strings, so escaping them in the output is safe.
    """
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for raw, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(raw, escaped)
    return text.encode("utf-8") + b"\n"


def go_duration(seconds: int) -> str:
    """``time.Duration.String()`` for whole seconds: ``10s``, ``1m30s``."""
    minutes, rest = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes}m{rest}s"
    if minutes:
        return f"{minutes}m{rest}s"
    return f"{rest}s"


def timeout_query_seconds(remaining: float) -> int:
    """The ``?timeout=`` value for a deadline ``remaining`` seconds away: rounded up."""
    return math.ceil(remaining) if remaining > 0 else 0


@dataclass(frozen=True)
class ApiStatus:
    """The ``metav1.Status`` the user of the API would receive."""

    code: int
    message: str
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
        }
        if self.reason:
            status["reason"] = self.reason
        status["code"] = self.code
        return status


def internal_error(message: str) -> ApiStatus:
    """apierrors.NewInternalError."""
    return ApiStatus(500, f"Internal error occurred: {message}", "InternalError")


def denial_status(webhook_name: str, result: Mapping[str, Any] | None) -> ApiStatus:
    """errors/statuserror.go ``ToStatusErr``: how a webhook's denial reaches the user."""
    denied_by = f"admission webhook {webhook_name!r}".replace("'", '"') + " denied the request"
    result = result or {}
    code = result.get("code") or 0
    code = max(code, 400)
    message = result.get("message") or ""
    reason = result.get("reason") or ""
    if message:
        text = f"{denied_by}: {message}"
    elif reason:
        text = f"{denied_by}: {reason}"
    else:
        text = f"{denied_by} without explanation"
    return ApiStatus(code, text, reason)


def _quoted(text: str) -> str:
    """Go's ``%q`` for the simple strings used here (names, patch types)."""
    return json.dumps(text, ensure_ascii=False)


def is_qualified_name(key: str) -> bool:
    """apimachinery ``IsQualifiedName``: ``[DNS subdomain/]name``, name <= 63 characters."""
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or len(prefix) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(prefix)):
        return False
    return 0 < len(name) <= 63 and bool(_QUALIFIED_NAME_PART.fullmatch(name))


def webhook_audit_annotation_key(webhook_name: str, key: str) -> str | None:
    """The key a webhook's audit annotation is stored under, or None when it is dropped.

    admission/attributes.go ``checkKeyFormat``: exactly one '/', and a qualified name, so a
    webhook key that itself contains '/' (``gate.wasmctl.io/verdict``) is dropped.
    """
    full = f"{webhook_name}/{key}"
    if full.count("/") != 1 or not is_qualified_name(full):
        return None
    return full


class WarningRecorder:
    """The apiserver's per-request warning recorder (endpoints/filters/warning.go).

    Empty and repeated texts are ignored; once the total passes 4096 characters every warning
    is cut to 256 and later ones stop being added when the total is reached again.
    """

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._ordered: list[str] = []
        self._written = 0
        self._truncating = False
        self.warnings: list[str] = []

    def add(self, text: str) -> None:
        if not text or (self._written >= _WARNINGS_TOTAL_RUNES and self._truncating):
            return
        if text in self._seen:
            return
        self._seen.add(text)
        self._ordered.append(text)
        if self._truncating and len(text) > _WARNING_ITEM_RUNES:
            text = text[:_WARNING_ITEM_RUNES]
        if not _valid_utf8(text):
            return
        if self._written + len(text) <= _WARNINGS_TOTAL_RUNES or self._truncating:
            self._written += len(text)
            self.warnings.append(text)
            return
        self._truncating = True
        self._written = 0
        self.warnings = []
        for item in self._ordered:
            cut = item[:_WARNING_ITEM_RUNES]
            if _valid_utf8(cut):
                self._written += len(cut)
                self.warnings.append(cut)


def _valid_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# -- Judging a response ---------------------------------------------------------------------


class CallOutcome(enum.StrEnum):
    """What one webhook call amounts to, before ``failurePolicy`` is applied."""

    ALLOWED = "allowed"
    """``allowed: true``; for a mutating webhook any patch has been applied."""
    DENIED = "denied"
    """``allowed: false``: ``ToStatusErr``, whatever the failure policy."""
    CALL_FAILED = "call-failed"
    """``ErrCallingWebhook``: transport error, timeout, non-2xx, a response that does not
    verify, an undecodable patch. ``failurePolicy`` decides."""
    REJECTED = "rejected"
    """Any other apiserver error, whatever the failure policy: a patch that decodes but does
    not apply, a patch on a DELETE, a dry run to a webhook with side effects."""


@dataclass(frozen=True)
class Interpretation:
    """What the apiserver makes of one HTTP answer (see :func:`interpret_response`)."""

    outcome: CallOutcome
    error: str | None = None
    """The Go error text: ``failed calling webhook "<name>": ...`` for a call failure."""
    status: ApiStatus | None = None
    """For DENIED and REJECTED: the status the user receives."""
    review: Any = None
    warnings: tuple[str, ...] = ()
    audit_annotations: Mapping[str, str] = field(default_factory=dict)
    """Kept webhook annotations, keyed ``<webhook name>/<key>``."""
    patch: list[Any] | None = None
    patched_object: Any = None
    changed: bool = False


class _ResponseError(Exception):
    """The response cannot be used; the message is the Go error's text."""

    def __init__(self, message: str, *, verify: bool = False) -> None:
        super().__init__(message)
        self.verify = verify


def _call_failed(webhook: Webhook, reason: str) -> Interpretation:
    return Interpretation(
        CallOutcome.CALL_FAILED, f"failed calling webhook {_quoted(webhook.name)}: {reason}"
    )


def interpret_response(
    webhook: Webhook,
    *,
    status: int,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    uid: str,
    obj: Any,
) -> Interpretation:
    """Judge one HTTP answer to the review with ``uid`` about ``obj``, as the apiserver does.

    Pure: usable on a handler's output without a network, or on a real server's answer.
    """
    content_type = _header(headers, "content-type")
    if not 200 <= status <= 206:
        return _call_failed(
            webhook, f"failed to call webhook: {_error_status_message(status, content_type, body)}"
        )
    if not body:
        return _call_failed(
            webhook,
            "failed to call webhook: 0-length response with status code: "
            f"{status} and content type: {content_type or 'application/json'}",
        )
    try:
        review = _decode_review(body)
        response = _verified_response(webhook, review, uid)
    except _ResponseError as error:
        frame = "received invalid webhook response" if error.verify else "failed to call webhook"
        return _call_failed(webhook, f"{frame}: {error}")

    warnings = tuple(response.get("warnings") or ())
    annotations: dict[str, str] = {}
    for key, value in (response.get("auditAnnotations") or {}).items():
        full = webhook_audit_annotation_key(webhook.name, key)
        if full is not None:
            annotations[full] = value
    kept = {"review": review, "warnings": warnings, "audit_annotations": annotations}

    if not response.get("allowed"):
        return Interpretation(
            CallOutcome.DENIED, status=denial_status(webhook.name, response.get("status")), **kept
        )
    patch_bytes: bytes = response.get("patch") or b""
    if not webhook.mutating or not patch_bytes:
        return Interpretation(CallOutcome.ALLOWED, patched_object=obj, **kept)

    try:
        operations = json.loads(patch_bytes.decode("utf-8", "replace"), parse_constant=_no_constant)
        if not isinstance(operations, list) or not all(
            isinstance(op, dict) or op is None for op in operations
        ):
            raise ValueError("json: cannot unmarshal into Go value of type jsonpatch.Patch")
    except ValueError as error:
        failed = _call_failed(webhook, f"received undecodable patch in webhook response: {error}")
        return replace(failed, **kept)
    if not operations:
        return Interpretation(CallOutcome.ALLOWED, patched_object=obj, patch=[], **kept)
    if obj is None:
        message = (
            f"admission webhook {_quoted(webhook.name)} attempted to modify the object, "
            "which is not supported for this operation"
        )
        return Interpretation(CallOutcome.REJECTED, status=internal_error(message), **kept)
    patch_type = response.get("patchType")
    if patch_type != PATCH_TYPE_JSON_PATCH:
        failed = _call_failed(webhook, f"unsupported patch type {_quoted(str(patch_type))}")
        return replace(failed, **kept)
    try:
        patched = jsonpatch.JsonPatch(operations).apply(obj, in_place=False)
    except Exception as error:  # jsonpatch raises several unrelated types for a bad patch
        return Interpretation(CallOutcome.REJECTED, status=internal_error(str(error)), **kept)
    return Interpretation(
        CallOutcome.ALLOWED,
        patch=operations,
        patched_object=patched,
        changed=patched != obj,
        **kept,
    )


def _header(headers: Sequence[tuple[str, str]], name: str) -> str:
    return next((value for key, value in headers if key.lower() == name), "")


def _no_constant(name: str) -> Any:
    raise ValueError(f"invalid character {name[0]!r} looking for beginning of value")


def _error_status_message(status: int, content_type: str, body: bytes) -> str:
    """client-go's error for a non-2xx answer: the body's Status, or a generic text."""
    try:
        document = json.loads(body.decode("utf-8", "replace"))
    except ValueError:
        document = None
    if (
        isinstance(document, dict)
        and document.get("kind") == "Status"
        and document.get("apiVersion", "v1") == "v1"
        and document.get("status") == "Failure"
    ):
        return str(document.get("message") or "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    server_message = "unknown"
    if not content_type or media_type.startswith("text/"):
        server_message = body[:2048].decode("utf-8", "replace").strip()
    generic = {
        400: "the server rejected our request for an unknown reason",
        401: "the server has asked for the client to provide credentials",
        403: server_message,
        404: "the server could not find the requested resource",
        405: "the server does not allow this method on the requested resource",
        409: "the server reported a conflict",
        415: server_message,
        422: "the server rejected our request due to an error in our request",
        429: "the server has received too many requests and has asked us to try again later",
        503: "the server is currently unable to handle the request",
        504: (
            "the server was unable to return a response in the time allotted, "
            "but may still be processing the request"
        ),
    }
    if status in generic:
        return generic[status]
    if status == 406:
        if server_message in ("", "unknown"):
            return "the server was unable to respond with a content type that the client supports"
        return server_message
    if status >= 500:
        return (
            f"an error on the server ({_quoted(server_message)}) has prevented the request "
            "from succeeding"
        )
    return f"the server responded with the status code {status} but did not return more information"


_RESPONSE_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "uid": (str,),
    "allowed": (bool,),
    "status": (dict,),
    "patch": (str,),
    "patchType": (str,),
    "auditAnnotations": (dict,),
    "warnings": (list,),
}


def _decode_review(body: bytes) -> dict[str, Any]:
    """Decode the body as the apiserver's typed decoder would, or raise its failure."""
    try:
        # Go's decoder replaces invalid UTF-8 rather than failing on it.
        document = json.loads(body.decode("utf-8", "replace"), parse_constant=_no_constant)
    except ValueError as error:
        raise _ResponseError(f"couldn't decode the response as JSON: {error}") from error
    if not isinstance(document, dict):
        raise _ResponseError(
            f"json: cannot unmarshal {_json_type(document)} into Go value of type "
            "v1.AdmissionReview"
        )
    api_version, kind = document.get("apiVersion"), document.get("kind")
    if api_version and kind and (api_version, kind) != (ADMISSION_API_VERSION, "AdmissionReview"):
        # The scheme knows no such kind (or no conversion to v1): decoding fails before the
        # response is looked at; but a Status decodes, and one of success leaves no response.
        if (api_version, kind) == ("v1", "Status"):
            if document.get("status") != "Success":
                raise _ResponseError(str(document.get("message") or ""))
            return {"apiVersion": "", "kind": ""}
        raise _ResponseError(
            f"no kind {_quoted(str(kind))} is registered for version {_quoted(str(api_version))} "
            "in the admission scheme"
        )
    if api_version and not kind:
        raise _ResponseError("Object 'Kind' is missing in the response")
    # Neither, or only a kind: the typed decode succeeds and VerifyAdmissionResponse's
    # apiVersion/kind check rejects it (after the response and uid checks).
    response = document.get("response")
    if response is None:
        return document
    if not isinstance(response, dict):
        raise _type_error("response", response, "v1.AdmissionResponse")
    for name, types in _RESPONSE_FIELD_TYPES.items():
        value = response.get(name)
        if value is not None and not isinstance(value, types):
            raise _type_error(f"response.{name}", value, types[0].__name__)
    status = response.get("status")
    if status is not None:
        code = status.get("code")
        if code is not None and (
            not isinstance(code, int) or isinstance(code, bool) or not -(2**31) <= code < 2**31
        ):
            raise _type_error("response.status.code", code, "int32")
        for name in ("message", "reason", "status"):
            if status.get(name) is not None and not isinstance(status[name], str):
                raise _type_error(f"response.status.{name}", status[name], "string")
    if response.get("auditAnnotations") is not None and not all(
        isinstance(value, str) for value in response["auditAnnotations"].values()
    ):
        raise _type_error("response.auditAnnotations", response["auditAnnotations"], "string")
    if response.get("warnings") is not None and not all(
        isinstance(value, str) for value in response["warnings"]
    ):
        raise _type_error("response.warnings", response["warnings"], "string")
    if response.get("patch") is not None:
        response = {**response, "patch": _decode_base64(response["patch"])}
    return {**document, "response": response}


def _decode_base64(text: str) -> bytes:
    """encoding/json's []byte: standard alphabet with padding; CR and LF are skipped."""
    stripped = text.replace("\r", "").replace("\n", "")
    try:
        return base64.b64decode(stripped, validate=True)
    except binascii.Error as error:
        alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
        position = next(
            (i for i, char in enumerate(stripped) if char not in alphabet), len(stripped)
        )
        raise _ResponseError(f"illegal base64 data at input byte {position}") from error


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _type_error(path: str, value: Any, go_type: str) -> _ResponseError:
    return _ResponseError(
        f"json: cannot unmarshal {_json_type(value)} into Go struct field "
        f"AdmissionReview.{path} of type {go_type}"
    )


def _verified_response(webhook: Webhook, review: Mapping[str, Any], uid: str) -> dict[str, Any]:
    """request/admissionreview.go ``VerifyAdmissionResponse`` for v1, in its order."""
    response = review.get("response")
    if response is None:
        raise _ResponseError("webhook response was absent", verify=True)
    if response.get("uid", "") != uid:
        raise _ResponseError(
            f"expected response.uid={_quoted(uid)}, got {_quoted(response.get('uid', ''))}",
            verify=True,
        )
    api_version, kind = review.get("apiVersion") or "", review.get("kind") or ""
    if (api_version, kind) != (ADMISSION_API_VERSION, "AdmissionReview"):
        group, _, version = api_version.rpartition("/")
        got = f"{group}/{version}, Kind={kind}"
        raise _ResponseError(
            f"expected webhook response of {ADMISSION_API_VERSION}, Kind=AdmissionReview, "
            f"got {got}",
            verify=True,
        )
    patch = response.get("patch") or b""
    patch_type = response.get("patchType")
    if webhook.mutating:
        if patch and patch_type is None:
            raise _ResponseError(
                "webhook returned response.patch but not response.patchType", verify=True
            )
        if not patch and patch_type is not None:
            raise _ResponseError(
                "webhook returned response.patchType but not response.patch", verify=True
            )
        if patch_type == "":
            raise _ResponseError('webhook returned invalid response.patchType of ""', verify=True)
    else:
        if patch:
            raise _ResponseError("validating webhook may not return response.patch", verify=True)
        if patch_type is not None:
            raise _ResponseError(
                "validating webhook may not return response.patchType", verify=True
            )
    return dict(response)


# -- Results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallResult:
    """One webhook call: what went over the wire and what the apiserver makes of it."""

    webhook: Webhook
    uid: str
    url: str
    """The URL as the apiserver names it in errors (``https://<svc>.<ns>.svc:443/p?timeout=Ns``)."""
    called: bool
    """False when the apiserver refused without calling (a dry run, webhook with side effects)."""
    http_status: int | None
    response_headers: tuple[tuple[str, str], ...]
    response_body: bytes | None
    elapsed: float
    """Seconds from the start of the call to its end, deadline included, on the harness's clock."""
    connection_reused: bool
    interpretation: Interpretation
    round: int = 0
    index: int = 0

    @property
    def outcome(self) -> CallOutcome:
        return self.interpretation.outcome

    @property
    def error(self) -> str | None:
        return self.interpretation.error

    @property
    def review(self) -> Any:
        return self.interpretation.review

    @property
    def warnings(self) -> tuple[str, ...]:
        return self.interpretation.warnings

    @property
    def audit_annotations(self) -> Mapping[str, str]:
        return self.interpretation.audit_annotations

    @property
    def patched_object(self) -> Any:
        return self.interpretation.patched_object

    @property
    def changed(self) -> bool:
        return self.interpretation.changed

    @property
    def failed_open(self) -> bool:
        return (
            self.outcome is CallOutcome.CALL_FAILED
            and self.webhook.failure_policy is FailurePolicy.IGNORE
        )

    @property
    def admitted(self) -> bool:
        """Whether this webhook alone lets the request through (failure policy applied)."""
        return self.outcome is CallOutcome.ALLOWED or self.failed_open

    @property
    def status(self) -> ApiStatus | None:
        """The status the user receives if this webhook alone decided; None when admitted."""
        if self.outcome is CallOutcome.CALL_FAILED:
            return None if self.failed_open else internal_error(self.error or "")
        return self.interpretation.status


@dataclass(frozen=True)
class AdmissionDecision:
    """The result of the whole webhook admission of one API request."""

    allowed: bool
    status: ApiStatus | None
    """The error the user receives (None when allowed)."""
    object: Any
    """The object after every mutating webhook's patch (as far as admission got)."""
    warnings: tuple[str, ...]
    """The ``Warning`` texts the client receives, in order."""
    audit_annotations: Mapping[str, str]
    calls: tuple[CallResult, ...]
    """Every call made, mutating ones in call order, validating ones in order of completion."""

    def calls_to(self, webhook_name: str) -> list[CallResult]:
        return [call for call in self.calls if call.webhook.name == webhook_name]


@dataclass(frozen=True)
class RawExchange:
    """What came back for bytes written straight to the webhook's TLS socket."""

    responses: tuple[tuple[int, tuple[tuple[str, str], ...], bytes], ...]
    """Every complete response read: (status, headers, body)."""
    closed: bool
    """The server closed the connection (EOF or reset) within the time bound."""
    timed_out: bool
    """The time bound passed while the harness was still writing or waiting."""
    write_error: str | None
    received: bytes
    """The raw bytes read (the first 1 MiB)."""

    @property
    def status(self) -> int | None:
        return self.responses[0][0] if self.responses else None


# -- Transport ------------------------------------------------------------------------------


class _TransportError(Exception):
    """A failure below HTTP semantics; the message is the Go error's text after the URL."""


class _NothingWritten(_TransportError):
    """The request could not be written at all (Go retries these on a fresh connection)."""


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.protocol = h11.Connection(
            h11.CLIENT, max_incomplete_event_size=MAX_RESPONSE_HEADER_BYTES
        )
        self.idle_since = time.monotonic()

    def reusable(self) -> bool:
        return (
            not self.writer.is_closing()
            and not self.reader.at_eof()
            and self.protocol.our_state is h11.IDLE
            and self.protocol.their_state is h11.IDLE
            and time.monotonic() - self.idle_since < IDLE_CONNECTION_TIMEOUT
        )

    def idle_and_quiet(self) -> bool:
        """Reusable, and nothing (a close_notify, a FIN, stray bytes) waits on the socket.

        Go's transport watches idle connections and drops one the server closed or wrote to;
        without this check a close that the event loop has not yet processed would surface as
        an EOF on the next call.
        """
        if not self.reusable() or self.reader._buffer:  # type: ignore[attr-defined]
            return False
        sock = self.writer.get_extra_info("socket")
        if sock is None:
            return False
        readable, _, _ = select.select([sock.fileno()], [], [], 0)
        return not readable

    def abort(self) -> None:
        self.writer.transport.abort()

    async def close(self) -> None:
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), 1.0)
        except (TimeoutError, OSError, ssl.SSLError):
            self.abort()

    async def exchange(
        self, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, tuple[tuple[str, str], ...], bytes]:
        data = self.protocol.send(h11.Request(method="POST", target=target, headers=headers))
        data += self.protocol.send(h11.Data(data=body)) or b""
        data += self.protocol.send(h11.EndOfMessage()) or b""
        try:
            self.writer.write(data)
            await self.writer.drain()
        except (ConnectionError, ssl.SSLError) as error:
            raise _NothingWritten(_describe_os_error(error, "write")) from error
        status, response_headers, chunks, size, received = 0, (), [], 0, 0
        while True:
            try:
                event = self.protocol.next_event()
            except h11.RemoteProtocolError as error:
                raise _TransportError(_describe_protocol_error(error, received)) from error
            if event is h11.NEED_DATA:
                try:
                    data = await self.reader.read(65536)
                except (ConnectionError, ssl.SSLError) as error:
                    text = (
                        _eof_text(received) if _is_eof(error) else _describe_os_error(error, "read")
                    )
                    raise _TransportError(text) from error
                received += len(data)
                self.protocol.receive_data(bytes(data))
            elif isinstance(event, h11.Response):
                status = event.status_code
                response_headers = tuple(
                    (name.decode("latin-1"), value.decode("latin-1"))
                    for name, value in event.headers
                )
            elif isinstance(event, h11.Data):
                size += len(event.data)
                if size > MAX_RESPONSE_BODY_BYTES:
                    raise _TransportError(
                        f"harness limit: response body over {MAX_RESPONSE_BODY_BYTES} bytes"
                    )
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise _TransportError(_eof_text(received))
            # InformationalResponse (1xx) is skipped, as Go's transport does.
        if self.protocol.our_state is h11.DONE and self.protocol.their_state is h11.DONE:
            self.protocol.start_next_cycle()
        self.idle_since = time.monotonic()
        payload = b"".join(chunks)
        if _header(response_headers, "content-encoding").lower() == "gzip":
            try:
                payload = gzip.decompress(payload)
            except (OSError, EOFError) as error:
                raise _TransportError(f"gzip: invalid header ({error})") from error
        return status, response_headers, payload


def _is_eof(error: BaseException) -> bool:
    return isinstance(error, ssl.SSLError) and "EOF" in str(error).upper()


def _eof_text(received: int) -> str:
    return "EOF" if received == 0 else "unexpected EOF"


def _describe_os_error(error: BaseException, op: str) -> str:
    if isinstance(error, ConnectionResetError):
        return f"{op}: connection reset by peer"
    if isinstance(error, BrokenPipeError):
        return f"{op}: broken pipe"
    return f"{op}: {error}"


def _describe_protocol_error(error: h11.RemoteProtocolError, received: int) -> str:
    text = str(error)
    if "peer unexpectedly closed" in text or "can't handle event type ConnectionClosed" in text:
        return _eof_text(received)
    if "without sending complete message body" in text:
        return "unexpected EOF"
    return f"net/http: HTTP/1.x transport connection broken: malformed HTTP response ({text})"


class _ConnectionPool:
    """Idle keep-alive connections to one endpoint, most recently used first (as Go's)."""

    def __init__(self, endpoint: WebhookEndpoint) -> None:
        self.endpoint = endpoint
        self._context = endpoint.client_context()
        self._idle: list[_Connection] = []
        self._busy: set[_Connection] = set()
        self._closing: set[asyncio.Task[None]] = set()
        self.opened = 0

    async def acquire(self) -> tuple[_Connection, bool]:
        while self._idle:
            connection = self._idle.pop()
            if connection.idle_and_quiet():
                self._busy.add(connection)
                return connection, True
            self._close_soon(connection)
        connection = await self.open()
        self._busy.add(connection)
        return connection, False

    async def open(self) -> _Connection:
        endpoint = self.endpoint
        try:
            reader, writer = await asyncio.open_connection(
                endpoint.host,
                endpoint.port,
                ssl=self._context,
                server_hostname=endpoint.server_name,
                ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT,
                ssl_shutdown_timeout=1.0,
            )
        except ssl.SSLCertVerificationError as error:
            raise _TransportError(
                f"tls: failed to verify certificate: {error.verify_message}"
            ) from error
        except ssl.SSLError as error:
            raise _TransportError(f"remote error: tls: {error.reason or error}") from error
        except ConnectionRefusedError as error:
            raise _TransportError(
                f"dial tcp {endpoint.host}:{endpoint.port}: connect: connection refused"
            ) from error
        except ConnectionAbortedError as error:  # asyncio's TLS handshake timeout
            raise _TransportError("net/http: TLS handshake timeout") from error
        except OSError as error:
            raise _TransportError(f"dial tcp {endpoint.host}:{endpoint.port}: {error}") from error
        self.opened += 1
        return _Connection(reader, writer)

    def release(self, connection: _Connection, *, healthy: bool) -> None:
        """Back to the idle list, or closed: aborted after a failure (as Go does on a
        cancelled request), closed politely when the server asked for it."""
        self._busy.discard(connection)
        if not healthy:
            connection.abort()
        elif connection.reusable() and len(self._idle) < MAX_IDLE_CONNECTIONS:
            self._idle.append(connection)
        else:
            self._close_soon(connection)

    def _close_soon(self, connection: _Connection) -> None:
        task = asyncio.get_running_loop().create_task(connection.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for connection in self._busy:
            connection.abort()
        self._busy.clear()
        await asyncio.gather(*(connection.close() for connection in idle), *self._closing)


# -- The apiserver --------------------------------------------------------------------------


@dataclass
class _Admission:
    """Per-request state of one admission: object, warnings, annotations, calls."""

    obj: Any
    deadline: float | None
    recorder: WarningRecorder = field(default_factory=WarningRecorder)
    annotations: dict[str, str] = field(default_factory=dict)
    calls: list[CallResult] = field(default_factory=list)

    def annotate(self, key: str, value: str) -> None:
        # attributes.go: a key may not be overwritten with a different value.
        self.annotations.setdefault(key, value)

    def record(self, call: CallResult) -> None:
        self.calls.append(call)
        for text in call.warnings:
            self.recorder.add(text)
        for key, value in call.audit_annotations.items():
            self.annotate(key, value)

    def decision(self, status: ApiStatus | None) -> AdmissionDecision:
        return AdmissionDecision(
            allowed=status is None,
            status=status,
            object=self.obj,
            warnings=tuple(self.recorder.warnings),
            audit_annotations=dict(self.annotations),
            calls=tuple(self.calls),
        )


def _parent_timed_out() -> ApiStatus:
    return ApiStatus(504, "Timeout: request did not complete within requested timeout", "Timeout")


class AsyncApiserver:
    """The apiserver's webhook client and dispatchers, for one webhook endpoint (async core).

    One instance keeps a pool of keep-alive connections; concurrent calls each get their own
    connection. Use ``async with AsyncApiserver(endpoint) as api:`` in any event loop.
    """

    def __init__(self, endpoint: WebhookEndpoint) -> None:
        self.endpoint = endpoint
        self._pool = _ConnectionPool(endpoint)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._pool.aclose()

    @property
    def connections_opened(self) -> int:
        """How many TLS connections the harness has opened so far."""
        return self._pool.opened

    def url(self, webhook: Webhook, timeout_seconds: int | None = None) -> str:
        query = f"?timeout={go_duration(timeout_seconds)}" if timeout_seconds else ""
        return f"https://{self.endpoint.url_host}{webhook.path}{query}"

    async def call(
        self, webhook: Webhook, review: Mapping[str, Any] | bytes, *, deadline: float | None = None
    ) -> CallResult:
        """Send ``review`` (a dict, or bytes sent verbatim) to ``webhook`` once.

        ``deadline`` (``loop.time()`` based) is the whole request's; the call's own deadline is
        ``timeoutSeconds`` from now or that, whichever comes first. The expected uid and the
        object a patch applies to are read from the review.
        """
        if isinstance(review, bytes):
            body = review
            try:
                parsed = json.loads(review)
            except ValueError:
                parsed = None
        else:
            body, parsed = encode_go_json(review), review
        request = parsed.get("request") if isinstance(parsed, Mapping) else None
        request = request if isinstance(request, Mapping) else {}
        uid = request.get("uid") if isinstance(request.get("uid"), str) else ""
        return await self._call(
            webhook,
            body,
            uid=uid,
            obj=request.get("object"),
            dry_run=request.get("dryRun") is True,
            deadline=deadline,
        )

    async def _call(
        self,
        webhook: Webhook,
        body: bytes,
        *,
        uid: str,
        obj: Any,
        dry_run: bool,
        deadline: float | None,
        round: int = 0,
        index: int = 0,
    ) -> CallResult:
        loop = asyncio.get_running_loop()
        started = loop.time()
        result = {"webhook": webhook, "uid": uid, "round": round, "index": index}
        if dry_run and webhook.side_effects not in (SideEffects.NONE, SideEffects.NONE_ON_DRY_RUN):
            message = f"admission webhook {_quoted(webhook.name)} does not support dry run"
            return CallResult(
                **result,
                url=self.url(webhook),
                called=False,
                http_status=None,
                response_headers=(),
                response_body=None,
                elapsed=0.0,
                connection_reused=False,
                interpretation=Interpretation(
                    CallOutcome.REJECTED, status=ApiStatus(400, message, "BadRequest")
                ),
            )
        call_deadline = started + webhook.timeout_seconds
        if deadline is not None:
            call_deadline = min(call_deadline, deadline)
        query_seconds = timeout_query_seconds(call_deadline - loop.time())
        url = self.url(webhook, query_seconds)
        target = url.split(self.endpoint.url_host, 1)[1]
        headers = [
            ("Host", self.endpoint.url_host),
            ("User-Agent", USER_AGENT),
            ("Content-Length", str(len(body))),
            ("Accept", "application/json, */*"),
            ("Content-Type", "application/json"),
            ("Accept-Encoding", "gzip"),
        ]
        status: int | None = None
        response_headers: tuple[tuple[str, str], ...] = ()
        response_body: bytes | None = None
        reused = False
        try:
            async with asyncio.timeout_at(call_deadline):
                status, response_headers, response_body, reused = await self._round_trip(
                    target, headers, body
                )
        except TimeoutError:
            interpretation = _call_failed(
                webhook, f'failed to call webhook: Post "{url}": context deadline exceeded'
            )
        except _TransportError as error:
            interpretation = _call_failed(webhook, f'failed to call webhook: Post "{url}": {error}')
        else:
            interpretation = interpret_response(
                webhook,
                status=status,
                headers=response_headers,
                body=response_body,
                uid=uid,
                obj=obj,
            )
        return CallResult(
            **result,
            url=url,
            called=True,
            http_status=status,
            response_headers=response_headers,
            response_body=response_body,
            elapsed=loop.time() - started,
            connection_reused=reused,
            interpretation=interpretation,
        )

    async def _round_trip(
        self, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, tuple[tuple[str, str], ...], bytes, bool]:
        for attempt in range(2):
            connection, reused = await self._pool.acquire()
            healthy = False
            try:
                status, response_headers, payload = await connection.exchange(target, headers, body)
                healthy = True
                return status, response_headers, payload, reused
            except _NothingWritten:
                # Go retries a request it could not write on a reused connection.
                if attempt or not reused:
                    raise
            finally:
                self._pool.release(connection, healthy=healthy)
        raise AssertionError("unreachable")

    async def admit(
        self,
        review: Mapping[str, Any],
        *,
        mutating: Sequence[Webhook] = (),
        validating: Sequence[Webhook] = (),
        request_timeout: float | None = None,
    ) -> AdmissionDecision:
        """Admit one API request through these webhooks, as the apiserver's dispatchers do.

        ``review`` is an AdmissionReview request (e.g. from ``tests.admission.reviews``); every
        call gets a fresh uid and the current object. ``request_timeout`` is the whole API
        request's remaining time (the webhooks' deadlines never pass it).
        """
        for hook in mutating:
            if not hook.mutating:
                raise ValueError(f"{hook.name} is a validating webhook")
        for hook in validating:
            if hook.mutating:
                raise ValueError(f"{hook.name} is a mutating webhook")
        loop = asyncio.get_running_loop()
        deadline = None if request_timeout is None else loop.time() + request_timeout
        request = review["request"]
        state = _Admission(obj=copy.deepcopy(request.get("object")), deadline=deadline)
        status = await self._mutate(review, mutating, state)
        if status is None:
            status = await self._validate(review, validating, state)
        return state.decision(status)

    def _review_for_call(self, review: Mapping[str, Any], obj: Any) -> tuple[bytes, str]:
        uid = str(uuid.uuid4())
        request = {**review["request"], "uid": uid, "object": obj}
        return encode_go_json({**review, "request": request}), uid

    async def _mutate(
        self, review: Mapping[str, Any], hooks: Sequence[Webhook], state: _Admission
    ) -> ApiStatus | None:
        dry_run = review["request"].get("dryRun") is True
        loop = asyncio.get_running_loop()
        # reinvocationcontext.go: IfNeeded webhooks called before a change are re-called once.
        previously_invoked: set[str] = set()
        reinvoke: set[str] = set()
        should_reinvoke = False
        for round_number in (0, 1):
            if round_number == 1 and not should_reinvoke:
                break
            for index, hook in enumerate(hooks):
                if round_number == 1 and hook.name not in reinvoke:
                    continue
                body, uid = self._review_for_call(review, state.obj)
                call = await self._call(
                    hook,
                    body,
                    uid=uid,
                    obj=state.obj,
                    dry_run=dry_run,
                    deadline=state.deadline,
                    round=round_number,
                    index=index,
                )
                state.record(call)
                if call.outcome is CallOutcome.ALLOWED and call.interpretation.patch:
                    state.obj = call.patched_object
                    state.annotate(
                        f"{PATCH_ANNOTATION_PREFIX}round_{round_number}_index_{index}",
                        _compact_json(
                            {
                                "configuration": hook.configuration,
                                "webhook": hook.name,
                                "patch": call.interpretation.patch,
                                "patchType": PATCH_TYPE_JSON_PATCH,
                            }
                        ),
                    )
                state.annotate(
                    f"{MUTATION_ANNOTATION_PREFIX}round_{round_number}_index_{index}",
                    _compact_json(
                        {
                            "configuration": hook.configuration,
                            "webhook": hook.name,
                            "mutated": call.changed,
                        }
                    ),
                )
                if call.changed:
                    reinvoke |= previously_invoked
                    previously_invoked = set()
                    should_reinvoke = True
                if hook.reinvocation_policy is ReinvocationPolicy.IF_NEEDED:
                    previously_invoked.add(hook.name)
                if call.outcome is CallOutcome.ALLOWED:
                    continue
                if call.failed_open:
                    state.annotate(
                        f"{MUTATION_FAILED_OPEN_PREFIX}round_{round_number}_index_{index}",
                        hook.name,
                    )
                    if state.deadline is not None and loop.time() >= state.deadline:
                        return _parent_timed_out()
                    continue
                return call.status
        return None

    async def _validate(
        self, review: Mapping[str, Any], hooks: Sequence[Webhook], state: _Admission
    ) -> ApiStatus | None:
        if not hooks:
            return None
        loop = asyncio.get_running_loop()
        if state.deadline is not None and loop.time() >= state.deadline:
            return _parent_timed_out()
        dry_run = review["request"].get("dryRun") is True
        errors: list[ApiStatus] = []

        async def one(index: int, hook: Webhook) -> None:
            body, uid = self._review_for_call(review, state.obj)
            call = await self._call(
                hook,
                body,
                uid=uid,
                obj=state.obj,
                dry_run=dry_run,
                deadline=state.deadline,
                index=index,
            )
            state.record(call)
            if call.failed_open:
                state.annotate(f"{VALIDATING_FAILED_OPEN_PREFIX}round_0_index_{index}", hook.name)
            elif call.status is not None:
                errors.append(call.status)

        await asyncio.gather(*(one(index, hook) for index, hook in enumerate(hooks)))
        return errors[0] if errors else None

    async def send_raw(
        self,
        data: bytes | Iterable[bytes],
        *,
        wait: float = 5.0,
        until_closed: bool = False,
    ) -> RawExchange:
        """Write ``data`` (bytes, or chunks for a huge body) on a fresh TLS connection.

        Reads until one complete response arrived (every response until the server closes,
        with ``until_closed``), the server closed, or ``wait`` seconds passed in all. See
        :func:`http_request` for building well- and ill-formed requests.
        """
        chunks = [data] if isinstance(data, bytes) else data
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        received = bytearray()
        responses: list[tuple[int, tuple[tuple[str, str], ...], bytes]] = []
        write_error: str | None = None
        closed = timed_out = False
        try:
            async with asyncio.timeout_at(deadline):
                connection = await self._pool.open()
        except TimeoutError:
            return RawExchange((), False, True, None, b"")
        except _TransportError as error:
            return RawExchange((), True, False, str(error), b"")
        parser = _ResponseParser()
        try:
            async with asyncio.timeout_at(deadline):
                try:
                    for chunk in chunks:
                        connection.writer.write(chunk)
                        await connection.writer.drain()
                except (ConnectionError, ssl.SSLError) as error:
                    write_error = _describe_os_error(error, "write")
                while until_closed or not responses:
                    try:
                        piece = await connection.reader.read(65536)
                    except (ConnectionError, ssl.SSLError):
                        piece = b""
                    if not piece:
                        closed = True
                        responses.extend(parser.feed(b"", eof=True))
                        break
                    if len(received) < 1 << 20:
                        received += piece[: (1 << 20) - len(received)]
                    responses.extend(parser.feed(piece))
        except TimeoutError:
            timed_out = True
        finally:
            connection.abort()
        return RawExchange(tuple(responses), closed, timed_out, write_error, bytes(received))


def _compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


class _ResponseParser:
    """Responses out of a byte stream of unknown origin, via h11 (one parser per response)."""

    def __init__(self) -> None:
        self._pending = b""
        self._broken = False

    def feed(
        self, data: bytes, *, eof: bool = False
    ) -> list[tuple[int, tuple[tuple[str, str], ...], bytes]]:
        """Responses completed by ``data``; ``eof`` ends a body delimited by the close."""
        if self._broken:
            return []
        self._pending += data
        found: list[tuple[int, tuple[tuple[str, str], ...], bytes]] = []
        while self._pending:
            parser = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_RESPONSE_HEADER_BYTES)
            parser.send(h11.Request(method="POST", target="/", headers=[("Host", "raw")]))
            parser.send(h11.EndOfMessage())
            parser.receive_data(self._pending)
            if eof:
                parser.receive_data(b"")
            status, headers, body = 0, (), b""
            try:
                while True:
                    event = parser.next_event()
                    if event is h11.NEED_DATA:
                        return found  # wait for more bytes
                    if isinstance(event, h11.Response):
                        status = event.status_code
                        headers = tuple(
                            (k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers
                        )
                    elif isinstance(event, h11.Data):
                        body += bytes(event.data)
                    elif isinstance(event, h11.EndOfMessage):
                        break
            except h11.RemoteProtocolError:
                self._broken = True
                return found
            found.append((status, headers, body))
            self._pending = bytes(parser.trailing_data[0])
        return found


def http_request(
    path: str = "/",
    body: bytes = b"",
    *,
    host: str = f"{SERVICE_DNS}:443",
    content_length: int | None = None,
    headers: Sequence[tuple[str, str]] = (
        ("User-Agent", USER_AGENT),
        ("Content-Type", "application/json"),
        ("Accept", "application/json, */*"),
    ),
    method: str = "POST",
) -> bytes:
    """An HTTP/1.1 request as bytes, with a ``Content-Length`` that may lie.

    ``content_length`` defaults to ``len(body)``; pass a larger value for a truncated body, a
    smaller one for trailing garbage, or -1 to leave the header out.
    """
    length = len(body) if content_length is None else content_length
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers]
    if length >= 0:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


# -- A synchronous front for pytest ------------------------------------------------------------


class LoopThread:
    """An asyncio event loop running in a daemon thread, for synchronous callers."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        if self.loop.is_closed():
            return

        async def cancel_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(cancel_rest(), timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


class Apiserver:
    """:class:`AsyncApiserver` behind a synchronous interface, on its own event loop thread.

    ``with Apiserver(WebhookEndpoint.service(port, ca_bundle)) as api: api.admit(...)``.
    ``run()`` executes a coroutine function against the async core (for concurrent load).
    """

    def __init__(self, endpoint: WebhookEndpoint) -> None:
        self.endpoint = endpoint
        self._loop = LoopThread("admission-apiserver")
        self.aio = AsyncApiserver(endpoint)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if not self._loop.loop.is_closed():
            self._loop.run(self.aio.aclose(), timeout=10)
            self._loop.close()

    @property
    def connections_opened(self) -> int:
        return self.aio.connections_opened

    def call(self, webhook: Webhook, review: Mapping[str, Any] | bytes) -> CallResult:
        return self._loop.run(self.aio.call(webhook, review), timeout=webhook.timeout_seconds + 30)

    def admit(
        self,
        review: Mapping[str, Any],
        *,
        mutating: Sequence[Webhook] = (),
        validating: Sequence[Webhook] = (),
        request_timeout: float | None = None,
    ) -> AdmissionDecision:
        budget = (
            sum(h.timeout_seconds for h in mutating) * 2
            + 30
            + max((h.timeout_seconds for h in validating), default=0)
        )
        return self._loop.run(
            self.aio.admit(
                review, mutating=mutating, validating=validating, request_timeout=request_timeout
            ),
            timeout=budget,
        )

    def send_raw(
        self, data: bytes | Iterable[bytes], *, wait: float = 5.0, until_closed: bool = False
    ) -> RawExchange:
        return self._loop.run(
            self.aio.send_raw(data, wait=wait, until_closed=until_closed), timeout=wait + 30
        )

    def run(
        self,
        function: Callable[..., Awaitable[T]],
        *args: Any,
        timeout: float | None = 600,
    ) -> T:
        """``await function(self.aio, *args)`` on the harness's loop (e.g. a load benchmark)."""

        async def main() -> T:
            return await function(self.aio, *args)

        return self._loop.run(main(), timeout=timeout)

"""What `gate serve` answers: the gate's verdict on a workload's images, within the
apiserver's deadline, from a cache that can only hold what was decided.

- An image is judged by the engine (`wasmctl.gate.engine.Judge`), in a worker thread, so
  the event loop never waits on a registry. A tag is resolved to a digest first, and the
  verdict is cached under the digest, the policy's content and the trust material
  (`Loaded.fingerprint`): a tag moved, a key rotated or a policy edited is a new key.
- Only definitive verdicts are cached: a registry that could not be reached (an outage,
  any check with `remote` set) or a deadline that ran out decides nothing and is never
  remembered. Passes live `allow_ttl`, denials the shorter `deny_ttl`, tags `tag_ttl`.
- Requests that want the same digest while it is being verified wait for that one
  verification (`SingleFlight`); a request whose deadline comes first is answered by
  `--on-error`, and the verification goes on for the cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from wasmctl.errors import InputError, WasmctlError
from wasmctl.gate.engine import GateOptions, Judge
from wasmctl.gate.model import CheckResult, Status, TargetResult, Verdict
from wasmctl.gate.policy import GatePolicy
from wasmctl.gate.serve.cache import SingleFlight, TtlCache
from wasmctl.gate.serve.metrics import Metrics
from wasmctl.gate.serve.review import (
    Answer,
    Review,
    ReviewError,
    image_fields,
)
from wasmctl.gate.targets import Target
from wasmctl.oci.reference import Reference, RegistryReference
from wasmctl.oci.registry import TIMEOUT_ENV, RetryPolicy, TimeoutPolicy
from wasmctl.oci.source import RegistryOptions

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
ALWAYS_EXCLUDED = ("kube-system",)
MAX_IMAGES = 64  # distinct images in one object; a pod has a handful
MAX_MESSAGE = 1024  # a denial's one line, as kubectl shows it
MAX_WARNING = 240  # the apiserver may truncate warnings over 256 characters
MAX_REASON = 160  # one check's reason in that line (the audit log keeps 300)
MAX_TRUST_FILE = 16 << 20
MAX_REMEMBERED_REFERENCES = 1024

_Key = tuple[str, str, str | None, bool, Any]


@dataclass(frozen=True)
class ServeOptions:
    """How the server judges (see `wasmctl gate serve --help`)."""

    policy: Path
    mode: str = "enforce"  # or "warn": admit, with warnings
    warn_namespaces: frozenset[str] = frozenset()
    exclude_namespaces: frozenset[str] = frozenset()
    on_error: str = "deny"  # or "allow"
    allow_ttl: float = 600.0
    deny_ttl: float = 60.0
    tag_ttl: float = 30.0
    cache_size: int = 10_000
    jobs: int = 8
    plain_http: frozenset[str] = frozenset()
    ca_file: Path | None = None
    trusted_root: Path | None = None
    default_timeout: float = 10.0  # the apiserver's default `timeoutSeconds`
    margin: float = 1.0  # answered this long before the apiserver's deadline

    def budget(self, timeout: float | None) -> float:
        """Seconds to answer in, given the apiserver's `?timeout=`: its deadline less a
        margin (a quarter of short deadlines), for the answer to travel."""
        total = min(timeout if timeout and timeout > 0 else self.default_timeout, 30.0)
        return total - min(self.margin, total / 4)


# An admission deadline is seconds, not minutes: a registry that fails is retried briefly
# (a verification outlives the request that started it, so a later one still gets the
# verdict), and one that hangs is given up on sooner than a CLI run would.
SERVE_RETRY = RetryPolicy(attempts=3, deadline=8.0, base_delay=0.25, max_delay=2.0)
SERVE_REQUEST_TIMEOUT = 10.0
# The verdicts are the server's cache; its registry sessions only need to keep what one
# verification reads twice (the manifest it resolved, then opens), not every digest seen.
SERVE_SESSION_CACHE = 4 << 20
SERVE_CONNECT_TIMEOUT = 5.0


def serve_timeouts(environ: Mapping[str, str] | None = None) -> TimeoutPolicy:
    """The registry timeouts of a server: WASMCTL_REGISTRY_TIMEOUT when set, else
    `SERVE_REQUEST_TIMEOUT` (the CLI's 60 s would hold a worker long past any deadline)."""
    environ = os.environ if environ is None else environ
    policy = TimeoutPolicy.from_env(environ)
    if environ.get(TIMEOUT_ENV, "").strip():
        return policy
    return replace(policy, request=SERVE_REQUEST_TIMEOUT, connect=SERVE_CONNECT_TIMEOUT)


def own_namespace(environ: Mapping[str, str] | None = None) -> str | None:
    """The namespace the server runs in: POD_NAMESPACE (the downward API), else the
    service account's namespace file; None outside a cluster."""
    environ = os.environ if environ is None else environ
    if environ.get("POD_NAMESPACE"):
        return environ["POD_NAMESPACE"]
    with contextlib.suppress(OSError, UnicodeDecodeError):
        return SERVICE_ACCOUNT_NAMESPACE.read_text(encoding="utf-8").strip() or None
    return None


# -- the loaded policy -----------------------------------------------------------------------


def _stat(path: Path) -> tuple[int, int, int, int] | None:
    try:
        st = path.stat()  # through symlinks: a ConfigMap's files are swapped by symlink
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev)


@dataclass
class Loaded:
    """A policy read, with its trust material, and a judge to apply it."""

    policy: GatePolicy
    judge: Judge
    fingerprint: str
    watched: tuple[tuple[Path, tuple[int, int, int, int] | None], ...]
    users: int = 0
    retired: bool = False
    _references: dict[str, tuple[Reference | None, bool]] = field(default_factory=dict)

    def reference(self, image: str) -> tuple[Reference | None, bool]:
        """`image` parsed (None: not a reference), and whether the policy allows its
        registry; remembered, as the same images come again and again."""
        known = self._references.get(image)
        if known is not None:
            return known
        from wasmctl.oci.reference import parse_reference

        try:
            ref: Reference | None = parse_reference(image)
        except WasmctlError:
            ref = None
        allowed = not isinstance(ref, RegistryReference) or _allowed_registry(self.policy, ref)
        if len(self._references) >= MAX_REMEMBERED_REFERENCES:
            self._references.clear()
        self._references[image] = (ref, allowed)
        return ref, allowed

    def changed(self) -> bool:
        """Whether a file the decisions depend on looks different now."""
        return any(_stat(path) != seen for path, seen in self.watched)

    def release(self) -> None:
        self.users -= 1
        if self.retired and self.users == 0:
            self.judge.close()


def load(options: ServeOptions) -> Loaded:
    """The policy and everything it names, read now (raises what reading raises)."""
    from wasmctl._files import read_limited
    from wasmctl.errors import PolicyError
    from wasmctl.gate.policy import MAX_POLICY_BYTES, gate_policy_from_bytes, referenced_files

    before = _stat(options.policy)
    raw = read_limited(options.policy, MAX_POLICY_BYTES, "gate policy", PolicyError)
    policy = gate_policy_from_bytes(raw, options.policy)
    files = referenced_files(policy)
    if options.trusted_root is not None:
        files = (*files, options.trusted_root)
    stats = [(options.policy, before), *((f, _stat(f)) for f in files)]
    digest = hashlib.sha256(raw)
    for path in files:
        digest.update(b"\0" + os.fsencode(path) + b"\0")
        digest.update(read_limited(path, MAX_TRUST_FILE, "file the gate policy names"))
    registry = RegistryOptions(
        plain_http=options.plain_http,
        ca_file=options.ca_file,
        retry=SERVE_RETRY,
        timeouts=serve_timeouts(),
        cache_bytes=SERVE_SESSION_CACHE,
    )
    judge = Judge(policy, GateOptions(registry=registry, trusted_root=options.trusted_root))
    try:
        judge.prepare()
    except BaseException:
        judge.close()
        raise
    return Loaded(policy, judge, digest.hexdigest(), tuple(stats))


# -- decisions -------------------------------------------------------------------------------


@dataclass
class Judged:
    """One image of a request: its verdict, or why there is none."""

    target: Target
    result: TargetResult | None = None
    outage: str | None = None  # a registry failed: no verdict
    broken: str | None = None  # the verification failed (a bug): no verdict
    cached: bool = False
    stale: bool = False  # a denial past its time, taken during an outage

    @property
    def decided(self) -> bool:
        return self.result is not None and self.outage is None

    @property
    def denied(self) -> bool:
        """A definitive no: a check failed (a failure is never an outage's doing, even
        when another check met one), or an error with no outage behind it."""
        if self.result is None:
            return False
        if any(c.status is Status.FAIL for c in self.result.checks):
            return True
        return self.outage is None and _denies(self.result)


def _denies(result: TargetResult) -> bool:
    """A definitive no: a failed check, or an error that no retry will mend (a malformed
    reference, a missing image); a gate fails closed."""
    return result.verdict in (Verdict.DENY, Verdict.ERROR)


def _outage(result: TargetResult) -> str | None:
    """What failed to answer, when a registry did: the verdict is then no verdict."""
    for check in result.checks:
        if check.remote and check.status is Status.ERROR:
            return f"{check.check}: {check.message}"
    return None


@dataclass
class Decision:
    """A request's answer, and its line in the audit log."""

    answer: Answer
    verdict: str  # allow, deny, warn, error-allow, error-deny, skip
    record: dict[str, Any] = field(default_factory=dict)


class Admission:
    """The gate behind `/validate` and `/mutate`, on one event loop."""

    def __init__(
        self,
        options: ServeOptions,
        metrics: Metrics,
        namespace: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.options = options
        self.metrics = metrics
        self.clock = clock
        self.loaded: Loaded | None = None
        self.load_error: str | None = "the policy is not loaded yet"
        # the first load is under way (serve starts listening meanwhile): the watcher
        # leaves it alone, or a slow start would load the policy twice
        self.starting = False
        self.pool = ThreadPoolExecutor(options.jobs, thread_name_prefix="wasmctl-verify")
        self.verdicts: TtlCache[_Key, TargetResult] = TtlCache(options.cache_size, clock)
        self.tags: TtlCache[str, str] = TtlCache(options.cache_size, clock)
        self._verifying: SingleFlight[_Key, TargetResult] = SingleFlight()
        self._resolving: SingleFlight[str, str] = SingleFlight()
        self.excluded = frozenset(
            {*ALWAYS_EXCLUDED, *options.exclude_namespaces, *([namespace] if namespace else [])}
        )

    @property
    def ready(self) -> bool:
        return self.loaded is not None

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        if self.loaded is not None:
            self.loaded.retired = True
            if self.loaded.users == 0:
                self.loaded.judge.close()

    # -- the policy ------------------------------------------------------------------------

    def install(self, loaded: Loaded) -> None:
        """Judge by `loaded` from now on; what the old policy decided is forgotten."""
        old, self.loaded = self.loaded, loaded
        self.load_error = None
        self.verdicts.clear()
        if old is not None:
            old.retired = True
            if old.users == 0:
                old.judge.close()

    async def reload(self) -> bool:
        """Load the policy again if one of its files changed; True when it was replaced.
        A policy that no longer loads leaves the old one in force (and says so)."""
        if self.starting or (self.loaded is not None and not self.loaded.changed()):
            return False
        loop = asyncio.get_running_loop()
        try:
            loaded = await loop.run_in_executor(None, load, self.options)
        except WasmctlError as e:
            self.metrics.reloads.inc(what="policy", result="error")
            if self.loaded is None:
                self.load_error = e.message
            _log(f"policy not reloaded, the one in force stays: {e.message}")
            if self.loaded is not None:  # not again until the files change again
                self.loaded.watched = tuple((p, _stat(p)) for p, _ in self.loaded.watched)
            return False
        if self.loaded is not None and loaded.fingerprint == self.loaded.fingerprint:
            loaded.judge.close()
            self.loaded.watched = loaded.watched
            return False
        first = self.loaded is None
        self.install(loaded)
        self.metrics.reloads.inc(what="policy", result="ok")
        _log(
            f"policy {'loaded' if first else 'reloaded'}: {self.options.policy} "
            f"(sha256 {loaded.fingerprint[:16]}…)"
        )
        return True

    # -- requests --------------------------------------------------------------------------

    async def validate(self, review: Review, budget: float) -> Decision:
        started = self.clock()
        skip = self._skip(review)
        if skip is not None:
            return Decision(Answer(True), "skip", {"skipped": skip})
        loaded = self.loaded
        if loaded is None:
            return self.undecided(review, [], "not-ready", self.load_error or "not ready")
        try:
            targets = self._targets(review, loaded.policy)
        except ReviewError as e:
            return Decision(
                Answer(False, f"wasmctl gate: {review.describe()}: {e.message}", 400, "BadRequest"),
                "deny",
                {"error": e.message},
            )
        judged = await self._judge_all(loaded, targets, started + budget)
        return self._decide(review, judged)

    def _skip(self, review: Review) -> str | None:
        """Why the request is let through unjudged, if it is."""
        if review.operation in ("DELETE", "CONNECT"):
            return f"operation {review.operation}"
        if review.namespace in self.excluded:
            return f"namespace {review.namespace} is excluded"
        if not review.judged:
            what = review.kind + (f"/{review.sub_resource}" if review.sub_resource else "")
            return f"{what} {review.operation or 'request'} runs no new image"
        if review.object is None:
            return None  # judged below: a create without an object is refused
        if review.mirror:
            return "a mirror pod (the kubelet runs static pods whatever is answered)"
        return None

    def _targets(self, review: Review, policy: GatePolicy) -> list[Target]:
        from wasmctl.gate.targets import object_targets

        if review.object is None:
            raise ReviewError(f"a {review.operation} without an object")
        try:
            targets = object_targets(review.object, policy.runtime_classes, "request")
        except InputError as e:
            raise ReviewError(e.message) from None
        unique: dict[tuple[Any, ...], Target] = {}
        for target in targets:
            key = (
                target.reference,
                target.wasm_runtime,
                target.annotations,
                target.command,
                target.args,
            )
            unique.setdefault(key, target)
            if len(unique) > MAX_IMAGES:
                raise ReviewError(f"more than {MAX_IMAGES} distinct container images")
        return list(unique.values())

    async def _judge_all(
        self, loaded: Loaded, targets: Sequence[Target], deadline: float
    ) -> list[Judged]:
        """Every target's verdict, from the cache where it is there; the rest at once,
        for as long as the deadline allows (those still running are left undecided)."""
        judged = [Judged(t) for t in targets]
        pending: dict[asyncio.Future[None], Judged] = {}
        for item in judged:
            if not self._from_cache(loaded, item):
                pending[asyncio.ensure_future(self._judge(loaded, item))] = item
        if pending:
            await asyncio.wait(pending, timeout=max(0.0, deadline - self.clock()))
        return judged

    def _from_cache(self, loaded: Loaded, item: Judged) -> bool:
        """Judge `item` from the caches alone, if they know it."""
        ref, allowed = loaded.reference(item.target.reference)
        if ref is None:
            return False  # the engine reports it
        if not isinstance(ref, RegistryReference):
            item.result = _not_a_registry(item.target)
            return True
        if (item.target.wasm_runtime or item.target.annotations) and not allowed:
            # run as Wasm by its pod, from a registry the policy does not allow: denied
            # without contacting it (a pod cannot make the server talk to any host it names);
            # an image whose pod says nothing is read first, as `gate` does: if it is no
            # Wasm artifact, it is no concern of the gate's
            item.result = _forbidden(loaded.policy, item.target, ref)
            return True
        digest = ref.digest or self.tags.get(str(ref))
        if digest is None:
            return False
        found = self.verdicts.get(self._key(loaded, item.target, digest))
        if found is None:
            return False
        self.metrics.verdict_hits.inc()
        if not ref.digest:
            self.metrics.tag_hits.inc()
        item.result, item.cached = found, True
        return True

    async def _judge(self, loaded: Loaded, item: Judged) -> None:
        target = item.target
        ref, _ = loaded.reference(target.reference)
        digest = ref.digest if isinstance(ref, RegistryReference) else None
        if isinstance(ref, RegistryReference) and digest is None:
            try:
                digest = await self._resolve(loaded, ref)
            except WasmctlError as e:
                if _is_remote(e):
                    item.outage = f"resolve: {e.message}"
                    stale = self.tags.get(str(ref), stale=True)
                    if stale is not None:
                        self._stale_denial(loaded, item, stale)
                    return
                # not there, or not a manifest: the engine meets the same and says so
            except Exception as e:
                item.broken = f"{type(e).__name__}: {e}"
                return
            if digest is not None:
                target = replace(target, digest=digest)
        if digest is not None:
            key = self._key(loaded, item.target, digest)
            found = self.verdicts.get(key)
            if found is not None:
                self.metrics.verdict_hits.inc()
                item.result, item.cached = found, True
                return
        self.metrics.verdict_misses.inc()
        key = self._key(loaded, item.target, digest)
        if self._verifying.joined(key):
            self.metrics.coalesced.inc()
        try:
            result = await asyncio.shield(
                self._verifying.run(key, lambda: self._verify(loaded, target))
            )
        except Exception as e:
            item.broken = f"{type(e).__name__}: {e}"
            return
        item.result = result
        item.outage = _outage(result)
        if item.outage is not None and digest is not None:
            self._stale_denial(loaded, item, digest)

    def _stale_denial(self, loaded: Loaded, item: Judged, digest: str) -> None:
        """During an outage, a denial this policy made of this digest before, even expired:
        what was denied stays denied while nothing can be checked (an `--on-error allow`
        must not admit a known-bad image because its denial just ran out). A pass is never
        taken stale."""
        found = self.verdicts.get(self._key(loaded, item.target, digest), stale=True)
        if found is not None and _denies(found):
            item.result, item.outage, item.cached, item.stale = found, None, True, True

    async def _resolve(self, loaded: Loaded, ref: RegistryReference) -> str:
        name = str(ref)
        digest = self.tags.get(name)
        if digest is not None:
            self.metrics.tag_hits.inc()
            return digest
        self.metrics.tag_misses.inc()
        if self._resolving.joined(name):
            self.metrics.coalesced.inc()

        async def resolve() -> str:
            loop = asyncio.get_running_loop()
            loaded.users += 1
            try:
                found = await loop.run_in_executor(self.pool, loaded.judge.resolve, ref)
            except WasmctlError as e:
                if _is_remote(e):
                    self.metrics.registry_errors.inc()
                raise
            finally:
                loaded.release()
            self.tags.put(name, found, self.options.tag_ttl)
            return found

        return await asyncio.shield(self._resolving.run(name, resolve))

    async def _verify(self, loaded: Loaded, target: Target) -> TargetResult:
        """The engine's verdict on one target, cached when it is definitive."""
        loop = asyncio.get_running_loop()
        loaded.users += 1
        try:
            results = await loop.run_in_executor(self.pool, loaded.judge.judge, [target])
        except Exception as e:  # a bug in a verification must not take the server down
            _log(f"internal error judging {target.reference}: {type(e).__name__}: {e}")
            traceback.print_exception(e, file=sys.stderr)
            raise
        finally:
            loaded.release()
        result = results[0]
        outage = _outage(result)
        if outage is not None:
            self.metrics.registry_errors.inc()
            self.metrics.verifications.inc(outcome="outage")
            return result
        self.metrics.verifications.inc(outcome=result.verdict.value)
        if loaded is self.loaded:
            ttl = self.options.deny_ttl if _denies(result) else self.options.allow_ttl
            key = self._key(loaded, target, result.digest)
            self.verdicts.put(key, result, ttl)
            ref, _ = loaded.reference(target.reference)
            if result.digest and isinstance(ref, RegistryReference) and not ref.digest:
                self.tags.put(str(ref), result.digest, self.options.tag_ttl)
        return result

    def _key(self, loaded: Loaded, target: Target, digest: str | None) -> _Key:
        """A verdict's key: the policy and trust (their content), the image's digest, and
        everything else the verdict reads: the reference as written (the pin and registry
        checks, the policy's overrides) and how the pod runs it."""
        launch = (target.annotations, target.command, target.args)
        return (loaded.fingerprint, target.reference, digest, target.wasm_runtime, launch)

    # -- answers ---------------------------------------------------------------------------

    def _decide(self, review: Review, judged: Sequence[Judged]) -> Decision:
        record = _record(judged)
        denied = [j for j in judged if j.denied]
        undecided = [j for j in judged if not j.decided and not j.denied]
        warn = self._warns(review)
        if denied:
            reasons = [_reason(j) for j in denied]
            if warn:
                warnings = [_clip(f"wasmctl gate would deny {r}", MAX_WARNING) for r in reasons]
                return Decision(Answer(True, warnings=warnings), "warn", record)
            message = _clip(
                f"wasmctl gate denied {review.describe()}: " + "; ".join(reasons), MAX_MESSAGE
            )
            return Decision(Answer(False, message, 403, "Forbidden"), "deny", record)
        if undecided:
            outages = [j for j in undecided if j.outage is not None]
            if outages:
                why = "registry unreachable: " + "; ".join(
                    f"{j.target.reference}: {j.outage}" for j in outages
                )
                return self.undecided(review, judged, "outage", why, record)
            broken = [j for j in undecided if j.broken is not None]
            if broken:
                why = "internal error: " + "; ".join(
                    f"{j.target.reference}: {j.broken}" for j in broken
                )
                return self.undecided(review, judged, "internal", why, record)
            images = ", ".join(j.target.reference for j in undecided)
            return self.undecided(
                review, judged, "timeout", f"no verdict within the deadline for {images}", record
            )
        return Decision(Answer(True), "allow", record)

    def _warns(self, review: Review) -> bool:
        return self.options.mode == "warn" or review.namespace in self.options.warn_namespaces

    def undecided(
        self,
        review: Review,
        judged: Sequence[Judged],
        reason: str,
        why: str,
        record: dict[str, Any] | None = None,
    ) -> Decision:
        """The answer when the gate could not decide: `--on-error`, said as such (warn mode
        admits, as it admits every denial)."""
        self.metrics.on_error.inc(reason=reason)
        record = {**(record if record is not None else _record(judged)), "error": why}
        line = f"wasmctl gate could not decide on {review.describe()} ({reason}): {why}"
        if self.options.on_error == "allow" or self._warns(review):
            warning = _clip(f"admitted without a verdict: {why}", MAX_WARNING)
            return Decision(Answer(True, warnings=[warning]), "error-allow", record)
        return Decision(
            Answer(False, _clip(line, MAX_MESSAGE), 503, "ServiceUnavailable"),
            "error-deny",
            record,
        )

    # -- mutation --------------------------------------------------------------------------

    async def mutate(self, review: Review, budget: float) -> Decision:
        """Tags pinned to the digests they name now (`image: app:v1@sha256:…`), one JSONPatch
        `replace` per image field that has no digest yet; nothing else is touched, so a
        second call on the patched object patches nothing. Never a denial: what could not
        be resolved stays as it was, with a warning, for the validating webhook to judge."""
        started = self.clock()
        skip = self._skip(review)
        loaded = self.loaded
        if skip is not None or review.object is None:
            return Decision(Answer(True), "skip", {"skipped": skip or "no object"})
        if loaded is None:
            warning = f"images left unpinned: {self.load_error or 'not ready'}"
            self.metrics.on_error.inc(reason="not-ready")
            return Decision(Answer(True, warnings=[warning]), "error-allow", {})
        wanted: dict[str, RegistryReference] = {}
        fields = list(image_fields(review))
        for item in fields:
            ref, allowed = loaded.reference(item.image)
            if isinstance(ref, RegistryReference) and not ref.digest and allowed:
                wanted[item.image] = ref
            if len(wanted) > MAX_IMAGES:
                return Decision(Answer(True, warnings=["too many images to pin"]), "skip", {})
        tasks = {
            image: asyncio.ensure_future(self._resolve(loaded, ref))
            for image, ref in wanted.items()
        }
        if tasks:
            await asyncio.wait(tasks.values(), timeout=max(0.0, started + budget - self.clock()))
        pinned: dict[str, str] = {}
        warnings = []
        for image, task in tasks.items():
            if task.done() and not task.cancelled() and task.exception() is None:
                pinned[image] = f"{image}@{task.result()}"
            else:
                why = "no answer in time"
                if task.done() and not task.cancelled():
                    error = task.exception()
                    why = error.message if isinstance(error, WasmctlError) else str(error)
                else:
                    task.add_done_callback(_consume)
                warnings.append(_clip(f"wasmctl left {image} unpinned: {why}", MAX_WARNING))
        patch = [
            {"op": "replace", "path": f.pointer, "value": pinned[f.image]}
            for f in fields
            if f.image in pinned
        ]
        record = {
            "images": list(dict.fromkeys(f.image for f in fields)),
            "pinned": pinned,
        }
        verdict = "allow" if not warnings else "error-allow"
        return Decision(Answer(True, warnings=warnings, patch=patch), verdict, record)


def _consume(task: asyncio.Future[Any]) -> None:
    """Retrieve a late task's exception (nobody waits for it any more)."""
    if not task.cancelled():
        task.exception()


def _is_remote(error: BaseException) -> bool:
    from wasmctl.errors import RemoteError

    return isinstance(error, RemoteError)


def _allowed_registry(policy: GatePolicy, ref: RegistryReference) -> bool:
    from wasmctl.gate.checks import registry

    rules, _ = policy.rules_for(str(ref))
    found = registry(ref, rules)
    return found is None or found.status is not Status.FAIL


def _not_a_registry(target: Target) -> TargetResult:
    failed = CheckResult(
        "resolve",
        Status.FAIL,
        f"{target.reference!r} is not a registry reference; a pod's image comes from a registry",
    )
    return TargetResult(target.reference, target.origin, (failed,))


def _forbidden(policy: GatePolicy, target: Target, ref: RegistryReference) -> TargetResult:
    """The verdict on an image from a registry the policy does not allow, made without
    contacting it (a pod cannot make the server talk to any host it names)."""
    from wasmctl.gate import checks

    rules, override = policy.rules_for(str(ref))
    found = [checks.registry(ref, rules), checks.pin_syntax(ref, rules)]
    skipped = CheckResult(
        "resolve", Status.SKIP, "not evaluated: the registry is not allowed (not contacted)"
    )
    return TargetResult(
        target.reference,
        target.origin,
        (*(c for c in found if c is not None), skipped),
        str(ref),
        override=override,
    )


def _reason(judged: Judged) -> str:
    """`image (containers[app]): check: why` for each failed check of one image."""
    result = judged.result
    assert result is not None
    origin = judged.target.origin
    where = f" ({origin.field}[{origin.container}])" if origin else ""
    failed = [c for c in result.checks if c.status in (Status.FAIL, Status.ERROR)]
    # each reason short enough for every image of a pod to fit in the one line
    said = "; ".join(f"{c.check}: {_clip(c.message, MAX_REASON)}" for c in failed)
    return f"{judged.target.reference}{where}: {said}"


def _record(judged: Sequence[Judged]) -> dict[str, Any]:
    """The audit log's view of a request's images: names, digests, verdicts, failed
    checks; never the object itself."""
    images = []
    for j in judged:
        result = j.result
        entry: dict[str, Any] = {
            "image": j.target.reference,
            "digest": result.digest if result else None,
            "verdict": "outage" if j.outage else (result.verdict.value if result else "undecided"),
            "cache": "stale" if j.stale else "hit" if j.cached else "miss",
        }
        if result is not None:
            failed = [
                {"check": c.check, "status": c.status.value, "message": _clip(c.message, 300)}
                for c in result.checks
                if c.status in (Status.FAIL, Status.ERROR)
            ]
            if failed:
                entry["checks"] = failed
        images.append(entry)
    hits = sum(j.cached for j in judged)
    cache = (
        "none"
        if not judged
        else "hit"
        if hits == len(judged)
        else "miss"
        if not hits
        else ("partial")
    )
    return {"images": images, "cache": cache}


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _clip(text: str, limit: int) -> str:
    text = _one_line(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _log(message: str) -> None:
    sys.stderr.write(f"wasmctl gate serve: {message}\n")
    sys.stderr.flush()


def audit_line(review: Review | None, endpoint: str, decision: Decision, latency: float) -> str:
    """One JSON line for the audit log."""
    record: dict[str, Any] = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "endpoint": endpoint,
    }
    if review is not None:
        record.update(
            uid=review.uid,
            namespace=review.namespace,
            kind=review.kind,
            name=review.name,
            operation=review.operation,
            subResource=review.sub_resource or None,
            dryRun=review.dry_run,
        )
    record.update(
        verdict=decision.verdict,
        allowed=decision.answer.allowed,
        latencyMs=round(latency * 1000, 3),
    )
    record.update(decision.record)
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False)

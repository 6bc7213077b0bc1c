"""Counters and histograms in Prometheus' text exposition format 0.0.4 (what `/metrics`
serves; prometheus.io/docs/instrumenting/exposition_formats). Written here rather than
with a client library: a dozen series, updated on the event loop thread only."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)

Labels = tuple[tuple[str, str], ...]


class Counter:
    def __init__(self, name: str, help: str, kind: str = "counter") -> None:
        self.name = name
        self.help = help
        self.kind = kind
        self.values: dict[Labels, float] = {}

    def inc(self, amount: float = 1, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        self.values[key] = self.values.get(key, 0) + amount

    def set(self, value: float, **labels: str) -> None:
        self.values[tuple(sorted(labels.items()))] = value

    def value(self, **labels: str) -> float:
        return self.values.get(tuple(sorted(labels.items())), 0)

    def lines(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} {self.kind}"
        if not self.values:
            if self.kind != "gauge":
                yield f"{self.name} 0"
            return
        for labels, value in sorted(self.values.items()):
            yield f"{self.name}{_labels(labels)} {_number(value)}"


class Gauge(Counter):
    """A value read when the metrics are rendered."""

    def __init__(self, name: str, help: str, read: Callable[[], float]) -> None:
        super().__init__(name, help, "gauge")
        self.read = read

    def lines(self) -> Iterable[str]:
        self.values = {(): self.read()}
        return super().lines()


class Histogram:
    def __init__(self, name: str, help: str, buckets: tuple[float, ...]) -> None:
        self.name = name
        self.help = help
        self.buckets = buckets
        self.series: dict[Labels, tuple[list[int], list[float]]] = {}

    def observe(self, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = ([0] * (len(self.buckets) + 1), [0.0])
        series[0][bisect.bisect_left(self.buckets, value)] += 1
        series[1][0] += value

    def lines(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        for labels, (counts, total) in sorted(self.series.items()):
            running = 0
            for bound, count in zip((*self.buckets, float("inf")), counts, strict=True):
                running += count
                le = "+Inf" if bound == float("inf") else _number(bound)
                yield f"{self.name}_bucket{_labels((*labels, ('le', le)))} {running}"
            yield f"{self.name}_sum{_labels(labels)} {_number(total[0])}"
            yield f"{self.name}_count{_labels(labels)} {running}"


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return repr(float(value)) if value != int(value) else str(int(value))


class Metrics:
    """Every series the server exposes."""

    def __init__(self) -> None:
        self.requests = Counter(
            "wasmctl_admission_requests_total",
            "Admission requests answered, by endpoint and verdict "
            "(allow, deny, warn, error-allow, error-deny, skip, invalid).",
        )
        self.latency = Histogram(
            "wasmctl_admission_duration_seconds",
            "Time from a request's last byte to its answer, by endpoint.",
            LATENCY_BUCKETS,
        )
        self.verdict_hits = Counter(
            "wasmctl_verdict_cache_hits_total", "Images judged from the verdict cache."
        )
        self.verdict_misses = Counter(
            "wasmctl_verdict_cache_misses_total", "Images not in the verdict cache."
        )
        self.tag_hits = Counter("wasmctl_tag_cache_hits_total", "Tags resolved from the tag cache.")
        self.tag_misses = Counter(
            "wasmctl_tag_cache_misses_total", "Tags resolved at the registry."
        )
        self.coalesced = Counter(
            "wasmctl_coalesced_total",
            "Images whose verification or resolution was already running for another request.",
        )
        self.verifications = Counter(
            "wasmctl_verifications_total",
            "Verifications run (one per image digest not cached), by outcome "
            "(pass, deny, skip, outage).",
        )
        self.registry_errors = Counter(
            "wasmctl_registry_errors_total",
            "Resolutions and verifications that failed because a registry could not be "
            "reached or answered wrongly (an outage, never a verdict).",
        )
        self.on_error = Counter(
            "wasmctl_on_error_total",
            "Requests answered by --on-error, by reason (timeout, outage, not-ready, internal).",
        )
        self.reloads = Counter(
            "wasmctl_reloads_total",
            "Reloads of the policy and of the TLS certificate, by what and result.",
        )
        self.invalid = Counter(
            "wasmctl_invalid_requests_total",
            "Requests refused before judging (not an AdmissionReview, too large, bad path).",
        )
        self.refused = Counter(
            "wasmctl_refused_connections_total",
            "Connections dropped unanswered: over the limit of open ones, or while draining.",
        )
        self.extra: list[Counter | Histogram] = []

    def render(self) -> bytes:
        series: list[Counter | Histogram] = [
            self.requests,
            self.latency,
            self.verdict_hits,
            self.verdict_misses,
            self.tag_hits,
            self.tag_misses,
            self.coalesced,
            self.verifications,
            self.registry_errors,
            self.on_error,
            self.reloads,
            self.invalid,
            self.refused,
            *self.extra,
        ]
        return ("\n".join(line for s in series for line in s.lines()) + "\n").encode()

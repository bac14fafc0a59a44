"""Prometheus metrics of one app instance (its own registry, so tests can build many apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# latency buckets in seconds: fine-grained below 100 ms where the service is expected to live
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ktpath_http_requests_total", "HTTP requests by route template, method and status.",
            ["route", "method", "status"], registry=self.registry,
        )
        self.latency = Histogram(
            "ktpath_http_request_duration_seconds", "HTTP request latency by route template.",
            ["route", "method"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.events = Counter(
            "ktpath_ingest_events_total", "Ingested events by result (accepted, duplicate, rejected).",
            ["result"], registry=self.registry,
        )
        self.model_version = Gauge(
            "ktpath_model_version", "Registry version of the champion model being served (0: none).",
            registry=self.registry,
        )
        self.model_swaps = Counter(
            "ktpath_model_swaps_total", "Champion models loaded and swapped in.", registry=self.registry
        )
        self.path_reads = Counter(
            "ktpath_path_reads_total",
            "Learning-path reads by cache level: hit (this process), shared (the store), stale (a few events "
            "behind, re-planned in the background), miss (planned for the request).",
            ["level"], registry=self.registry,
        )
        self.path_refreshes = Counter(
            "ktpath_path_refreshes_total",
            "Background re-plans of paths served stale, by result (planned; current: already re-planned "
            "elsewhere; skipped: no champion, or the request is no longer valid; dropped: the queue was full; "
            "failed).",
            ["result"], registry=self.registry,
        )

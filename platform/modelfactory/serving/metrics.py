"""Prometheus metrics of the endpoint: requests, errors, latency, batch sizes, canary share.

Each app gets its own CollectorRegistry, so two apps in one process (tests) never collide.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = ["CONTENT_TYPE_LATEST", "ResidencyMetrics", "ServingMetrics"]

_LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
_BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


@dataclass
class ServingMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter(
            "modelfactory_requests",
            "Prediction requests answered, by model, version, role and outcome",
            ["model", "version", "role", "outcome"],
            registry=r,
        )
        self.rejected = Counter(
            "modelfactory_rejected_requests",
            "Requests refused before reaching a model (4xx), by model and reason",
            ["model", "reason"],
            registry=r,
        )
        self.latency = Histogram(
            "modelfactory_request_latency_seconds",
            "Time from request received to response ready, by model and version",
            ["model", "version"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.rows = Counter(
            "modelfactory_predicted_rows",
            "Rows predicted, by model and version",
            ["model", "version"],
            registry=r,
        )
        self.batch_rows = Histogram(
            "modelfactory_batch_rows",
            "Rows per predict call after micro-batching concurrent requests",
            ["model", "version"],
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.canary_percent = Gauge(
            "modelfactory_canary_percent",
            "Share of requests the canary version answers (0 outside a rollout)",
            ["model"],
            registry=r,
        )
        self.serving = Gauge(
            "modelfactory_serving_version",
            "1 for each version a model serves now, by role",
            ["model", "version", "role"],
            registry=r,
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


@dataclass
class ResidencyMetrics:
    """Loads, evictions, load time and resident size of models loaded on demand
    (`serve --memory-budget` or `--max-loaded`); registered only then, so an endpoint that
    loads everything publishes no resident size it does not track."""

    registry: CollectorRegistry

    def __post_init__(self) -> None:
        r = self.registry
        self.loads = Counter(
            "modelfactory_model_loads",
            "Versions loaded on demand, by model and outcome (ok or error)",
            ["model", "outcome"],
            registry=r,
        )
        self.evictions = Counter(
            "modelfactory_model_evictions",
            "Versions evicted, least recently used first, to stay within the budget",
            ["model"],
            registry=r,
        )
        self.load_seconds = Histogram(
            "modelfactory_model_load_seconds",
            "Time to load one version from the registry",
            ["model"],
            buckets=(0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0),
            registry=r,
        )
        self.resident_bytes = Gauge(
            "modelfactory_resident_bytes",
            "Estimated bytes of the loaded versions (the length of each one's pickle)",
            registry=r,
        )
        self.loaded = Gauge("modelfactory_loaded_versions", "Versions in memory now", registry=r)

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

__all__ = ["CONTENT_TYPE_LATEST", "ServingMetrics"]

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

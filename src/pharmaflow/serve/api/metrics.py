"""The API's Prometheus metrics: requests by route template, status and latency — and,
given the settings, the platform's build and health metrics (serve/api/health_metrics.py),
because the API is the long-running process that reads the data dir.

Routes are labelled by their template (`/v1/orders/{order_id}/timeline`), never the concrete
path, so an order id (or a patient key) never becomes a label and the series stay few.
Its own registry, as the workers have (ingest/metrics.py), so two apps in one process (tests)
never collide. Names are public (deploy/ and docs/observability.md): `pharmaflow_api_*`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.requests import Request
from starlette.responses import Response

from pharmaflow.serve.api.health_metrics import HealthCollector

if TYPE_CHECKING:
    from pharmaflow.config import Settings

_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ApiMetrics:
    def __init__(self, settings: Settings | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.health: HealthCollector | None = None
        if settings is not None:
            self.health = HealthCollector(settings)
            r.register(self.health)
        self.requests = Counter(
            "pharmaflow_api_requests",
            "API requests answered, by route template, method and status code",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "pharmaflow_api_request_seconds",
            "API request latency, by route template",
            ["route"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "pharmaflow_api_requests_in_flight", "API requests being answered", registry=r
        )
        self.snapshot_age = Gauge(
            "pharmaflow_api_snapshot_age_seconds",
            "Age of the warehouse snapshot the API serves (since its build ended)",
            registry=r,
        )

    async def middleware(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        self.in_flight.inc()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            self.in_flight.dec()
            route = request.scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.requests.labels(template, request.method, str(status)).inc()
            self.latency.labels(template).observe(time.perf_counter() - started)

    def response(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

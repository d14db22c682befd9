"""The analytics API: FastAPI over the query layer, versioned under /v1.

`create_app(settings)` builds one app per process: the query layer (warehouse snapshots and the
speed-layer store), the key store and the audit trail are opened once and shared by the
request threads (serve/api/services.py). Routes are sync functions: FastAPI runs them on its
thread pool, and the query layer gives each thread its own DuckDB cursor.

Unversioned: `/health` (the process answers), `/ready` (the warehouse snapshot, the speed-layer
store and the security store can be read), `/metrics` (Prometheus), `/docs` (OpenAPI).

Every request runs under a trace id (its `traceparent` / `X-Trace-Id`, or a fresh one),
answered in the `X-Trace-Id` header and logged with one JSON access line (serve/api/access.py).
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from pharmaflow.errors import PharmaflowError
from pharmaflow.serve.api.access import TraceAccessMiddleware
from pharmaflow.serve.api.errors import install_error_handlers
from pharmaflow.serve.api.metrics import ApiMetrics
from pharmaflow.serve.api.routes import ROUTERS
from pharmaflow.serve.api.services import Services

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from pharmaflow.config import Settings

API_VERSION = "1"


def build_services(settings: Settings) -> Services:
    from pharmaflow.serve.query.base import QueryContext
    from pharmaflow.serve.security.store import open_security

    keys, audit = open_security(settings)
    return Services(settings=settings, queries=QueryContext(settings), keys=keys, audit=audit)


def create_app(settings: Settings, services: Services | None = None) -> FastAPI:
    services = services or build_services(settings)
    metrics = ApiMetrics(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        services.close()

    app = FastAPI(
        title="pharmaflow analytics API",
        version=f"{API_VERSION}.0",
        description=(
            "Orders, shipments, batches, lots, facilities and KPIs of the pharmaflow "
            "warehouse (gold) merged with the speed layer (live). Send an API key in the "
            "`X-API-Key` header (`pharmaflow apikey create`). No response carries a patient "
            "identifier, except a privacy officer's logged re-identification."
        ),
        lifespan=lifespan,
    )
    app.state.services = services
    app.state.metrics = metrics
    app.middleware("http")(metrics.middleware)
    # Added last, so outermost: the trace id is bound around everything else, metrics included.
    app.add_middleware(TraceAccessMiddleware)
    install_error_handlers(app)

    @app.get("/health", tags=["operations"], summary="Liveness: the process answers")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", tags=["operations"], summary="Readiness: every store can be read")
    def ready(request: Request) -> JSONResponse:
        checks = readiness(request.app.state.services)
        ok = all(c["ok"] for c in checks.values())
        body = jsonable_encoder({"ready": ok, "checks": checks})
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics", include_in_schema=False)
    def prometheus(request: Request) -> Any:
        try:
            info = request.app.state.services.queries.info()
            metrics.snapshot_age.set((datetime.now(UTC) - info.built_at).total_seconds())
        except PharmaflowError:
            pass  # no snapshot yet: the gauge keeps its last value
        return metrics.response()

    for router in ROUTERS:
        app.include_router(router)
    return app


def readiness(services: Services) -> dict[str, dict[str, Any]]:
    """Each store: can it be read now, and what it says (one line when it cannot)."""
    checks: dict[str, dict[str, Any]] = {}
    try:
        info = services.queries.info()
        checks["warehouse"] = {"ok": True, "snapshot": info.id, "built_at": info.built_at}
    except PharmaflowError as exc:
        checks["warehouse"] = {"ok": False, "error": str(exc)}
    try:
        live = services.queries.live()
        checks["speed_layer"] = {
            "ok": True,
            "clock": None if live is None else live.clock,
            "running": live is not None,
        }
    except PharmaflowError as exc:
        checks["speed_layer"] = {"ok": False, "error": str(exc)}
    try:
        services.audit.head()
        checks["security"] = {"ok": True}
    except PharmaflowError as exc:
        checks["security"] = {"ok": False, "error": str(exc)}
    return checks


def app_from_env() -> FastAPI:
    """The app for `uvicorn --factory pharmaflow.serve.api.app:app_from_env`: settings from
    the `PHARMAFLOW_*` environment (what `pharmaflow serve` and `pharmaflow up` set).

    Started this way the CLI never ran, so the run log is configured here, as the CLI does
    for `pharmaflow serve` (into the data dir's log, or stderr when it is read-only)."""
    from pharmaflow import logs
    from pharmaflow.config import Settings
    from pharmaflow.datadir import check_data_dir

    settings = Settings()
    state = check_data_dir(settings.root)
    logs.configure_from(settings, writable=state.writable)
    return create_app(settings)

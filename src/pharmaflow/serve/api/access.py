"""The API's trace ids and access log: one JSON line per request, under the request's trace.

Every request is served under one trace id: the caller's (a W3C `traceparent`, else a safe
`X-Trace-Id`) or a fresh one (tracing.py). It is bound for the request (`logs.bind`), so any
line a route logs carries it too, and it goes back as the `X-Trace-Id` response header, so a
client can quote it to support and support can find every line of that request.

The access line (`http_request`, logger `pharmaflow.serve.api.access`) holds the method, the
route *template* (`/v1/orders/{order_id}/timeline`, as the metrics label it: never the concrete
path, so no order id or patient key is written; `unmatched` for a path no route serves), the
status, the duration and where the trace id came from. Never the query string, a header (an
API key) or a body.

A plain ASGI middleware rather than `BaseHTTPMiddleware`: the bound trace id is set in the
very task that runs the app, so it reaches sync routes (which FastAPI runs in threads with a
copy of that context) and every middleware inside.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pharmaflow import logs, tracing

log = logging.getLogger("pharmaflow.serve.api.access")

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})


class TraceAccessMiddleware:
    """Binds the request's trace id, answers it in `X-Trace-Id`, logs one access line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        trace_id, origin = tracing.inbound_trace(
            _header(scope, b"traceparent"), _header(scope, b"x-trace-id")
        )
        status = 500  # unless the app starts a response: an unhandled error is answered 500
        error: str | None = None

        async def send_traced(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                MutableHeaders(scope=message)[tracing.TRACE_HEADER] = trace_id
            await send(message)

        started = time.perf_counter()
        with logs.bind(trace_id=trace_id):
            try:
                await self.app(scope, receive, send_traced)
            except Exception as exc:
                error = type(exc).__name__  # the type only: a message may quote a value
                raise
            finally:
                fields: dict[str, Any] = {
                    "method": _method(scope),
                    "route": _route(scope),
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                    "trace_origin": origin,
                }
                if error is not None:
                    fields["error"] = error
                level = logging.ERROR if status >= 500 else logging.INFO
                logs.event(log, "http_request", level=level, **fields)


def _header(scope: Scope, name: bytes) -> str | None:
    """The first `name` header of the request (latin-1, as HTTP defines), or None."""
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _method(scope: Scope) -> str:
    method = str(scope.get("method", ""))
    return method if method in _METHODS else "OTHER"


def _route(scope: Scope) -> str:
    """The matched route's template (set in the scope by the router), else `unmatched`."""
    template = getattr(scope.get("route"), "path", None)
    return template if isinstance(template, str) else "unmatched"

"""How the API answers what went wrong: one clear `detail`, never a traceback or a value.

* no snapshot yet (nothing built) → 503 with what to run;
* a cursor the API did not hand out → 422 naming the `cursor` query parameter;
* any other PharmaflowError (a store that cannot be reached, ...) → 503, its one line;
* validation errors keep FastAPI's 422 shape (`loc` names the field at fault), but without
  echoing the input back (`input` could carry what a client should not have sent).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from pharmaflow.errors import PharmaflowError
from pharmaflow.serve.query.base import BadCursor
from pharmaflow.serve.snapshots import NotBuilt


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(NotBuilt)
    def not_built(_request: Request, exc: NotBuilt) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(BadCursor)
    def bad_cursor(_request: Request, exc: BadCursor) -> JSONResponse:
        detail = [{"loc": ["query", "cursor"], "msg": str(exc), "type": "value_error"}]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(PharmaflowError)
    def unavailable(_request: Request, exc: PharmaflowError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(RequestValidationError)
    def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": detail}, status_code=422)

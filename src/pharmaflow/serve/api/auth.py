"""API key authentication and role checks, as a FastAPI dependency.

    @router.get("/v1/orders/stuck")
    def stuck(principal: Principal = Depends(require(Scope.rows))) -> ...

The key comes in `X-API-Key` (or `Authorization: Bearer <key>`). No key is 401 saying where to
send one; a malformed, unknown or revoked key is 401 with one message for all three, so a
caller cannot tell a revoked key from a typo or probe which key ids exist; a key whose role
lacks the scope is 403 naming the role, what it may not do and which roles may. No response
ever repeats the key. Both schemes are declared, so `/docs` has an "Authorize" button.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from fastapi import HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from pharmaflow.serve.security.keys import Principal
from pharmaflow.serve.security.roles import SCOPE_ALLOWS, Role, Scope, allows

MISSING_KEY = "missing API key: send it in the X-API-Key header"
INVALID_KEY = "invalid or revoked API key"
_CHALLENGE = {"WWW-Authenticate": "ApiKey"}

api_key_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    description="An API key, `pf_<key_id>_<secret>` (`pharmaflow apikey create`).",
)
bearer = HTTPBearer(auto_error=False, description="The same API key as a bearer token.")


class ErrorDetail(BaseModel):
    detail: str


# For routers' `responses=`: documents the 401 and 403 every protected route can answer.
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorDetail, "description": "No API key, or an invalid or revoked one."},
    403: {"model": ErrorDetail, "description": "The key's role may not use this route."},
}


def forbidden(role: Role, scopes: tuple[Scope, ...], what: str | None = None) -> str:
    may = ", ".join(r.value for r in Role if any(allows(r, s) for s in scopes))
    what = what or " or ".join(SCOPE_ALLOWS[s] for s in scopes)
    return f"the {role} role may not {what}; roles that may: {may}"


@cache
def require(*scopes: Scope, what: str | None = None) -> Callable[..., Principal]:
    """A dependency yielding the calling `Principal` if its role grants one of `scopes`
    (usually one). `what` words the 403 ("read lot traces") when several scopes would make
    the generated wording clumsy."""
    if not scopes:
        raise ValueError("require() needs at least one scope")

    def dependency(
        request: Request,
        header_key: str | None = Security(api_key_header),
        bearer_key: HTTPAuthorizationCredentials | None = Security(bearer),
    ) -> Principal:
        raw = (header_key or (bearer_key.credentials if bearer_key else "") or "").strip()
        if not raw:
            raise HTTPException(401, MISSING_KEY, headers=_CHALLENGE)
        principal = request.app.state.services.keys.authenticate(raw)
        if principal is None:
            raise HTTPException(401, INVALID_KEY, headers=_CHALLENGE)
        if not any(allows(principal.role, scope) for scope in scopes):
            raise HTTPException(403, forbidden(principal.role, scopes, what))
        request.state.principal = principal  # for access logs and metrics
        return principal

    dependency.__name__ = "require_" + "_or_".join(s.value for s in scopes)
    return dependency

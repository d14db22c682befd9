"""Alert routes: the speed layer's incidents, newest first."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from pharmaflow.serve.api import params
from pharmaflow.serve.api.auth import AUTH_RESPONSES, require
from pharmaflow.serve.api.services import Services, get_services
from pharmaflow.serve.query import alerts
from pharmaflow.serve.query.base import Page
from pharmaflow.serve.security.roles import Scope

router = APIRouter(prefix="/v1", tags=["alerts"], responses=AUTH_RESPONSES)


class Incident(BaseModel):
    id: int
    rule: str = Field(description="The alert rule (docs/alerts.md).")
    key: str = Field(description="What the incident is about (rule:entity).")
    severity: str
    state: Literal["firing", "resolved"]
    summary: str
    details: dict[str, Any]
    labels: dict[str, Any]
    first_fired_at: str | None
    last_notified_at: str | None
    notifications: int
    resolved_at: str | None
    resolution: str | None
    delivery: dict[str, int] = Field(description="Notifications sent / pending / given up.")


class Incidents(BaseModel):
    items: list[Incident]
    next_cursor: str | None


@router.get(
    "/alerts",
    response_model=Incidents,
    dependencies=[Depends(require(Scope.rows))],
    summary="Incidents the speed layer's alert rules raised, newest first",
)
def list_alerts(
    services: Annotated[Services, Depends(get_services)],
    page: Annotated[Page, Depends(params.page)],
    state: Annotated[Literal["firing", "resolved", "all"], Query()] = "all",
) -> dict[str, Any]:
    return alerts.incidents(services.queries, state, page)

"""Security routes: re-identify a patient key (privacy officers), read and verify the audit
trail (QA and privacy officers).

Re-identification is the only response of the API that carries patient identifiers; it is
answered only after its audit entry is committed (`security.reidentify`).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from pharmaflow.errors import PharmaflowError
from pharmaflow.serve.api.auth import AUTH_RESPONSES, ErrorDetail, require
from pharmaflow.serve.api.services import Services, get_services
from pharmaflow.serve.security.audit import AuditEntry
from pharmaflow.serve.security.keys import Principal
from pharmaflow.serve.security.reidentify import (
    MAX_REASON,
    MIN_REASON,
    PatientNotFound,
    reidentify,
)
from pharmaflow.serve.security.roles import Scope

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["security"])

MAX_AUDIT_PAGE = 500
PATIENT_KEY = r"^pk_[0-9a-f]{32}$"


class ReidentifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=MIN_REASON, max_length=MAX_REASON),
    ] = Field(
        description="Why (the request, ticket or investigation); recorded in the audit trail.",
        examples=["recall RC-2026-014: notify patients who received lot L-4711"],
    )


class ReidentifyResponse(BaseModel):
    patient_key: str
    identifiers: dict[str, Any] = Field(description="The patient's original record (PHI).")
    audit_seq: int = Field(description="The audit entry recording this re-identification.")


class AuditEntryModel(BaseModel):
    seq: int
    at: datetime
    actor: str
    action: str
    target: str
    reason: str
    details: dict[str, Any]
    prev_hash: str
    hash: str

    @classmethod
    def of(cls, entry: AuditEntry) -> AuditEntryModel:
        return cls(**entry.to_dict())


class AuditPage(BaseModel):
    items: list[AuditEntryModel]
    next_after_seq: int | None = Field(
        description="Pass as `after_seq` for the next page; null on the last page."
    )


class AuditVerificationModel(BaseModel):
    ok: bool
    entries: int = Field(description="Entries checked.")
    head_seq: int | None
    head_hash: str | None = Field(description="Record it elsewhere to detect a cut-off tail.")
    problems: list[str] = Field(description="One line per broken place, naming the seq.")


@router.post(
    "/patients/{patient_key}/reidentify",
    response_model=ReidentifyResponse,
    responses={
        **AUTH_RESPONSES,
        400: {"model": ErrorDetail, "description": "The body is not readable JSON."},
        404: {"model": ErrorDetail, "description": "The vault has no such patient key."},
        503: {"model": ErrorDetail, "description": "The PHI vault cannot be opened here."},
    },
)
def reidentify_patient(
    body: ReidentifyRequest,
    patient_key: Annotated[str, Path(pattern=PATIENT_KEY, description="pk_ + 32 hex chars.")],
    principal: Principal = Depends(require(Scope.reidentify)),
    services: Services = Depends(get_services),
) -> ReidentifyResponse:
    """The original identifiers behind a patient key, for an authorised purpose. Recorded in
    the audit trail (who, when, which key, why) and the vault's access log."""
    try:
        result = reidentify(services.settings, services.audit, principal, patient_key, body.reason)
    except PatientNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except PharmaflowError as exc:
        log.error("re-identification failed: %s", exc)
        raise HTTPException(
            503, "re-identification is unavailable: the PHI vault cannot be opened (server log)"
        ) from None
    return ReidentifyResponse(**result)


@router.get("/audit", response_model=AuditPage, responses=AUTH_RESPONSES)
def audit_entries(
    after_seq: Annotated[int, Query(ge=0, le=2**63 - 1, description="Entries after this seq.")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_AUDIT_PAGE)] = 100,
    principal: Principal = Depends(require(Scope.audit)),
    services: Services = Depends(get_services),
) -> AuditPage:
    """Audit entries oldest first: key changes and re-identifications."""
    entries = services.audit.entries(after_seq, limit + 1)
    more = len(entries) > limit
    items = [AuditEntryModel.of(e) for e in entries[:limit]]
    return AuditPage(items=items, next_after_seq=items[-1].seq if more else None)


@router.get("/audit/verify", response_model=AuditVerificationModel, responses=AUTH_RESPONSES)
def audit_verify(
    expected_head: Annotated[
        str | None,
        Query(pattern=r"^[0-9a-f]{64}$", description="A head hash recorded earlier."),
    ] = None,
    principal: Principal = Depends(require(Scope.audit)),
    services: Services = Depends(get_services),
) -> AuditVerificationModel:
    """Recompute the hash chain; `ok` false names each edited, deleted or moved entry."""
    result = services.audit.verify(expected_head)
    return AuditVerificationModel(
        ok=result.ok,
        entries=result.entries,
        head_seq=result.head_seq,
        head_hash=result.head_hash,
        problems=result.problems,
    )

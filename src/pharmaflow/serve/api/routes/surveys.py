"""Survey route: a patient survey into the survey database, idempotent by survey_id."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from pharmaflow.serve.api.auth import AUTH_RESPONSES, ErrorDetail, require
from pharmaflow.serve.api.services import Services, get_services
from pharmaflow.serve.security.roles import Scope
from pharmaflow.serve.surveys.model import SurveySubmission

router = APIRouter(prefix="/v1", tags=["surveys"], responses=AUTH_RESPONSES)


class SurveyAccepted(BaseModel):
    survey_id: str
    stored: bool = Field(description="True: stored now; False: it was already stored.")


@router.post(
    "/surveys",
    response_model=SurveyAccepted,
    status_code=201,
    dependencies=[Depends(require(Scope.surveys_write))],
    summary="Submit a patient survey (resubmitting the same survey_id changes nothing)",
    responses={
        200: {"model": SurveyAccepted, "description": "Already stored (same content)."},
        400: {"model": ErrorDetail, "description": "The body is not readable JSON."},
        409: {"model": ErrorDetail, "description": "The survey_id is stored with other content."},
    },
)
def submit_survey(
    survey: SurveySubmission,
    services: Annotated[Services, Depends(get_services)],
) -> JSONResponse:
    result = services.surveys().submit(survey)
    if result.conflicts:
        raise HTTPException(
            409, f"survey {survey.survey_id} is already stored with different content"
        )
    body = {"survey_id": survey.survey_id, "stored": bool(result.new)}
    return JSONResponse(body, status_code=201 if result.new else 200)

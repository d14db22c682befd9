"""The survey API's id rules are the contract's identifier patterns (no database needed)."""

from __future__ import annotations

import pytest

from pharmaflow.contracts.registry import default_registry
from pharmaflow.serve.surveys.model import InvalidSurvey, SurveySubmission


def survey(**overrides: object) -> dict[str, object]:
    return {"survey_id": "SRV-261102-00009", "order_id": "ORD-261101-00041", "rating": 5,
            "nps": 9, **overrides}  # fmt: skip


@pytest.mark.parametrize("field", ["survey_id", "order_id"])
@pytest.mark.parametrize(
    "value", ["jane.doe@example.com", "Jane Doe", "+1 (415) 555-0134", "MRN: 00424242", "S-1\n"]
)
def test_an_id_that_breaks_the_contract_pattern_is_refused_without_echoing_it(field, value):
    with pytest.raises(InvalidSurvey) as caught:
        SurveySubmission.parse(survey(**{field: value}))
    assert caught.value.fields == [field]
    contract = default_registry().get("feedback.survey.submitted")
    pattern = next(f.pattern for f in contract.payload.children if f.name == field)
    assert pattern is not None and pattern in str(caught.value)
    assert value.strip() not in str(caught.value)


@pytest.mark.parametrize("value", ["S-1", "SRV_42", "3f2c1e6a-9b1d-4c8e-8f7a-2d5b6c7e8f90"])
def test_ids_the_contract_accepts_are_accepted(value):
    ok = SurveySubmission.parse(survey(survey_id=value, order_id=value))
    assert (ok.survey_id, ok.order_id) == (value, value)


def test_a_blank_id_is_still_reported_as_blank():
    with pytest.raises(InvalidSurvey, match="survey_id: must not be blank"):
        SurveySubmission.parse(survey(survey_id="   "))

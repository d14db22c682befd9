"""What a survey submission must look like before it is stored.

The rules come from the `feedback.survey.submitted` contract itself (its Avro schema's ranges
and identifier patterns), so a survey the database accepts is one the ingest validator accepts
when it is extracted, and a contract change shows up here without a second copy to forget.
Numbers are strict (`"5"` is not a rating), as they are on the Kafka wire.

Errors name the field and the rule, never the value: the comment is free text that may hold a
patient's name, phone or email, and error messages end up in logs and HTTP responses.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
)

from pharmaflow.contracts.model import Contract
from pharmaflow.contracts.registry import default_registry
from pharmaflow.errors import PharmaflowError

EVENT_TYPE = "feedback.survey.submitted"
EVENT_VERSION = 1


def _contract() -> Contract:
    contract = default_registry().get(EVENT_TYPE, EVENT_VERSION)
    if contract is None:  # the package ships it; only a broken install gets here
        raise PharmaflowError(f"contract {EVENT_TYPE} v{EVENT_VERSION} is missing")
    return contract


def _bounds(name: str) -> tuple[int, int]:
    spec = next(f for f in _contract().payload.children if f.name == name)
    assert spec.minimum is not None and spec.maximum is not None
    return int(spec.minimum), int(spec.maximum)


def _pattern(name: str) -> str | None:
    return next(f for f in _contract().payload.children if f.name == name).pattern


RATING_RANGE = _bounds("rating")
NPS_RANGE = _bounds("nps")
# The contract's payload fields; the model holds exactly these plus `submitted_at` (which
# becomes the envelope's event_time).
CONTRACT_FIELDS = tuple(f.name for f in _contract().payload.children)


def _storable(text: str) -> str:
    """PostgreSQL text holds neither NUL characters nor lone surrogates."""
    if "\x00" in text:
        raise ValueError("must not contain NUL characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return text


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be blank")
    return text


def _matching(pattern: str | None) -> AfterValidator:
    """The contract's pattern, run by the ingest validator's engine (Arrow's RE2), so an id
    the store accepts is one ingest accepts (Python's `re` differs: `$` before a newline)."""

    def check(text: str) -> str:
        if pattern is None:
            return text
        matched = pc.match_substring_regex(pa.array([text], pa.string()), pattern=pattern)
        if not matched[0].as_py():
            raise ValueError(f"must match the contract's pattern {pattern}")
        return text

    return AfterValidator(check)


def _identifier(name: str) -> Any:
    """An id field of the contract: non-blank storable text matching the field's pattern."""
    return Annotated[
        StrictStr,
        AfterValidator(_storable),
        AfterValidator(_not_blank),
        _matching(_pattern(name)),
    ]


SurveyId = _identifier("survey_id")
OrderId = _identifier("order_id")
Text = Annotated[StrictStr, AfterValidator(_storable)]


class InvalidSurvey(PharmaflowError):
    """A submission that breaks the contract; `problems` lists (field, rule) pairs."""

    def __init__(self, problems: list[tuple[str, str]], index: int | None = None) -> None:
        self.problems = problems
        self.index = index
        where = f"invalid survey #{index}" if index is not None else "invalid survey"
        super().__init__(f"{where}: " + "; ".join(f"{field}: {rule}" for field, rule in problems))

    @property
    def fields(self) -> list[str]:
        return [field for field, _ in self.problems]


class SurveySubmission(BaseModel):
    """One patient survey as submitted (docs/contracts.md, `feedback.survey.submitted`).

    `submitted_at` is when the patient submitted it (the event time downstream); a client that
    does not send it gets the time of validation. It must carry a UTC offset."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    survey_id: SurveyId  # type: ignore[valid-type]
    order_id: OrderId  # type: ignore[valid-type]
    rating: Annotated[StrictInt, Field(ge=RATING_RANGE[0], le=RATING_RANGE[1])]
    nps: Annotated[StrictInt, Field(ge=NPS_RANGE[0], le=NPS_RANGE[1])]
    comment: Text | None = None
    submitted_at: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def parse(
        cls, data: SurveySubmission | Mapping[str, Any], index: int | None = None
    ) -> SurveySubmission:
        """Validate `data`; a bad field raises `InvalidSurvey` naming it (`index`: its place
        in a batch). The pydantic error is not chained: it would carry the input values."""
        if isinstance(data, cls):
            return data
        problems: list[tuple[str, str]] = []
        if not isinstance(data, Mapping):
            problems = [("survey", f"must be an object, not {type(data).__name__}")]
        else:
            try:
                return cls.model_validate(dict(data))
            except ValidationError as exc:
                problems = [
                    (".".join(str(p) for p in e["loc"]) or "survey", _rule(e))
                    for e in exc.errors(include_url=False, include_input=False)
                ]
        raise InvalidSurvey(problems, index)


def _rule(error: Any) -> str:
    """pydantic's message, minus any echo of the input (custom validators prefix theirs)."""
    message = str(error["msg"])
    return message.removeprefix("Value error, ")

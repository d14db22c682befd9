"""Query and path parameters every route shares: filters, pages, identifiers.

Declared once so every route validates the same way (FastAPI answers 422 naming the
parameter at fault) and the OpenAPI document describes them once.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import HTTPException, Path, Query

from pharmaflow.serve.query.base import DEFAULT_LIMIT, MAX_LIMIT, Filters, Page

# Identifiers as the contracts write them (ORD-..., SHP-..., B-..., PH-001, lot numbers).
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
Id = Annotated[str, Query(max_length=64, pattern=ID_PATTERN)]


def path_id(description: str) -> object:
    return Path(max_length=64, pattern=ID_PATTERN, description=description)


DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
# The days a filter may name: wide, but a day after which a timestamp still exists.
FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(9998, 12, 31)


def _day(text: str | date | None, name: str) -> date | None:
    """A YYYY-MM-DD query parameter (or a date a route parsed) as a date; anything else is a
    422 naming it."""
    if text is None:
        return None
    day: date | None
    if isinstance(text, date):
        day = text
    else:
        try:
            day = date.fromisoformat(text)
        except ValueError:
            day = None
    if day is None or not FIRST_DAY <= day <= LAST_DAY:
        raise _invalid(name, f"{name} must be a day YYYY-MM-DD from {FIRST_DAY} to {LAST_DAY}")
    return day


def _invalid(name: str, message: str) -> HTTPException:
    return HTTPException(422, [{"loc": ["query", name], "msg": message, "type": "value_error"}])


# The filter parameters, declared once: a route whose data some filters do not fit (plant
# routes have no pharmacy) builds its own dependency from these and calls `filters`.
DateFrom = Annotated[
    str | None, Query(pattern=DATE_PATTERN, description="First UTC day included (YYYY-MM-DD).")
]
DateTo = Annotated[
    str | None, Query(pattern=DATE_PATTERN, description="Last UTC day included (YYYY-MM-DD).")
]
SiteId = Annotated[
    str | None,
    Query(max_length=64, pattern=ID_PATTERN, description="Manufacturing site (plant), e.g. PL-01."),
]
PharmacyId = Annotated[
    str | None, Query(max_length=64, pattern=ID_PATTERN, description="Pharmacy, e.g. PH-004.")
]
CarrierId = Annotated[
    str | None, Query(max_length=64, pattern=ID_PATTERN, description="Carrier, e.g. CR-01.")
]


def filters(
    date_from: DateFrom = None,
    date_to: DateTo = None,
    site_id: SiteId = None,
    pharmacy_id: PharmacyId = None,
    carrier_id: CarrierId = None,
) -> Filters:
    first, last = _day(date_from, "date_from"), _day(date_to, "date_to")
    if first is not None and last is not None and first > last:
        raise _invalid("date_to", "date_to is before date_from")
    return Filters(first, last, site_id, pharmacy_id, carrier_id)


def pharmacy_filters(
    date_from: DateFrom = None,
    date_to: DateTo = None,
    pharmacy_id: PharmacyId = None,
) -> Filters:
    """The filters of routes where only dates and pharmacy apply (patient feedback, demand
    forecasts): site and carrier are not offered."""
    return filters(date_from=date_from, date_to=date_to, pharmacy_id=pharmacy_id)


def page(
    cursor: Annotated[
        str | None,
        Query(max_length=512, description="`next_cursor` of the previous page."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page.")] = DEFAULT_LIMIT,
) -> Page:
    return Page(cursor, limit)

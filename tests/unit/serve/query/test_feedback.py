"""Patient feedback answers against direct computations on the served snapshot, and PHI-free.

NPS is checked three ways: against gold.kpi_nps (overall and per pharmacy), against a Python
computation over gold.fact_survey per period, and the comments against the raw simulated
events, whose free text named patients, phone numbers and e-mails before ingest scrubbed it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import timedelta
from typing import Any

import pytest

from pharmaflow.errors import PharmaflowError
from pharmaflow.serve.query import feedback
from pharmaflow.serve.query.base import Filters, Page, QueryContext
from tests.phi_scan import leaks
from tests.serve_data import assert_no_phi, raw_phi


@pytest.fixture(scope="module")
def surveys(ctx) -> list[dict[str, Any]]:
    """gold.fact_survey as plain rows, for the direct computations."""
    with ctx.reading() as q:
        cur = q.snap.cursor()
        cur.execute(
            "select survey_id, submitted_at, rating, nps, pharmacy_id, comment "
            "from gold.fact_survey"
        )
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _kpi_nps(ctx: QueryContext, pharmacy_id: str | None) -> dict[str, Any]:
    sql = "select * from gold.kpi_nps where " + (
        "scope = 'ALL'" if pharmacy_id is None else "scope = 'PHARMACY' and pharmacy_id = ?"
    )
    with ctx.reading() as q:
        row = q.one("test.kpi_nps", sql, [] if pharmacy_id is None else [pharmacy_id])
    assert row is not None
    return row


def _nps(scores: list[int]) -> float:
    promoters = sum(s >= 9 for s in scores)
    detractors = sum(s <= 6 for s in scores)
    return round(100 * (promoters - detractors) / len(scores), 2)


def test_overall_nps_equals_kpi_nps(ctx, surveys):
    trend = feedback.nps_trend(ctx, Filters(), "week")
    kpi = _kpi_nps(ctx, None)
    overall = trend["overall"]
    for key in ("surveys", "responses", "promoters", "passives", "detractors", "nps", "avg_rating"):
        assert overall[key] == pytest.approx(kpi[key]), key
    assert overall["surveys"] == len(surveys) > 50
    assert sum(p["responses"] for p in trend["items"]) == overall["responses"]


def test_pharmacy_nps_equals_kpi_nps(ctx, surveys):
    pharmacy = Counter(s["pharmacy_id"] for s in surveys if s["pharmacy_id"]).most_common(1)[0][0]
    overall = feedback.nps_trend(ctx, Filters(pharmacy_id=pharmacy), "day")["overall"]
    kpi = _kpi_nps(ctx, pharmacy)
    assert (overall["responses"], overall["nps"]) == (kpi["responses"], pytest.approx(kpi["nps"]))


def test_daily_nps_equals_a_direct_computation(ctx, surveys):
    by_day: dict[Any, list[int]] = defaultdict(list)
    for s in surveys:
        if s["nps"] is not None:
            by_day[s["submitted_at"].date()].append(s["nps"])
    trend = feedback.nps_trend(ctx, Filters(), "day")["items"]
    assert {p["period"]: p["nps"] for p in trend} == {
        day: pytest.approx(_nps(scores)) for day, scores in by_day.items()
    }
    assert {p["period"]: p["responses"] for p in trend} == {d: len(s) for d, s in by_day.items()}


def test_date_filter_keeps_the_days_it_names(ctx, surveys):
    days = sorted({s["submitted_at"].date() for s in surveys})
    first, last = days[1], days[-2]
    trend = feedback.nps_trend(ctx, Filters(date_from=first, date_to=last), "day")
    expected = [s["nps"] for s in surveys if first <= s["submitted_at"].date() <= last]
    assert trend["overall"]["responses"] == len(expected)
    assert trend["overall"]["nps"] == pytest.approx(_nps(expected))
    assert [p["period"] for p in trend["items"]] == [d for d in days if first <= d <= last]
    assert last + timedelta(days=1) not in {p["period"] for p in trend["items"]}


def test_unknown_period_is_refused(ctx):
    with pytest.raises(PharmaflowError, match="period"):
        feedback.nps_trend(ctx, Filters(), "year")


def test_rating_distribution_counts_every_rating(ctx, surveys):
    ratings = feedback.rating_distribution(ctx, Filters())
    counts = Counter(s["rating"] for s in surveys if s["rating"] is not None)
    assert [r["rating"] for r in ratings] == [1, 2, 3, 4, 5]
    assert {r["rating"]: r["surveys"] for r in ratings} == {
        k: counts.get(k, 0) for k in range(1, 6)
    }
    assert sum(r["share_pct"] for r in ratings) == pytest.approx(100, abs=0.05)


def test_comments_page_through_every_comment_newest_first(ctx, surveys):
    seen: list[dict[str, Any]] = []
    page = Page(limit=7)
    while True:
        found = feedback.comments(ctx, Filters(), page)
        seen += found["items"]
        if found["next_cursor"] is None:
            break
        page = Page(found["next_cursor"], 7)
    ids = [c["survey_id"] for c in seen]
    assert len(ids) == len(set(ids))
    assert set(ids) == {s["survey_id"] for s in surveys if (s["comment"] or "").strip()}
    stamps = [c["submitted_at"] for c in seen]
    assert stamps == sorted(stamps, reverse=True)
    assert all("sort_newest" not in c for c in seen)


def test_comments_of_one_category(ctx):
    found = feedback.comments(ctx, Filters(), Page(limit=500), "DETRACTOR")
    assert found["items"]
    assert {c["nps_category"] for c in found["items"]} == {"DETRACTOR"}
    assert all(c["nps"] <= 6 for c in found["items"])


def test_no_raw_patient_identifier_in_feedback(ctx, served):
    phi = raw_phi(served.events)
    # The check has teeth: the raw comments did carry e-mails (ingest scrubbed them).
    raw_comments = [
        line.decode("utf-8", "replace")
        for line in served.events.read_bytes().splitlines()
        if b"feedback.survey.submitted" in line
    ]
    assert len(leaks(raw_comments, *phi)) >= 10
    found = feedback.comments(ctx, Filters(), Page(limit=500))
    assert any("[EMAIL]" in c["comment"] or "[NAME]" in c["comment"] for c in found["items"])
    assert_no_phi(
        [
            found,
            feedback.nps_trend(ctx, Filters(), "day"),
            feedback.rating_distribution(ctx, Filters()),
        ],
        phi,
    )

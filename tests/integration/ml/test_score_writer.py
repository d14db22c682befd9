"""Scores land in gold under the write lock, are published, and survive the next build."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from pharmaflow.errors import PharmaflowError
from pharmaflow.ml.score import Scored, write_scores
from pharmaflow.warehouse import publish
from tests.ml_data import ml_config, ml_settings


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory):
    from pharmaflow.cli.ingest import run_ingest
    from pharmaflow.simulate.simulator import simulate
    from pharmaflow.warehouse.runner import build

    folder = tmp_path_factory.mktemp("scores")
    settings = ml_settings(folder / "data")
    events = folder / "events.jsonl"
    simulate(ml_config(days=4, scale=0.08), events)
    run_ingest(settings, str(events))
    assert build(settings).success
    return settings, events


def _read(settings, sql: str) -> list[tuple]:
    # default configuration: dbt ran in this process and DuckDB shares its open instance
    with duckdb.connect(str(settings.warehouse_path)) as con:
        return con.execute(sql).fetchall()


def _stamp(frame: pd.DataFrame, version: str = "3") -> pd.DataFrame:
    frame = frame.copy()
    frame["model_name"] = "pharmaflow-test"
    frame["model_version"] = version
    frame["scored_at"] = datetime.now(UTC).replace(tzinfo=None)
    return frame


def test_score_tables_exist_empty_after_a_build(small) -> None:
    settings, _ = small
    for table in (
        "ml_shipment_delay_scores",
        "ml_demand_forecast",
        "ml_price_elasticity",
        "ml_survey_sentiment",
    ):
        assert _read(settings, f"select count(*) from gold.{table}") == [(0,)]


def test_sentiment_lands_on_fact_survey_and_survives_a_rebuild(small) -> None:
    from pharmaflow.warehouse.runner import build

    settings, _ = small
    surveys = [r[0] for r in _read(settings, "select survey_id from gold.fact_survey")]
    assert surveys
    labels = ["NEGATIVE" if i % 3 == 0 else "POSITIVE" for i in range(len(surveys))]
    frame = _stamp(
        pd.DataFrame(
            {
                "survey_id": surveys,
                "sentiment_label": labels,
                "sentiment_score": [-0.5 if lab == "NEGATIVE" else 0.6 for lab in labels],
            }
        )
    )
    before = publish.current(settings.snapshots_dir)
    write_scores(
        settings,
        [
            Scored(
                "survey_sentiment",
                "gold.ml_survey_sentiment",
                "pharmaflow-test",
                "3",
                len(frame),
                frame=frame,
            )
        ],
    )
    after = publish.current(settings.snapshots_dir)
    assert after is not None and before is not None and after.id != before.id  # republished
    expected = sorted(zip(surveys, labels, strict=True))
    query = (
        "select survey_id, sentiment_label from gold.fact_survey "
        "where sentiment_model_version = '3' order by 1"
    )
    assert _read(settings, query) == expected
    with duckdb.connect(str(after.path), read_only=True) as con:  # what serving reads
        assert con.execute(query).fetchall() == expected
    # a full rebuild recomputes fact_survey from silver: its join keeps the scores
    assert build(settings, full_refresh=True).success
    assert _read(settings, query) == expected


def test_a_frame_that_does_not_match_its_table_writes_nothing(small) -> None:
    settings, _ = small
    good = _stamp(
        pd.DataFrame(
            {
                "shipment_id": ["S1"],
                "created_at": [datetime(2026, 1, 1)],
                "carrier_id": ["C"],
                "service_level": ["GROUND"],
                "delay_probability": [0.7],
                "predicted_late": [True],
            }
        )
    )
    bad = good.drop(columns=["predicted_late"])
    results = [
        Scored("shipment_delay", "gold.ml_shipment_delay_scores", "m", "1", 1, frame=good),
        Scored("demand_forecast", "gold.ml_demand_forecast", "m", "1", 1, frame=bad),
    ]
    with pytest.raises(PharmaflowError, match="nothing was written"):
        write_scores(settings, results)
    # one transaction: the good table was not written either
    assert _read(settings, "select count(*) from gold.ml_shipment_delay_scores") == [(0,)]


def test_scores_replace_the_previous_ones(small, tmp_path: Path) -> None:
    settings, _ = small

    def frame(n: int, version: str) -> pd.DataFrame:
        return _stamp(
            pd.DataFrame(
                {
                    "ndc": [f"N{i}" for i in range(n)],
                    "elasticity": [-1.0] * n,
                    "ci_low": [-1.2] * n,
                    "ci_high": [-0.8] * n,
                    "method": ["dml"] * n,
                }
            ),
            version,
        )

    for n, version in ((5, "1"), (3, "2")):
        write_scores(
            settings,
            [
                Scored(
                    "price_elasticity",
                    "gold.ml_price_elasticity",
                    "m",
                    version,
                    n,
                    frame=frame(n, version),
                )
            ],
        )
    assert _read(settings, "select count(*), min(model_version) from gold.ml_price_elasticity") == [
        (3, "2")
    ]

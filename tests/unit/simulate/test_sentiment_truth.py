"""Survey comments are written with a known sentiment, kept beside the events (truth table
`survey_sentiment`), drawn from the delivery experience, and worded with enough variety (and
hard cases) that a model has something real to learn."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

import orjson
import pandas as pd
import pytest

from pharmaflow.simulate import SimConfig, feedback, names
from pharmaflow.simulate.simulator import SimOutput, generate
from pharmaflow.simulate.truth import SURVEY_SENTIMENT
from tests.unit.simulate.conftest import NO_FAULTS

CONFIG = SimConfig(seed=3, days=14, scale=0.1, **NO_FAULTS)
TINY = SimConfig(seed=4, days=3, scale=0.05, **NO_FAULTS)
SURVEY = "feedback.survey.submitted"


@dataclass(frozen=True)
class Window:
    output: SimOutput
    events: list[dict[str, Any]]
    truth: pd.DataFrame

    def surveys(self) -> pd.DataFrame:
        rows = [e["payload"] for e in self.events if e["event_type"] == SURVEY]
        return pd.DataFrame(rows).merge(self.truth, on="survey_id", how="outer", indicator=True)


def _window(config: SimConfig) -> Window:
    output = generate(config)
    events = [orjson.loads(line) for line in output.lines]
    return Window(output, events, output.truth.table(SURVEY_SENTIMENT).to_pandas())


@pytest.fixture(scope="module")
def window() -> Window:
    return _window(CONFIG)


def _plain(text: str) -> str:
    """A comment with its odd Unicode undone (full-width marks, curly apostrophes)."""
    return unicodedata.normalize("NFKC", text).replace("\u2019", "'")


def test_every_survey_has_one_truth_row_and_no_event_carries_it(window: Window) -> None:
    surveys = window.surveys()
    assert len(surveys) > 150
    assert (surveys["_merge"] == "both").all()  # the same surveys on both sides
    assert window.truth["survey_id"].is_unique
    assert set(window.truth["sentiment"]) == set(feedback.SENTIMENTS)
    assert (surveys["has_comment"] == surveys["comment"].notna()).all()
    assert (surveys.loc[~surveys["has_comment"], "style"] == "").all()
    for e in window.events:
        if e["event_type"] == SURVEY:
            assert set(e["payload"]) <= {"survey_id", "order_id", "rating", "nps", "comment"}
            text = orjson.dumps(e).decode()
            assert not any(s in text for s in feedback.SENTIMENTS)


def test_each_comment_opens_with_a_sentence_of_its_topic_and_sentiment(window: Window) -> None:
    surveys = window.surveys()
    commented = surveys[surveys["has_comment"]]
    for comment, topic, sentiment in commented[["comment", "topic", "sentiment"]].itertuples(
        index=False
    ):
        pool = [text for text, _ in feedback.CORE[topic][sentiment]]
        assert any(_plain(comment).startswith(_plain(t)) for t in pool), (topic, sentiment)


def test_sentiment_follows_the_delivery_experience(window: Window) -> None:
    surveys = window.surveys()
    rating = surveys.groupby("sentiment")["rating"].mean()
    assert rating["POSITIVE"] > rating["NEUTRAL"] > rating["NEGATIVE"]
    negative = surveys["sentiment"] == "NEGATIVE"
    troubled = surveys["topic"] != "on_time"
    assert troubled.sum() >= 10
    assert negative[troubled].mean() > negative[~troubled].mean()


def test_the_wording_is_varied_with_hard_cases(window: Window) -> None:
    surveys = window.surveys()
    commented = surveys[surveys["has_comment"]]
    assert commented["comment"].nunique() >= 60
    assert set(commented["style"]) == {"plain", "mixed", "implicit", "sarcasm"}
    assert commented["comment"].map(lambda c: not c.isascii()).sum() >= 3  # decorated
    assert 0.05 <= 1 - surveys["has_comment"].mean() <= 0.3  # some leave it blank
    shares = surveys["sentiment"].value_counts(normalize=True)
    assert shares.min() >= 0.05 and shares.max() <= 0.8  # no class is trivial to ignore


def test_no_sentence_uses_a_patient_name_as_a_word() -> None:
    """The PHI tests search the lake for pool names: a template word that is one would turn
    every such comment into a false leak (and a false name count in PhiStats)."""
    pool = {n.lower() for n in (*names.FIRST_NAMES, *names.LAST_NAMES)}
    sentences = [t for topics in feedback.CORE.values() for pool_ in topics.values()
                 for t, _ in pool_]  # fmt: skip
    sentences += [t for pool_ in feedback.EXTRA.values() for t, _ in pool_]
    words = {w.lower() for t in sentences for w in re.findall(r"[A-Za-z]+", t)}
    assert words and not words & pool


def test_rewording_moves_no_rating_and_no_other_domain(monkeypatch: pytest.MonkeyPatch) -> None:
    """Wording draws come from their own stream: changing how comments are written leaves
    every rating, NPS, time and id, and every event of another domain, as it was."""
    before = _window(TINY)
    monkeypatch.setattr(feedback, "EXTRA_SHARE", 0.9)
    monkeypatch.setattr(feedback, "DECORATED_SHARE", 0.6)
    after = _window(TINY)

    def without_comments(w: Window) -> list[dict[str, Any]]:
        out = []
        for e in w.events:
            if e["event_type"] == SURVEY:
                e = {**e, "payload": {k: v for k, v in e["payload"].items() if k != "comment"}}
            out.append(e)
        return sorted(out, key=lambda e: e["event_id"])

    assert without_comments(before) == without_comments(after)
    comments = [w.surveys()["comment"].dropna().tolist() for w in (before, after)]
    assert comments[0] != comments[1]  # the change did reach the wording
    pd.testing.assert_series_equal(before.truth["sentiment"], after.truth["sentiment"])

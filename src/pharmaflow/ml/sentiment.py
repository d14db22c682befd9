"""Sentiment of survey comments: VADER's compound score, cut into three labels by two
thresholds tuned on the training period.

Why VADER: it ships its lexicon (no download, no GPU, nothing to train that could memorise a
patient's words), scores a comment in microseconds and is explainable (a score per word). What
is learnt is only where to cut its compound score (-1..1) into NEGATIVE / NEUTRAL / POSITIVE:
VADER's standard cut is +-0.05, but survey comments are not tweets, and the best cut is found
on labelled comments of the training period (a grid of 0.01 steps, macro-F1, ties broken
towards the standard cut). Text is normalised first (NFKC, so full-width punctuation reads as
ASCII; curly apostrophes, U+2019, as straight ones, so VADER sees the negation in a "didn't"
typed on a phone).

Labels. `labels="auto"` (the default) uses labelled comments when there are any: the
simulator's ground truth (`survey_sentiment`, simulate/truth.py) stands in for the sample a
feedback team labels by hand, so training and the holdout read labels for the surveys it
covers. Without labels, training means fitting the cut to a WEAK label: the NPS category of
the same survey (PROMOTER POSITIVE, PASSIVE NEUTRAL, DETRACTOR NEGATIVE). Why NPS and not the
star rating: ratings bunch at 4-5 (93% of simulated surveys), so a rating label calls nearly
every comment POSITIVE and the cut tuned on it is useless; the NPS bands are spread like the
comments' sentiment. Measured on the 9-week test window, against the truth of the holdout:
cut tuned on the truth 0.82 accuracy / 0.71 macro-F1, on NPS weak labels 0.80 / 0.67, on
rating weak labels 0.56 / 0.29, VADER's standard cut 0.73 / 0.61. With weak labels the holdout
metrics are agreement with the NPS category, not accuracy, and `params["label_source"]` and
the model card say so.

Split: time-based on `submitted_at` (gold.fact_survey): the last `holdout_days` days are the
holdout, everything before trains. Only surveys with a non-blank comment are used or scored.
Baseline: the majority class of the training labels. `tables` adds the NPS-category rule and
the untuned VADER cut on the same holdout, the confusion matrix, per-class figures and (with
ground truth) accuracy per writing style of the simulator — counts only: no comment text is
ever logged, in params, tables or the input example (a fixed made-up pair of sentences).

`params` (all optional):
* `holdout_days` (int, 14): days at the end that form the holdout.
* `labels` ("auto" | "truth" | "weak"): where training labels come from ("truth" fails when
  there are none).
* `neg_threshold`, `pos_threshold` (float): a fixed cut instead of a tuned one (NEGATIVE at
  or below the first, POSITIVE at or above the second). `{"neg_threshold": -0.9,
  "pos_threshold": 0.9}` is a deliberately weak model.
* `normalize` (bool, True): NFKC and straight apostrophes before scoring.
`seed` is logged but changes nothing: nothing here is random.
"""

from __future__ import annotations

import unicodedata
from datetime import date, timedelta
from functools import cache
from typing import Any

import numpy as np
import pandas as pd

from pharmaflow.errors import PharmaflowError
from pharmaflow.ml.data import MlData
from pharmaflow.ml.spec import Trained
from pharmaflow.simulate.truth import SURVEY_SENTIMENT, read_truth

TASK = "survey_sentiment"
MODEL_NAME = "pharmaflow-survey-sentiment"
SCORES_TABLE = "gold.ml_survey_sentiment"

LABELS = ("NEGATIVE", "NEUTRAL", "POSITIVE")
STANDARD_CUT = (-0.05, 0.05)  # VADER's own thresholds
HOLDOUT_DAYS = 14
MIN_LABELLED = 30  # training labels needed to tune a cut (fewer: the standard cut)
GRID = np.round(np.arange(-100, 101) / 100, 2)  # candidate thresholds, 0.01 apart
FEATURES = ["comment"]
# What predict() takes, for the model signature: made up, never a real comment.
EXAMPLE = pd.DataFrame(
    {"comment": ["Arrived on time, thank you!", "The parcel was late and nobody called."]}
)
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"'})
_SQL = """
    select survey_id, submitted_at, rating, nps, nps_category, comment
    from gold.fact_survey
    where comment is not null and trim(comment) <> ''
    order by submitted_at, survey_id
"""


@cache
def _analyzer() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def normalize_text(text: str) -> str:
    """NFKC (full-width letters and punctuation as ASCII) and straight quotes."""
    return unicodedata.normalize("NFKC", text).translate(_APOSTROPHES)


def compound_scores(comments: pd.Series | list[Any], *, normalize: bool = True) -> np.ndarray:
    """VADER's compound score per comment (-1..1); NaN where there is no text."""
    analyzer = _analyzer()
    out = np.full(len(comments), np.nan)
    for i, text in enumerate(comments):
        if isinstance(text, str) and text.strip():
            out[i] = analyzer.polarity_scores(normalize_text(text) if normalize else text)[
                "compound"
            ]
    return out


def cut(scores: np.ndarray, neg_threshold: float, pos_threshold: float) -> np.ndarray:
    """Labels for compound scores: NEGATIVE at or below `neg_threshold`, POSITIVE at or above
    `pos_threshold`, NEUTRAL between; None where the score is NaN (no text)."""
    scores = np.asarray(scores, dtype=float)
    labels = np.where(
        scores <= neg_threshold,
        "NEGATIVE",
        np.where(scores >= pos_threshold, "POSITIVE", "NEUTRAL"),
    ).astype(object)
    labels[np.isnan(scores)] = None
    return labels


class SentimentModel:
    """VADER plus a two-threshold cut. Picklable: only the thresholds are kept (the analyzer
    and its lexicon load on first use)."""

    def __init__(self, neg_threshold: float, pos_threshold: float, normalize: bool = True):
        if not neg_threshold < pos_threshold:
            raise ValueError(f"thresholds must rise: {neg_threshold} !< {pos_threshold}")
        self.neg_threshold = float(neg_threshold)
        self.pos_threshold = float(pos_threshold)
        self.normalize = bool(normalize)

    def scores(self, comments: pd.Series | list[Any]) -> np.ndarray:
        return compound_scores(comments, normalize=self.normalize)

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """`sentiment_label` and `sentiment_score` (compound) per row of `frame["comment"]`;
        both missing where a row has no text."""
        scores = self.scores(frame["comment"].tolist())
        return pd.DataFrame(
            {
                "sentiment_label": cut(scores, self.neg_threshold, self.pos_threshold),
                "sentiment_score": scores,
            },
            index=frame.index,
        )


# ---- metrics ------------------------------------------------------------------------------


def confusion(truth: np.ndarray, predicted: np.ndarray) -> pd.DataFrame:
    """Counts: a row per true label, a column per predicted label (LABELS order)."""
    index = {label: i for i, label in enumerate(LABELS)}
    matrix = np.zeros((len(LABELS), len(LABELS)), dtype=np.int64)
    t = np.array([index.get(v, -1) for v in truth])
    p = np.array([index.get(v, -1) for v in predicted])
    keep = (t >= 0) & (p >= 0)
    np.add.at(matrix, (t[keep], p[keep]), 1)
    return pd.DataFrame(matrix, index=pd.Index(LABELS, name="true"), columns=list(LABELS))


def _per_class(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tp = np.diag(matrix).astype(float)
    predicted, actual = matrix.sum(axis=0), matrix.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(tp), where=total > 0)
    return precision, recall, f1


def metrics(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Accuracy, macro-F1 over the three labels (a label absent from both counts as 0) and
    F1 per label. A missing prediction (no text) counts as wrong."""
    matrix = confusion(truth, predicted).to_numpy()
    n = len(truth)
    _, _, f1 = _per_class(matrix)
    out = {
        "accuracy": float(np.trace(matrix) / n) if n else 0.0,
        "macro_f1": float(f1.mean()),
    }
    out.update({f"f1_{label.lower()}": float(v) for label, v in zip(LABELS, f1, strict=True)})
    return out


def tune_cut(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """The (neg, pos) thresholds on GRID with the best macro-F1 on these labels, ties broken
    towards VADER's standard cut. All pairs at once from cumulative counts per label (no
    loop over pairs): NEGATIVE counts are those at or below neg, POSITIVE at or above pos."""
    keep = ~np.isnan(scores)
    scores, labels = scores[keep], np.asarray(labels, dtype=object)[keep]
    k = len(GRID)
    at_or_below = np.zeros((len(LABELS), k))
    at_or_above = np.zeros((len(LABELS), k))
    for c, label in enumerate(LABELS):
        s = np.sort(scores[labels == label])
        at_or_below[c] = np.searchsorted(s, GRID, side="right")
        at_or_above[c] = len(s) - np.searchsorted(s, GRID, side="left")
    support = np.array([(labels == label).sum() for label in LABELS], dtype=float)
    # confusion[true, predicted] for every pair (i: neg index, j: pos index): (3, 3, k, k)
    neg = at_or_below[:, :, None] * np.ones(k)[None, None, :]
    pos = at_or_above[:, None, :] * np.ones(k)[None, :, None]
    mid = support[:, None, None] - neg - pos
    cells = np.stack([neg, mid, pos], axis=1)  # (true, predicted, i, j)
    tp = np.stack([cells[c, c] for c in range(len(LABELS))])
    predicted = cells.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support[:, None, None] > 0, tp / support[:, None, None], 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0)
    macro = f1.mean(axis=0)
    valid = GRID[:, None] < GRID[None, :]
    macro = np.where(valid, macro, -1.0)
    best = macro.max()
    i, j = np.nonzero(np.isclose(macro, best, rtol=0, atol=1e-12))
    distance = np.abs(GRID[i] - STANDARD_CUT[0]) + np.abs(GRID[j] - STANDARD_CUT[1])
    pick = int(np.argmin(distance))
    return float(GRID[i[pick]]), float(GRID[j[pick]])


# ---- data and labels ----------------------------------------------------------------------


def weak_label(category: pd.Series) -> np.ndarray:
    """The weak label and the NPS-category rule: PROMOTER, PASSIVE, DETRACTOR as POSITIVE,
    NEUTRAL, NEGATIVE (None where the category is missing)."""
    mapping = {"PROMOTER": "POSITIVE", "PASSIVE": "NEUTRAL", "DETRACTOR": "NEGATIVE"}
    return category.map(mapping).to_numpy(dtype=object)


def surveys(data: MlData) -> pd.DataFrame:
    """Every survey with a non-blank comment, oldest first."""
    frame = data.frame(_SQL)
    frame["submitted_at"] = pd.to_datetime(frame["submitted_at"])
    return frame


def truth_labels(data: MlData) -> pd.DataFrame | None:
    """survey_id, label, style from the ground truth, or None without one."""
    table = read_truth(data.settings.truth_dir, SURVEY_SENTIMENT)
    if table is None or table.num_rows == 0:
        return None
    frame = table.to_pandas()
    out = pd.DataFrame({"survey_id": frame["survey_id"], "label": frame["sentiment"]})
    out["style"] = frame.get("style", "")
    return out


def with_labels(frame: pd.DataFrame, truth: pd.DataFrame | None, source: str) -> pd.DataFrame:
    """`frame` with `label` (and `style`) columns, from the truth or the weak label."""
    if source == "truth":
        if truth is None:
            raise PharmaflowError("no labelled comments (ground truth survey_sentiment) found")
        labelled = frame.merge(truth, on="survey_id", how="inner")
        return labelled.sort_values(["submitted_at", "survey_id"]).reset_index(drop=True)
    out = frame.copy()
    out["label"] = weak_label(out["nps_category"])
    out["style"] = ""
    return out[out["label"].notna()].reset_index(drop=True)


def split(frame: pd.DataFrame, holdout_days: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The last `holdout_days` calendar days (UTC, by submitted_at) and what came before."""
    if frame.empty:
        raise PharmaflowError("no survey comments in gold.fact_survey to train on")
    days = frame["submitted_at"].dt.date
    first_holdout = days.max() - timedelta(days=holdout_days - 1)
    holdout = frame[days >= first_holdout].reset_index(drop=True)
    fit = frame[days < first_holdout].reset_index(drop=True)
    if fit.empty:
        raise PharmaflowError(
            f"survey comments span {(days.max() - days.min()).days + 1} days: the holdout "
            f"takes the last {holdout_days}, which leaves nothing to train on"
        )
    return fit, holdout


def _window(frame: pd.DataFrame) -> tuple[date, date]:
    days = frame["submitted_at"].dt.date
    return days.min(), days.max()


# ---- the task contract --------------------------------------------------------------------


def evaluate(model: Any, holdout: pd.DataFrame) -> dict[str, float]:
    """Metrics of `model` on holdout rows (columns comment and label)."""
    predicted = model.predict(holdout[FEATURES])["sentiment_label"].to_numpy(dtype=object)
    return metrics(holdout["label"].to_numpy(dtype=object), predicted)


def train(data: MlData, *, seed: int, params: dict | None = None) -> Trained:
    """Tune the cut on the training period, judge it on the holdout (module docstring)."""
    params = dict(params or {})
    holdout_days = int(params.get("holdout_days", HOLDOUT_DAYS))
    normalize = bool(params.get("normalize", True))
    wanted = str(params.get("labels", "auto"))
    if wanted not in ("auto", "truth", "weak"):
        raise PharmaflowError(f"sentiment labels {wanted!r}: pick auto, truth or weak")

    comments = surveys(data)
    truth = truth_labels(data) if wanted != "weak" else None
    if wanted == "auto":
        covered = truth is not None and comments["survey_id"].isin(truth["survey_id"]).any()
        source = "truth" if covered else "weak"
    else:
        source = wanted
    labelled = with_labels(comments, truth, source)
    fit, holdout = split(labelled, holdout_days)

    fit_scores = compound_scores(fit["comment"], normalize=normalize)
    fixed = "neg_threshold" in params or "pos_threshold" in params
    if fixed:
        neg = float(params.get("neg_threshold", STANDARD_CUT[0]))
        pos = float(params.get("pos_threshold", STANDARD_CUT[1]))
        how = "fixed"
    elif len(fit) >= MIN_LABELLED:
        neg, pos = tune_cut(fit_scores, fit["label"].to_numpy(dtype=object))
        how = "tuned"
    else:
        neg, pos = STANDARD_CUT
        how = "standard (too few training labels to tune)"
    model = SentimentModel(neg, pos, normalize=normalize)

    truth_holdout = holdout["label"].to_numpy(dtype=object)
    holdout_scores = model.scores(holdout["comment"])
    predicted = cut(holdout_scores, neg, pos)
    scores = metrics(truth_holdout, predicted)
    majority = str(pd.Series(fit["label"]).value_counts().sort_index().idxmax())
    baseline = metrics(truth_holdout, np.full(len(holdout), majority, dtype=object))
    return Trained(
        task=TASK,
        model=model,
        metrics=scores,
        baseline=baseline,
        primary="macro_f1",
        higher_is_better=True,
        params={
            "label_source": source,
            "cut": how,
            "neg_threshold": neg,
            "pos_threshold": pos,
            "normalize": normalize,
            "holdout_days": holdout_days,
            "majority_class": majority,
            "seed": seed,
        },
        features=list(FEATURES),
        train_window=_window(fit),
        holdout_window=_window(holdout),
        input_example=EXAMPLE.copy(),
        holdout=holdout[["survey_id", "submitted_at", "comment", "label"]].copy(),
        baseline_name=f"majority class of the training labels ({majority})",
        limits=_limits(source),
        tables=_tables(holdout, holdout_scores, predicted, majority, fit_scores, fit, model),
        rows={"train": len(fit), "holdout": len(holdout)},
    )


def score(model: Any, data: MlData) -> pd.DataFrame:
    """survey_id, sentiment_label, sentiment_score for every survey with a comment."""
    frame = surveys(data)
    predicted = model.predict(frame[FEATURES])
    return pd.DataFrame(
        {
            "survey_id": frame["survey_id"].to_numpy(),
            "sentiment_label": predicted["sentiment_label"].to_numpy(dtype=object),
            "sentiment_score": predicted["sentiment_score"].to_numpy(dtype=float),
        }
    )


def _limits(source: str) -> list[str]:
    limits = [
        "A lexicon reads words, not intent: sarcasm (praise words for a late parcel) scores "
        "as praise, and a complaint stated in neutral words (what went wrong, no adjective) "
        "as NEUTRAL.",
        "English only; scrubbed placeholders ([NAME], [EMAIL]) carry no sentiment.",
        "Only the two thresholds are learnt: no word of a comment is, so wording that moves "
        "away from the training period is not followed, and no drift check watches it (the "
        "drift check of `pharmaflow score` covers the delay and demand features only).",
    ]
    if source == "weak":
        limits.append(
            "Trained and judged without labelled comments: the labels are the surveys' NPS "
            "categories (promoter / passive / detractor), so the metrics are agreement with "
            "the NPS answer, not accuracy against what the comment says."
        )
    return limits


def _tables(
    holdout: pd.DataFrame,
    scores: np.ndarray,
    predicted: np.ndarray,
    majority: str,
    fit_scores: np.ndarray,
    fit: pd.DataFrame,
    model: SentimentModel,
) -> dict[str, pd.DataFrame]:
    """Counts and figures only (never a comment): confusion matrix, per class, baselines,
    the cut's macro-F1 on training, and accuracy per writing style when the truth has it."""
    truth = holdout["label"].to_numpy(dtype=object)
    matrix = confusion(truth, predicted)
    precision, recall, f1 = _per_class(matrix.to_numpy())
    per_class = pd.DataFrame(
        {
            "label": list(LABELS),
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": matrix.to_numpy().sum(axis=1),
        }
    )
    rules = {
        "model (tuned cut)": predicted,
        "vader standard cut (+-0.05)": cut(scores, *STANDARD_CUT),
        "nps category rule": weak_label(holdout["nps_category"]),
        f"majority class ({majority})": np.full(len(holdout), majority, dtype=object),
    }
    baselines = pd.DataFrame(
        [{"rule": name, **metrics(truth, labels)} for name, labels in rules.items()]
    )
    fit_metrics = metrics(
        fit["label"].to_numpy(dtype=object),
        cut(fit_scores, model.neg_threshold, model.pos_threshold),
    )
    cut_table = pd.DataFrame(
        [
            {
                "neg_threshold": model.neg_threshold,
                "pos_threshold": model.pos_threshold,
                "train_accuracy": fit_metrics["accuracy"],
                "train_macro_f1": fit_metrics["macro_f1"],
            }
        ]
    )
    tables = {
        "confusion_matrix": matrix.reset_index(),
        "per_class": per_class,
        "baselines": baselines,
        "cut": cut_table,
    }
    styles = holdout["style"].fillna("").to_numpy(dtype=object)
    if (styles != "").any():
        right = truth == predicted
        tables["by_style"] = (
            pd.DataFrame({"style": styles, "right": right})
            .groupby("style", as_index=False)
            .agg(rows=("right", "size"), accuracy=("right", "mean"))
        )
    return tables

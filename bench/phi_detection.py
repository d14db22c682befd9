"""PHI detection quality: precision and recall per label on a labelled set of free-text samples.

Two configurations side by side: the pattern rules alone (`scrub.py`), and patterns plus the
unseen-name/address detector (`detect.py`). No patient is known to either (the name-token rule
needs the vault and is exact by construction), so names here are all "not seen yet".

Each sample is a text and the PHI substrings it holds with their labels; texts without PHI are
hard negatives (drug and facility names, lots, NDCs, temperatures, "Dr." titles, common words
that are also names). A predicted span counts as right when it overlaps a gold span of the same
label; a gold span counts as found when a predicted span of its label overlaps it.

    python bench/phi_detection.py [--samples tests/data/phi_samples.jsonl] [--json]
"""

from __future__ import annotations

import argparse
import json
import unicodedata
from collections import Counter
from collections.abc import Callable
from difflib import SequenceMatcher
from pathlib import Path

from pharmaflow.ingest.phi.detect import Detector
from pharmaflow.ingest.phi.scrub import LABELS, normalise, scrub_patterns

DEFAULT_SAMPLES = Path(__file__).resolve().parents[1] / "tests" / "data" / "phi_samples.jsonl"
ALL_LABELS = (*LABELS, "NAME")
# Each label becomes one private-use character, which matches nothing in the input: the
# alignment of input and output then shows exactly which input span each label replaced.
_SENTINEL = {f"[{label}]": chr(0xE000 + i) for i, label in enumerate(ALL_LABELS)}
_LABEL_OF = {v: k[1:-1] for k, v in _SENTINEL.items()}

Span = tuple[int, int, str]


def load_samples(path: Path = DEFAULT_SAMPLES) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def gold_spans(sample: dict) -> tuple[str, list[Span]]:
    """The NFKC text (what the rules see) and its labelled spans."""
    text = unicodedata.normalize("NFKC", sample["text"])
    spans: list[Span] = []
    for value, label in sample["phi"]:
        value = unicodedata.normalize("NFKC", value)
        start = text.find(value)
        if start < 0:
            raise ValueError(f"gold value not in its text: {value!r}")
        spans.append((start, start + len(value), label))
    return text, spans


def predicted_spans(text: str, scrubbed: str) -> list[Span]:
    """Input spans replaced by a label, from aligning the input with the scrubbed output."""
    for label, mark in _SENTINEL.items():
        scrubbed = scrubbed.replace(label, mark)
    spans: list[Span] = []
    matcher = SequenceMatcher(None, text, scrubbed, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op not in ("replace", "delete", "insert"):
            continue
        marks = [c for c in scrubbed[j1:j2] if c in _LABEL_OF]
        for label in dict.fromkeys(_LABEL_OF[m] for m in marks):
            spans.append((i1, max(i2, i1 + 1), label))
    return spans


def patterns_only(texts: list[str]) -> list[str]:
    return [scrub_patterns(normalise(t)) for t in texts]


def with_detector(detector: Detector) -> Callable[[list[str]], list[str]]:
    def run(texts: list[str]) -> list[str]:
        return [detector.scrub(t) for t in patterns_only(texts)]

    return run


def evaluate(samples: list[dict], scrubber: Callable[[list[str]], list[str]]) -> dict:
    """Per label and overall: true positives, false positives, false negatives, P and R."""
    golds = [gold_spans(s) for s in samples]
    outputs = scrubber([t for t, _ in golds])
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for (text, gold), out in zip(golds, outputs, strict=True):
        predicted = predicted_spans(text, out)

        def overlaps(a: Span, b: Span) -> bool:
            return a[2] == b[2] and a[0] < b[1] and b[0] < a[1]

        for p in predicted:
            (tp if any(overlaps(p, g) for g in gold) else fp)[p[2]] += 1
        for g in gold:
            if not any(overlaps(g, p) for p in predicted):
                fn[g[2]] += 1
    report: dict[str, dict[str, float]] = {}
    for label in (*ALL_LABELS, "overall"):
        if label == "overall":
            t, f, n = sum(tp.values()), sum(fp.values()), sum(fn.values())
        else:
            t, f, n = tp[label], fp[label], fn[label]
        report[label] = {
            "tp": t,
            "fp": f,
            "fn": n,
            "precision": round(t / (t + f), 3) if t + f else 1.0,
            "recall": round(t / (t + n), 3) if t + n else 1.0,
        }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=Path, default=DEFAULT_SAMPLES)
    parser.add_argument("--json", action="store_true", help="print figures as JSON last line")
    args = parser.parse_args()
    samples = load_samples(args.samples)
    results = {
        "patterns": evaluate(samples, patterns_only),
        "patterns+detector": evaluate(samples, with_detector(Detector())),
    }
    gold = Counter(label for s in samples for _, label in s["phi"])
    print(f"{len(samples)} samples, {sum(gold.values())} PHI spans, "
          f"{sum(1 for s in samples if not s['phi'])} without PHI")  # fmt: skip
    print(f"{'label':<10}{'gold':>6}  {'patterns P / R':>16}  {'+ detector P / R':>18}")
    for label in (*ALL_LABELS, "overall"):
        a, b = results["patterns"][label], results["patterns+detector"][label]
        n = gold[label] if label != "overall" else sum(gold.values())
        print(
            f"{label:<10}{n:>6}  {a['precision']:>7.3f} / {a['recall']:<6.3f}"
            f"  {b['precision']:>9.3f} / {b['recall']:<6.3f}"
        )
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()

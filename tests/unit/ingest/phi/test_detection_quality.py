"""Quality gate for free-text PHI detection on the labelled samples (tests/data/phi_samples.jsonl).

Floors are the figures measured by `bench/phi_detection.py` when the detector was built, less
a small margin: a change that loses recall on names or addresses, or makes a pattern rule miss
or over-match its own label, fails here. Not a timing test.
"""

import importlib.util
from pathlib import Path

import pytest

from pharmaflow.ingest.phi.detect import Detector

_BENCH = Path(__file__).resolve().parents[4] / "bench" / "phi_detection.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("phi_detection", _BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def samples(bench):
    return bench.load_samples()


def test_the_sample_set_is_large_and_has_hard_negatives(samples):
    assert len(samples) >= 150
    assert sum(1 for s in samples if not s["phi"]) >= 60
    labels = {label for s in samples for _, label in s["phi"]}
    assert labels == {"EMAIL", "PHONE", "SSN", "MRN", "DATE", "ADDRESS", "NAME"}


def test_patterns_alone_are_exact_on_their_own_labels(bench, samples):
    report = bench.evaluate(samples, bench.patterns_only)
    for label in ("EMAIL", "PHONE", "SSN", "MRN", "DATE"):
        assert (report[label]["precision"], report[label]["recall"]) == (1.0, 1.0), label
    assert report["ADDRESS"]["precision"] == 1.0
    assert report["NAME"]["tp"] == report["NAME"]["fp"] == 0  # patterns never guess names


def test_the_detector_finds_unseen_names_and_addresses(bench, samples):
    report = bench.evaluate(samples, bench.with_detector(Detector()))
    # measured: NAME recall 0.976, precision 0.889; ADDRESS recall 1.0, precision 1.0
    assert report["NAME"]["recall"] >= 0.95
    assert report["NAME"]["precision"] >= 0.85
    assert report["ADDRESS"]["recall"] >= 0.95
    assert report["ADDRESS"]["precision"] >= 0.95
    # and it costs the pattern labels nothing
    for label in ("EMAIL", "PHONE", "SSN", "MRN", "DATE"):
        assert report[label]["recall"] == 1.0, label

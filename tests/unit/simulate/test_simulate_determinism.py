"""Same config, same bytes; the file appears atomically; progress is reported."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from pharmaflow.simulate import SimConfig, patient_pool, simulate

TINY = SimConfig(seed=21, days=2, scale=0.05)


def _stats_without_timing(stats: object) -> dict[str, object]:
    fields = dict(vars(stats))
    fields.pop("seconds")
    return fields


def test_same_config_gives_identical_bytes_and_stats(tmp_path: Path) -> None:
    first = simulate(TINY, tmp_path / "a.jsonl")
    second = simulate(TINY, tmp_path / "b.jsonl")
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert _stats_without_timing(first) == _stats_without_timing(second)
    assert patient_pool(TINY) == patient_pool(TINY)


def test_a_different_seed_gives_a_different_stream(tmp_path: Path) -> None:
    simulate(TINY, tmp_path / "a.jsonl")
    simulate(TINY.model_copy(update={"seed": 22}), tmp_path / "b.jsonl")
    assert (tmp_path / "a.jsonl").read_bytes() != (tmp_path / "b.jsonl").read_bytes()
    assert patient_pool(TINY) != patient_pool(TINY.model_copy(update={"seed": 22}))


def test_scale_multiplies_volume(tmp_path: Path) -> None:
    small = simulate(TINY, tmp_path / "a.jsonl")
    large = simulate(TINY.model_copy(update={"scale": 0.2}), tmp_path / "b.jsonl")
    placed = "pharmacy.order.placed"
    assert large.by_type[placed] > 2.5 * small.by_type[placed]


def test_output_is_replaced_atomically_and_progress_reaches_the_total(tmp_path: Path) -> None:
    out = tmp_path / "nested" / "events.jsonl"
    out.parent.mkdir()
    out.write_text("stale\n")
    calls: list[tuple[int, int]] = []
    stats = simulate(TINY, out, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (stats.lines, stats.lines)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert out.read_bytes().count(b"\n") == stats.lines
    assert sorted(p.name for p in out.parent.iterdir()) == ["events.jsonl"]  # no temp left


@pytest.mark.parametrize(
    "bad", [{"days": 0}, {"scale": 0}, {"scale": -1}, {"late_rate": -0.1}, {"colour": "red"}]
)
def test_config_rejects_nonsense(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        SimConfig(**bad)


def test_config_defaults_match_the_brief() -> None:
    config = SimConfig()
    assert (config.seed, config.days, config.scale) == (42, 7, 1.0)
    assert str(config.start) == "2026-11-01"
    assert (
        config.duplicate_rate,
        config.late_rate,
        config.out_of_order_rate,
        config.malformed_rate,
    ) == (0.01, 0.02, 0.02, 0.005)
    assert config.end_ms - config.start_ms == 7 * 86_400_000

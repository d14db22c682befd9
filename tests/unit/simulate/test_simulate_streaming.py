"""`simulate` renders and writes chunk by chunk: the file is the same bytes as the window
rendered whole (`generate`), for any chunk size, and a chunk renders any rows exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pharmaflow.simulate import simulator
from pharmaflow.simulate.config import SimConfig
from pharmaflow.simulate.simulator import estimate_bytes, generate, simulate
from pharmaflow.simulate.writer import LineRenderer, render_lines

CONFIG = SimConfig(seed=5, days=2, scale=0.05, duplicate_rate=0.05, malformed_rate=0.03)


@pytest.mark.parametrize("chunk", [1, 997, 50_000])
def test_streamed_file_equals_the_window_rendered_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    whole = generate(CONFIG)
    expected = b"".join(whole.lines[r] + b"\n" for r in whole.rows.tolist())
    monkeypatch.setattr(simulator, "CHUNK_LINES", chunk)
    progress: list[tuple[int, int]] = []
    stats = simulate(CONFIG, tmp_path / "e.jsonl", progress=lambda d, t: progress.append((d, t)))
    assert (tmp_path / "e.jsonl").read_bytes() == expected
    assert stats.lines == len(whole) and progress[-1] == (len(whole), len(whole))
    assert len(progress) == -(-len(whole) // chunk)  # written as it went, chunk by chunk


def test_a_renderer_renders_any_rows_in_any_order_as_the_whole_render() -> None:
    whole = generate(CONFIG)
    window = simulator._plan(CONFIG, 0.0)
    table = window.table
    everything = render_lines(table, window.renderer._ids, window.renderer._stamps)
    assert everything == whole.lines[: len(table)]
    rows = np.random.default_rng(1).integers(0, len(table), 3_000)  # repeats, any order
    assert window.renderer.render(rows) == [everything[r] for r in rows.tolist()]
    assert window.renderer.render(np.zeros(0, np.int64)) == []
    assert isinstance(window.renderer, LineRenderer)


def test_the_memory_estimate_grows_with_scale_and_days() -> None:
    small = estimate_bytes(SimConfig(days=7, scale=1))
    assert estimate_bytes(SimConfig(days=70, scale=1)) > 9 * (small - simulator.BASE_BYTES)
    assert estimate_bytes(SimConfig(days=7, scale=20)) > 10 * (small - simulator.BASE_BYTES)
    assert estimate_bytes(SimConfig(), in_memory=True) > estimate_bytes(SimConfig())

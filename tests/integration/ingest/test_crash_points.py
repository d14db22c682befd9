"""A crash at every point of a batch's commit, then a re-run: the lake ends exactly as after one
uninterrupted run — nothing lost, nothing doubled.

The crash is an exception raised inside the real engine (every sink, the manifest, the ack), so
each point of the run loop's order is hit deterministically; kill -9 of a real process is
covered by the Kafka tests. The re-run is a fresh engine on the same data dir, as after a
restart: recovery removes the crashed batch's parts, committed batches are replayed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pharmaflow.config import Settings
from pharmaflow.ingest.pipeline import IngestEngine
from pharmaflow.ingest.sources import open_sources
from tests.integration.ingest.test_file_ingest import lake_rows

CRASH_AT_BATCH = 3


class Crash(RuntimeError):
    pass


class CrashingSink:
    """A real sink that fails on its n-th write or flush."""

    def __init__(self, sink: Any, method: str, at: int) -> None:
        self.sink = sink
        self.name = sink.name
        self.method = method
        self.at = at
        self.calls = 0

    def _maybe(self, method: str) -> None:
        if method == self.method:
            self.calls += 1
            if self.calls == self.at:
                raise Crash(f"{self.name}.{method}")

    def write(self, batch: Any, landing: Any) -> list[Path]:
        self._maybe("write")
        files = self.sink.write(batch, landing)
        self._maybe("after_write")
        return files

    def flush(self) -> None:
        self._maybe("flush")
        self.sink.flush()

    def close(self) -> None:
        self.sink.close()


def _ingest(settings: Settings, path: Path, crash: str | None = None):
    engine = IngestEngine(settings)
    sources = open_sources(str(path), engine.registry)
    if crash is None:
        pass
    elif crash.startswith("sink:"):
        _, name, method = crash.split(":")
        i = next(i for i, s in enumerate(engine.sinks) if s.name == name)
        engine.sinks[i] = CrashingSink(engine.sinks[i], method, CRASH_AT_BATCH)
    elif crash == "manifest":
        commit, calls = engine.commits.commit, []

        def failing(*args: Any, **kwargs: Any) -> None:
            calls.append(1)
            if len(calls) == CRASH_AT_BATCH:
                raise Crash("manifest")
            commit(*args, **kwargs)

        engine.commits.commit = failing  # type: ignore[method-assign]
    elif crash == "ack":  # committed, but the process dies before the source hears of it
        source, acks = sources[0], []

        def ack(batch: Any) -> None:
            acks.append(1)
            if len(acks) == CRASH_AT_BATCH:
                raise Crash("ack")

        source.ack = ack  # type: ignore[method-assign]
    return engine.run(sources)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, faulty_input) -> tuple[Any, Any, Any]:
    from tests.conftest import TEST_KEYS

    with pytest.MonkeyPatch.context() as mp:
        for name, value in TEST_KEYS.items():
            mp.setenv(name, value)
        settings = Settings(data_dir=tmp_path_factory.mktemp("ref") / "data", batch_size=5_000)
        result = _ingest(settings, faulty_input[0])
        assert result.batches > CRASH_AT_BATCH + 1
        return result, *lake_rows(settings)


@pytest.mark.parametrize(
    "crash",
    [
        "sink:bronze:write",
        "sink:bronze:after_write",
        "sink:quarantine:after_write",
        "sink:vault:write",
        "sink:vault:flush",
        "manifest",
        "ack",
    ],
)
def test_a_crash_at_each_point_then_a_rerun_lands_everything_exactly_once(
    settings, faulty_input, reference, crash
) -> None:
    expected, bronze, quarantine = reference
    with pytest.raises(Crash):
        _ingest(settings, faulty_input[0], crash)
    again = _ingest(settings, faulty_input[0])
    assert again.conserved
    got_bronze, got_quarantine = lake_rows(settings)  # also asserts no row is doubled
    assert got_bronze == bronze
    assert got_quarantine == quarantine
    # The re-run replays the batches committed before the crash (5,000 lines each, a few of
    # them blank) — with "ack", the crashed batch itself was committed too — and lands the rest.
    assert again.input + again.blank_lines == expected.input + expected.blank_lines
    committed = CRASH_AT_BATCH if crash == "ack" else CRASH_AT_BATCH - 1
    assert committed * 5_000 - 100 < again.replayed <= committed * 5_000

"""Publishing read-only warehouse snapshots for serving: atomic switch, pruning, modes."""

from __future__ import annotations

import stat

import duckdb
import pytest

from pharmaflow.config import Settings
from pharmaflow.warehouse import publish


def _warehouse(settings: Settings, value: int) -> None:
    settings.warehouse_dir.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(settings.warehouse_path)) as con:
        con.execute("create or replace table answer as select ? as v", [value])
        con.execute("checkpoint")


def _read(path) -> int:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute("select v from answer").fetchone()[0]


def test_publish_switches_the_pointer_to_a_full_copy(settings: Settings) -> None:
    assert publish.current(settings.snapshots_dir) is None
    _warehouse(settings, 1)
    first = publish.publish(settings)
    assert first is not None and publish.current(settings.snapshots_dir) == first
    _warehouse(settings, 2)
    second = publish.publish(settings)
    assert second is not None and second.id > first.id
    assert publish.current(settings.snapshots_dir) == second
    assert (_read(first.path), _read(second.path)) == (1, 2)  # the old one is untouched
    assert stat.S_IMODE(second.path.stat().st_mode) == 0o600


def test_prune_keeps_the_newest_and_never_the_current(settings: Settings) -> None:
    settings = settings.model_copy(update={"snapshots_kept": 2})
    published = []
    for value in range(5):
        _warehouse(settings, value)
        published.append(publish.publish(settings))
    left = sorted(p.name for p in settings.snapshots_dir.glob("*.duckdb"))
    assert left == sorted(p.path.name for p in published[-2:])
    assert _read(publish.current(settings.snapshots_dir).path) == 4


def test_a_reader_holding_a_pruned_snapshot_keeps_reading(settings: Settings) -> None:
    settings = settings.model_copy(update={"snapshots_kept": 1})
    _warehouse(settings, 7)
    first = publish.publish(settings)
    held = duckdb.connect(str(first.path), read_only=True)
    try:
        _warehouse(settings, 8)
        publish.publish(settings)
        assert not first.path.exists()
        assert held.execute("select v from answer").fetchone()[0] == 7
    finally:
        held.close()


def test_other_targets_publish_nothing(settings: Settings) -> None:
    other = settings.model_copy(update={"warehouse_target": "postgres"})
    assert publish.publish(other) is None


def test_an_unreadable_pointer_is_one_line(settings: Settings) -> None:
    settings.snapshots_dir.mkdir(parents=True)
    (settings.snapshots_dir / publish.POINTER).write_text("{not json")
    with pytest.raises(Exception, match="cannot read the serving pointer"):
        publish.current(settings.snapshots_dir)

"""Serving reads the current snapshot: one connection per snapshot, one cursor per thread,
an atomic switch when a build publishes, and no reader cut off mid-answer."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import duckdb
import pytest

from pharmaflow.config import Settings
from pharmaflow.serve.snapshots import NotBuilt, ServingWarehouse
from pharmaflow.warehouse import publish


def _publish(settings: Settings, value: int) -> publish.Published:
    settings.warehouse_dir.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(settings.warehouse_path)) as con:
        con.execute("create or replace table answer as select ? as v from range(1000)", [value])
        con.execute("checkpoint")
    snap = publish.publish(settings)
    assert snap is not None
    return snap


def _value(serving: ServingWarehouse) -> tuple[str, int]:
    with serving.reading() as snap:
        cur = snap.cursor()
        return snap.id, int(cur.execute("select max(v) from answer").fetchone()[0])


def test_nothing_published_is_not_built(settings: Settings) -> None:
    with pytest.raises(NotBuilt, match="pharmaflow build"):
        _value(ServingWarehouse(settings.snapshots_dir))


def test_a_new_snapshot_is_served_after_the_check_interval(settings: Settings) -> None:
    first = _publish(settings, 1)
    serving = ServingWarehouse(settings.snapshots_dir, check_seconds=0.0)
    assert _value(serving) == (first.id, 1)
    second = _publish(settings, 2)
    assert _value(serving) == (second.id, 2)
    serving.close()


def test_a_reader_keeps_its_snapshot_while_a_newer_one_is_published(settings: Settings) -> None:
    first = _publish(settings, 1)
    serving = ServingWarehouse(settings.snapshots_dir, check_seconds=0.0)
    with serving.reading() as held:
        second = _publish(settings, 2)
        assert _value(serving) == (second.id, 2)  # others already read the new one
        assert held.id == first.id
        assert held.cursor().execute("select max(v) from answer").fetchone()[0] == 1
    assert held.retired  # closed once its last reader left
    serving.close()


def test_each_thread_gets_its_own_cursor(settings: Settings) -> None:
    _publish(settings, 5)
    serving = ServingWarehouse(settings.snapshots_dir)
    cursors: dict[int, int] = {}
    lock = threading.Lock()

    def read(_: int) -> int:
        with serving.reading() as snap:
            cur = snap.cursor()
            with lock:
                cursors[threading.get_ident()] = id(cur)
            return int(cur.execute("select sum(v) from answer").fetchone()[0])

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(read, range(400)))
    assert set(answers) == {5000}
    assert len(set(cursors.values())) == len(cursors) > 1
    serving.close()

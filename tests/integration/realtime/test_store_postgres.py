"""The state store on the real PostgreSQL gives the same results as on SQLite.

Each test gets a throwaway schema in database `test` (dropped afterwards), selected with
`options=-csearch_path=<schema>` in the store's URL, so the `rt_*` tables of two test runs
never meet.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from pharmaflow.realtime.db import Database
from pharmaflow.realtime.reader import StateReader
from pharmaflow.realtime.store import StateStore
from tests.pg import PG_DSN, execute
from tests.realtime_events import (
    CONFIG,
    SALE,
    Feed,
    apply,
    at,
    batch,
    event,
    mixed_events,
    rejected,
    view,
)

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def pg() -> Iterator[Database]:
    try:
        execute("select 1")
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable ({exc}); start it or set PHARMAFLOW_TEST_PG_DSN")
    schema = f"rt_t_{uuid.uuid4().hex[:12]}"
    execute(f'create schema "{schema}"')
    sep = "&" if "?" in PG_DSN else "?"
    database = Database(f"{PG_DSN}{sep}options=-csearch_path%3D{schema}")
    try:
        yield database
    finally:
        database.close()
        execute(f'drop schema if exists "{schema}" cascade')


@pytest.fixture
def lite(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "state.db")
    yield database
    database.close()


def stream() -> list[tuple]:
    feed = Feed()
    events = mixed_events(300, seed=5)
    return feed.place(events[0::2], partition=0) + feed.place(events[1::2], partition=1)


def drive(store: StateStore, records: list[tuple], first: int = 0) -> None:
    """Batches of 45 records (from batch number `first`: a restarted run), a quarantined
    record in every other batch, a tick after each, at fixed wall times."""
    wall = at(200)
    for n, lo in enumerate(range(0, len(records), 45)):
        if n < first:
            continue
        part = records[lo : lo + 45]
        table, offsets = batch(part)
        bad = None
        if n % 2:  # the batch's last record is quarantined instead (its offset, its partition)
            _e, topic, partition, offset = part[-1]
            table, offsets = batch(part[:-1])
            offsets[(topic, partition)] = offset
            bad = rejected([(topic, partition, offset, None, "malformed_json")])
        store.apply(table, bad, offsets, wall + timedelta(minutes=n))
        store.tick(wall + timedelta(minutes=n, seconds=30))


def test_postgres_and_sqlite_give_the_same_snapshot(pg: Database, lite: Database):
    records = stream()
    views = {}
    for name, db in (("pg", pg), ("lite", lite)):
        store = StateStore(db, "g", CONFIG)
        drive(store, records)
        store.tick(at(400))  # the clock reaches 15:40: windows before 11:40 are past retention
        before = view(db)
        compacted = store.compact(at(400))
        views[name] = (before, view(db), compacted)
    assert views["pg"] == views["lite"]
    before, after, compacted = views["pg"]
    assert compacted.windows > 0 and compacted.keyed > 0
    assert 0 < len(after["windows"]) < len(before["windows"])
    assert sum(on + late for on, late in before["totals"].values()) > 250
    pg_reader, lite_reader = StateReader(pg, CONFIG), StateReader(lite, CONFIG)
    assert pg_reader.committed_offsets("g") == lite_reader.committed_offsets("g")
    assert pg_reader.windows(kpi="quarantined") == lite_reader.windows(kpi="quarantined")
    assert pg_reader.windows(kpi="quarantined")


def test_a_restart_on_postgres_continues_exactly(pg: Database, lite: Database):
    records = stream()
    drive(StateStore(lite, "g", CONFIG), records)
    first = StateStore(pg, "g", CONFIG)
    drive(first, records[:135])  # three batches, then a crash
    del first
    second = StateStore(pg, "g", CONFIG)
    second.load(sorted({(t, p) for _e, t, p, _o in records}))
    drive(second, records, first=3)
    assert view(pg) == view(lite)


def test_a_failed_commit_on_postgres_changes_nothing_and_a_replay_is_a_no_op(pg: Database):
    records = Feed().place([event(SALE, at(i)) for i in range(20)])
    store = StateStore(pg, "g", CONFIG)
    apply(store, records[:10], at(30))
    before = view(pg)
    with pg.transaction() as tx:
        tx.execute(
            "CREATE FUNCTION rt_fail() RETURNS trigger AS $$ BEGIN "
            "RAISE EXCEPTION 'disk on fire'; END $$ LANGUAGE plpgsql"
        )
        tx.execute(
            "CREATE TRIGGER rt_fail BEFORE INSERT OR UPDATE ON rt_partitions "
            "FOR EACH ROW EXECUTE FUNCTION rt_fail()"
        )
    with pytest.raises(psycopg.Error, match="disk on fire"):
        apply(store, records[10:], at(31))
    with pg.transaction() as tx:
        tx.execute("DROP TRIGGER rt_fail ON rt_partitions")
    assert view(pg) == before
    assert apply(store, records[10:], at(31)).events == 10
    assert apply(store, records, at(32)).skipped == 20  # everything already committed
    assert view(pg)["totals"] == {SALE: (20, 0)}


def test_two_workers_on_postgres_write_disjoint_partitions_at_once(pg: Database):
    StateStore(pg, "g", CONFIG)  # schema first
    errors: list[BaseException] = []

    def work(partition: int) -> None:
        db = Database(pg.url)
        try:
            store = StateStore(db, "g", CONFIG)
            feed = Feed()
            for b in range(15):
                events = [event(SALE, at(b + i / 100), key=f"S-{partition}-{i}") for i in range(40)]
                apply(store, feed.place(events, partition=partition), at(b))
        except BaseException as exc:
            errors.append(exc)
        finally:
            db.close()

    threads = [threading.Thread(target=work, args=(p,)) for p in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    snap = StateReader(pg, CONFIG).snapshot()
    assert snap.totals == {SALE: (1200, 0)}
    assert StateReader(pg, CONFIG).committed_offsets("g") == {
        ("pharma.sales", 0): 599,
        ("pharma.sales", 1): 599,
    }

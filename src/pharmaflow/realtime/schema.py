"""The speed layer's tables (`rt_*`), the same on SQLite and PostgreSQL, created idempotently.

Layout choices, all for the write path (a few bulk upserts per batch):

- Every row belongs to one partition of one consumer group, named by `pid`, a 63-bit hash of
  (group, topic, partition) (`partition_id`). A partition's state moves with it between
  workers, two workers owning disjoint partitions never write the same row, and no sequence
  has to be shared to name a partition. `rt_partitions` maps the pid back to its names and
  holds the partition's clock and its committed offset.
- Times are integers (epoch microseconds; window starts in epoch seconds) and window values
  are integers, so both dialects store, sum and compare them identically.
- On SQLite the small-row tables are `WITHOUT ROWID` (the primary key is the table: one
  B-tree to update per upsert instead of two), which roughly doubles upsert throughput.
- Seen event ids (for dedupe across restarts) are stored as one newline-joined text per
  (partition, event hour, batch), not one row per id: a batch of 100k events writes a handful
  of rows, and whole hours are dropped at once. Event ids cannot contain a newline (their
  contract pattern).

`rt_alert*` and `rt_outbox` belong to the alerts and live in the same database.
"""

from __future__ import annotations

import hashlib

from pharmaflow.errors import PharmaflowError
from pharmaflow.realtime.db import Database

SCHEMA_VERSION = "1"
_PG_LOCK = 0x7274_5F73_6368  # "rt_sch": serialises concurrent creation on PostgreSQL

TABLES: dict[str, str] = {
    "rt_meta": "name TEXT PRIMARY KEY, value TEXT NOT NULL",
    "rt_partitions": (
        "pid BIGINT PRIMARY KEY, grp TEXT NOT NULL, topic TEXT NOT NULL, "
        "part INTEGER NOT NULL, last_offset BIGINT, watermark_us BIGINT, clock_us BIGINT, "
        "wall_us BIGINT, lateness_us BIGINT NOT NULL, committed_us BIGINT, "
        "UNIQUE (grp, topic, part)"
    ),
    "rt_windows": (
        "pid BIGINT NOT NULL, start_s BIGINT NOT NULL, width_s INTEGER NOT NULL, "
        "kpi TEXT NOT NULL, entity TEXT NOT NULL, label TEXT NOT NULL, value BIGINT NOT NULL, "
        "PRIMARY KEY (pid, start_s, width_s, kpi, entity, label)"
    ),
    "rt_totals": (
        "pid BIGINT NOT NULL, event_type TEXT NOT NULL, on_time BIGINT NOT NULL, "
        "late BIGINT NOT NULL, late_sum_us BIGINT NOT NULL, late_max_us BIGINT NOT NULL, "
        "PRIMARY KEY (pid, event_type)"
    ),
    "rt_orders": (
        "pid BIGINT NOT NULL, order_id TEXT NOT NULL, stage TEXT NOT NULL, "
        "entered_us BIGINT NOT NULL, pharmacy_id TEXT NOT NULL, insurance_status TEXT, "
        "insurance_us BIGINT, last_us BIGINT NOT NULL, PRIMARY KEY (pid, order_id)"
    ),
    "rt_shipments": (
        "pid BIGINT NOT NULL, shipment_id TEXT NOT NULL, carrier_id TEXT NOT NULL, "
        "cold_chain INTEGER NOT NULL, minutes_out_us BIGINT NOT NULL, "
        "last_celsius DOUBLE PRECISION, spec_min DOUBLE PRECISION, spec_max DOUBLE PRECISION, "
        "last_reading_us BIGINT, in_excursion INTEGER NOT NULL, delivered INTEGER NOT NULL, "
        "last_us BIGINT NOT NULL, PRIMARY KEY (pid, shipment_id)"
    ),
    "rt_sensors": (
        "pid BIGINT NOT NULL, batch_id TEXT NOT NULL, sensor_id TEXT NOT NULL, "
        "equipment_id TEXT NOT NULL, sensor_type TEXT NOT NULL, consecutive INTEGER NOT NULL, "
        "last_value DOUBLE PRECISION, spec_min DOUBLE PRECISION, spec_max DOUBLE PRECISION, "
        "last_at_us BIGINT NOT NULL, PRIMARY KEY (pid, batch_id, sensor_id)"
    ),
    "rt_lab_failures": (
        "pid BIGINT NOT NULL, batch_id TEXT NOT NULL, test_id TEXT NOT NULL, "
        "test_name TEXT NOT NULL, at_us BIGINT NOT NULL, PRIMARY KEY (pid, batch_id, test_id)"
    ),
    "rt_seen": (
        "pid BIGINT NOT NULL, hour BIGINT NOT NULL, seq BIGINT NOT NULL, ids TEXT NOT NULL, "
        "PRIMARY KEY (pid, hour, seq)"
    ),
}
_WITHOUT_ROWID = frozenset(
    {"rt_windows", "rt_totals", "rt_orders", "rt_shipments", "rt_sensors", "rt_lab_failures"}
)
STATE_TABLES = tuple(t for t in TABLES if t not in ("rt_meta", "rt_partitions"))


def partition_id(group: str, topic: str, partition: int) -> int:
    """The `pid` of a consumer group's partition: stable, positive, 63 bits."""
    digest = hashlib.blake2b(
        f"{group}\x1f{topic}\x1f{int(partition)}".encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big") & 0x7FFF_FFFF_FFFF_FFFF


def create_schema(db: Database) -> None:
    """Create the `rt_*` tables if missing (safe to run from several processes at once)."""
    with db.transaction() as tx:
        if db.postgres:
            tx.execute("SELECT pg_advisory_xact_lock(?)", (_PG_LOCK,))
        for name, columns in TABLES.items():
            suffix = " WITHOUT ROWID" if not db.postgres and name in _WITHOUT_ROWID else ""
            tx.execute(f"CREATE TABLE IF NOT EXISTS {name} ({columns}){suffix}")
        tx.execute(
            "INSERT INTO rt_meta (name, value) VALUES ('schema_version', ?) "
            "ON CONFLICT (name) DO NOTHING",
            (SCHEMA_VERSION,),
        )
        found = tx.query("SELECT value FROM rt_meta WHERE name = 'schema_version'")
    if found and found[0][0] != SCHEMA_VERSION:
        raise PharmaflowError(
            f"the realtime store {db.description} has schema version {found[0][0]}, this "
            f"pharmaflow reads version {SCHEMA_VERSION}; use a new store or upgrade"
        )


def ensure_schema(db: Database) -> None:
    """For readers: check the tables are there (a read, no write lock), and create them only
    when they are not (a reader started before any writer)."""
    try:
        with db.reading() as tx:
            found = tx.query("SELECT value FROM rt_meta WHERE name = 'schema_version'")
    except PharmaflowError:
        raise
    except Exception:  # no table yet: either dialect's "undefined table"
        found = []
    if found and found[0][0] == SCHEMA_VERSION:
        return
    create_schema(db)

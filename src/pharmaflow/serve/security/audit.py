"""The audit trail: an append-only, hash-chained record of who did what, when and why.

21 CFR 11.10(e) asks for secure, computer-generated, time-stamped audit trails that record
operator actions independently of the operator. Here that is every API key created or revoked
and every re-identification of a patient; each entry records who (`actor`), when (`at`, UTC,
stamped here, never by the caller), what (`action`, `target`, `details`) and why (`reason`).

Tamper evidence: each entry stores `prev_hash`, the hash of the entry before it (64 zeros for
the first), and `hash` = SHA-256 of prev_hash + a canonical JSON of its other fields. Editing
an entry breaks its own hash, deleting one leaves a seq gap or a dangling prev_hash, moving one
breaks the order the prev_hash links record; `verify` names the seq of each. What a chain
cannot show by itself: whoever can write the store could cut off the newest entries, or
rewrite everything from some entry on and recompute the hashes. Against that, anchor the head
(`head().hash`) somewhere that writer cannot reach and pass it to `verify(expected_head=...)`;
and on PostgreSQL make the table append-only for the application (a trigger refuses UPDATE,
DELETE and TRUNCATE, even for the owner; `store.grant_app_role` grants SELECT and INSERT only).

`seq` is assigned here (head + 1) while appends are serialised, not by a database sequence: a
sequence leaves gaps when a transaction rolls back, and a gap must only ever mean a deletion.
The primary key on seq backs the lock up: two appends can never both become entry n.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pharmaflow.errors import PharmaflowError
from pharmaflow.realtime.db import Database, Row, Tx

ZERO_HASH = "0" * 64
TABLE = "audit_trail"
MAX_PAGE = 1000
_MAX_PROBLEMS = 50
_COLUMNS = "seq, at, actor, action, target, reason, details, prev_hash, hash"

# PostgreSQL: one appender at a time. An advisory lock rather than LOCK TABLE: locking the
# table against other inserts needs UPDATE/DELETE privileges, which the application role must
# not have. Keyed by schema, so two schemas' trails do not wait for each other.
_PG_APPEND_LOCK = "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.audit_trail'))"

_SQLITE_DDL = (
    f"""CREATE TABLE IF NOT EXISTS {TABLE} (
        seq INTEGER PRIMARY KEY, at TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
        target TEXT NOT NULL, reason TEXT NOT NULL, details TEXT NOT NULL,
        prev_hash TEXT NOT NULL, hash TEXT NOT NULL)""",
    # Guards against a bug, not an attacker: anyone holding the file can drop these.
    f"""CREATE TRIGGER IF NOT EXISTS {TABLE}_no_update BEFORE UPDATE ON {TABLE}
        BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END""",
    f"""CREATE TRIGGER IF NOT EXISTS {TABLE}_no_delete BEFORE DELETE ON {TABLE}
        BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END""",
)
_PG_DDL = (
    f"""CREATE TABLE {TABLE} (
        seq BIGINT PRIMARY KEY CHECK (seq > 0), at TEXT NOT NULL, actor TEXT NOT NULL,
        action TEXT NOT NULL, target TEXT NOT NULL, reason TEXT NOT NULL,
        details TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)""",
    f"""CREATE OR REPLACE FUNCTION {TABLE}_append_only() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION USING
                MESSAGE = 'the audit trail is append-only: ' || TG_OP || ' refused',
                ERRCODE = 'insufficient_privilege';
        END $$""",
    f"""CREATE TRIGGER {TABLE}_no_change BEFORE UPDATE OR DELETE ON {TABLE}
        FOR EACH ROW EXECUTE FUNCTION {TABLE}_append_only()""",
    f"""CREATE TRIGGER {TABLE}_no_truncate BEFORE TRUNCATE ON {TABLE}
        FOR EACH STATEMENT EXECUTE FUNCTION {TABLE}_append_only()""",
    f"REVOKE UPDATE, DELETE, TRUNCATE ON {TABLE} FROM PUBLIC",
)


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: datetime
    actor: str
    action: str
    target: str
    reason: str
    details: dict[str, Any]
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "reason": self.reason,
            "details": self.details,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


@dataclass(frozen=True)
class AuditVerification:
    ok: bool
    entries: int
    head_seq: int | None
    head_hash: str | None
    problems: list[str] = field(default_factory=list)


def _canonical(value: Any) -> str:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def _hash(row: Row, seq: int | None = None) -> str | None:
    """The hash a stored row should carry (with `seq` in place of its own, to test whether it
    was moved); None if its details are no longer JSON (so it was edited)."""
    stored_seq, at, actor, action, target, reason, details, prev_hash, _ = row
    try:
        parsed = json.loads(details)
    except ValueError:
        return None
    body = {
        "seq": stored_seq if seq is None else seq,
        "at": at,
        "actor": actor,
        "action": action,
        "target": target,
        "reason": reason,
        "details": parsed,
    }
    return hashlib.sha256((prev_hash + _canonical(body)).encode()).hexdigest()


def _entry(row: Row) -> AuditEntry:
    seq, at, actor, action, target, reason, details, prev_hash, hash_ = row
    return AuditEntry(
        int(seq),
        datetime.fromisoformat(at),
        actor,
        action,
        target,
        reason,
        json.loads(details),
        prev_hash,
        hash_,
    )


class AuditTrail:
    """The trail in the security store (`Database`: SQLite or PostgreSQL); table created if
    missing. Appends are serialised (SQLite: the `BEGIN IMMEDIATE` of every write
    transaction; PostgreSQL: an advisory lock), so concurrent appends never fork the chain."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._create()

    def _create(self) -> None:
        with self.db.transaction() as tx:
            if not self.db.postgres:
                for statement in _SQLITE_DDL:
                    tx.execute(statement)
                return
            tx.execute(_PG_APPEND_LOCK)  # two processes starting together: one creates it
            # checked first: CREATE ... IF NOT EXISTS needs CREATE rights the app role lacks
            if tx.query(f"SELECT to_regclass('{TABLE}') IS NULL")[0][0]:
                for statement in _PG_DDL:
                    tx.execute(statement)

    def append(
        self,
        *,
        actor: str,
        action: str,
        target: str,
        reason: str,
        details: dict[str, Any] | None = None,
        tx: Tx | None = None,
    ) -> AuditEntry:
        """Append one entry. Pass `tx` (a transaction of this trail's database) to commit the
        entry together with the change it records, or neither."""
        for name, value in (("actor", actor), ("action", action), ("target", target)):
            if not value or not value.strip():
                raise PharmaflowError(f"an audit entry needs a {name}")
        if tx is None:
            with self.db.transaction() as own:
                return self._append(own, actor, action, target, reason, details or {})
        return self._append(tx, actor, action, target, reason, details or {})

    def _append(
        self, tx: Tx, actor: str, action: str, target: str, reason: str, details: dict[str, Any]
    ) -> AuditEntry:
        if self.db.postgres:
            tx.execute(_PG_APPEND_LOCK)
        head = tx.query(f"SELECT seq, hash FROM {TABLE} ORDER BY seq DESC LIMIT 1")
        seq, prev_hash = (int(head[0][0]) + 1, head[0][1]) if head else (1, ZERO_HASH)
        at = datetime.now(UTC).isoformat(timespec="microseconds")
        row: Row = (seq, at, actor, action, target, reason, _canonical(details), prev_hash, "")
        row = (*row[:8], _hash(row))
        tx.execute(f"INSERT INTO {TABLE} ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
        return _entry(row)

    def entries(self, after_seq: int = 0, limit: int = 100) -> list[AuditEntry]:
        """Entries with seq > `after_seq`, oldest first, at most `limit` (1 to 1000)."""
        if not 1 <= limit <= MAX_PAGE:
            raise PharmaflowError(f"limit must be from 1 to {MAX_PAGE}, not {limit}")
        with self.db.reading() as tx:
            rows = tx.query(
                f"SELECT {_COLUMNS} FROM {TABLE} WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, limit),
            )
        return [_entry(r) for r in rows]

    def head(self) -> AuditEntry | None:
        with self.db.reading() as tx:
            rows = tx.query(f"SELECT {_COLUMNS} FROM {TABLE} ORDER BY seq DESC LIMIT 1")
        return _entry(rows[0]) if rows else None

    def verify(self, expected_head: str | None = None) -> AuditVerification:
        """Recompute the chain (the whole trail, in one read snapshot) and name each entry that
        was edited, deleted or moved. `expected_head`: a head hash recorded earlier elsewhere;
        if it is no longer in the trail, its tail was cut off (or rewritten)."""
        with self.db.reading() as tx:
            rows = tx.query(f"SELECT {_COLUMNS} FROM {TABLE} ORDER BY seq")
        problems = _problems(rows)
        if expected_head is not None and expected_head not in {r[8] for r in rows}:
            last = f"the trail ends at seq {rows[-1][0]}" if rows else "the trail is empty"
            problems.append(
                f"the expected head {expected_head[:16]}… is not in the trail ({last}): entries "
                "after it were deleted, or the trail was rewritten"
            )
        if len(problems) > _MAX_PROBLEMS:
            more = len(problems) - _MAX_PROBLEMS
            problems = [*problems[:_MAX_PROBLEMS], f"… and {more} more problems"]
        head = rows[-1] if rows else None
        return AuditVerification(
            ok=not problems,
            entries=len(rows),
            head_seq=int(head[0]) if head else None,
            head_hash=head[8] if head else None,
            problems=problems,
        )

    def close(self) -> None:
        self.db.close()


def _written_positions(rows: list[Row]) -> dict[int, int]:
    """seq -> the position each row was written at, found by following the prev_hash links
    from the first entry (rows no longer reachable from it are absent)."""
    by_prev: dict[str, Row] = {}
    for row in rows:
        by_prev.setdefault(row[7], row)
    out: dict[int, int] = {}
    link, position = ZERO_HASH, 0
    while (row := by_prev.get(link)) is not None and row[0] not in out:
        position += 1
        out[row[0]] = position
        link = row[8]
    return out


def _problems(rows: list[Row]) -> list[str]:
    """One line per broken place of the chain, each naming the seq."""
    problems: list[str] = []
    known = {row[8] for row in rows}
    written = _written_positions(rows)
    flagged: set[int] = set()
    prev_seq, prev_hash = 0, ZERO_HASH
    for row in rows:
        seq, stored_prev, stored_hash = int(row[0]), row[7], row[8]
        if _hash(row) != stored_hash:
            origin = written.get(seq)
            if origin is not None and origin != seq and _hash(row, origin) == stored_hash:
                problems.append(f"entry seq {seq} is out of order: it was written as seq {origin}")
            else:
                problems.append(f"entry seq {seq} was edited: its hash does not match its content")
            flagged.add(seq)
        if seq != prev_seq + 1:
            gap = f"seq {prev_seq + 1}" if seq == prev_seq + 2 else f"seq {prev_seq + 1}-{seq - 1}"
            problems.append(f"{gap} missing before entry seq {seq}: entries were deleted")
            flagged.add(seq)
        elif stored_prev != prev_hash and seq not in flagged and prev_seq not in flagged:
            if stored_prev not in known and stored_prev != ZERO_HASH:
                problems.append(
                    f"entry seq {seq} does not follow entry seq {prev_seq}: the entry it was "
                    f"chained to is gone (seq {prev_seq} rewritten, or an entry deleted and the "
                    "rest renumbered)"
                )
            else:
                problems.append(
                    f"entry seq {seq} is out of order: it is not chained to entry seq {prev_seq}"
                )
            flagged.add(seq)
        prev_seq, prev_hash = seq, stored_hash
    return problems

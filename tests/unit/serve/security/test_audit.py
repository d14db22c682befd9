"""The audit trail's hash chain: a clean trail verifies; an edited, deleted, moved or cut-off
entry is detected and named by seq; concurrent appends keep one chain."""

from __future__ import annotations

import hashlib
import itertools
import json
import sqlite3
import threading

import pytest

from pharmaflow.errors import PharmaflowError
from pharmaflow.serve.security.audit import ZERO_HASH, AuditTrail


def fill(audit: AuditTrail, n: int = 6) -> None:
    for i in range(1, n + 1):
        audit.append(
            actor=f"officer {i}",
            action="reidentify",
            target=f"pk_{i:032x}",
            reason=f"recall RC-{i} notification",
            details={"found": i % 2 == 0, "n": i},
        )


def problems(audit: AuditTrail, **kwargs) -> list[str]:
    result = audit.verify(**kwargs)
    assert result.ok is (not result.problems)
    return result.problems


def test_a_clean_trail_verifies_and_each_hash_covers_its_predecessor_and_fields(store):
    fill(store.audit)
    entries = store.audit.entries()
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5, 6]
    assert entries[0].prev_hash == ZERO_HASH
    for before, entry in itertools.pairwise(entries):
        assert entry.prev_hash == before.hash
    first = entries[0]
    body = {k: v for k, v in first.to_dict().items() if k not in ("prev_hash", "hash")}
    body["at"] = sqlite3.connect(store.path).execute("SELECT at FROM audit_trail").fetchone()[0]
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert first.hash == hashlib.sha256((ZERO_HASH + canonical).encode()).hexdigest()
    result = store.audit.verify(expected_head=entries[-1].hash)
    assert (result.ok, result.entries, result.head_seq, result.head_hash) == (
        True,
        6,
        6,
        entries[-1].hash,
    )
    assert store.audit.verify(expected_head=entries[2].hash).ok  # appended after the anchor: fine
    assert str(first.at.tzinfo) == "UTC" and first.details == {"found": False, "n": 1}


def test_an_edited_field_is_named(store):
    fill(store.audit)
    store.tamper("UPDATE audit_trail SET reason = 'routine check' WHERE seq = 3")
    assert problems(store.audit) == ["entry seq 3 was edited: its hash does not match its content"]


def test_an_edit_with_a_recomputed_hash_breaks_the_next_link(store):
    fill(store.audit)
    conn = sqlite3.connect(store.path)
    at, action, target, reason, details, prev_hash = conn.execute(
        "SELECT at, action, target, reason, details, prev_hash FROM audit_trail WHERE seq = 3"
    ).fetchone()
    conn.close()
    forged = {
        "seq": 3,
        "at": at,
        "actor": "nobody",
        "action": action,
        "target": target,
        "reason": reason,
        "details": json.loads(details),
    }
    canonical = json.dumps(forged, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256((prev_hash + canonical).encode()).hexdigest()
    store.tamper(f"UPDATE audit_trail SET actor = 'nobody', hash = '{digest}' WHERE seq = 3")
    (line,) = problems(store.audit)  # entry 3 is self-consistent now; its successor is not
    assert line.startswith("entry seq 4 does not follow entry seq 3: the entry it was chained")


def test_a_deleted_middle_entry_is_named(store):
    fill(store.audit)
    store.tamper("DELETE FROM audit_trail WHERE seq = 3")
    assert problems(store.audit) == ["seq 3 missing before entry seq 4: entries were deleted"]
    store.tamper("DELETE FROM audit_trail WHERE seq IN (1, 5)")
    assert problems(store.audit) == [
        "seq 1 missing before entry seq 2: entries were deleted",
        "seq 3 missing before entry seq 4: entries were deleted",
        "seq 5 missing before entry seq 6: entries were deleted",
    ]


def test_a_deleted_last_entry_needs_the_anchored_head(store):
    fill(store.audit)
    head = store.audit.head()
    assert head is not None and head.seq == 6
    store.tamper("DELETE FROM audit_trail WHERE seq = 6")
    assert store.audit.verify().ok  # a chain alone cannot show a cut-off tail
    (line,) = problems(store.audit, expected_head=head.hash)
    assert line.startswith(f"the expected head {head.hash[:16]}… is not in the trail")
    assert "the trail ends at seq 5" in line


def test_two_swapped_entries_are_named_as_reordered(store):
    fill(store.audit)
    store.tamper(
        "UPDATE audit_trail SET seq = -1 WHERE seq = 3",
        "UPDATE audit_trail SET seq = 3 WHERE seq = 4",
        "UPDATE audit_trail SET seq = 4 WHERE seq = -1",
    )
    assert problems(store.audit) == [
        "entry seq 3 is out of order: it was written as seq 4",
        "entry seq 4 is out of order: it was written as seq 3",
    ]


def test_concurrent_appends_from_threads_keep_one_chain(store):
    threads, each = 8, 25
    barrier = threading.Barrier(threads)

    def work(t: int) -> None:
        barrier.wait()
        for i in range(each):
            store.audit.append(actor=f"t{t}", action="test", target=str(i), reason="load")

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    result = store.audit.verify()
    assert result.ok and result.entries == threads * each and result.head_seq == threads * each
    seqs = [e.seq for e in store.audit.entries(limit=1000)]
    assert seqs == list(range(1, threads * each + 1))


def test_an_entry_commits_with_its_transaction_or_not_at_all(store):
    with pytest.raises(RuntimeError), store.db.transaction() as tx:
        store.audit.append(actor="a", action="x", target="t", reason="r", tx=tx)
        raise RuntimeError("the change it records failed")
    assert store.audit.head() is None
    with store.db.transaction() as tx:
        store.audit.append(actor="a", action="x", target="t", reason="r", tx=tx)
    assert store.audit.head().seq == 1


def test_paging_and_refusals(store):
    fill(store.audit)
    assert [e.seq for e in store.audit.entries(after_seq=2, limit=3)] == [3, 4, 5]
    assert store.audit.entries(after_seq=6) == []
    with pytest.raises(PharmaflowError, match="limit must be from 1 to 1000"):
        store.audit.entries(limit=0)
    with pytest.raises(PharmaflowError, match="needs a actor"):
        store.audit.append(actor=" ", action="x", target="t", reason="r")


def test_the_application_cannot_update_or_delete_through_its_own_connection(store):
    fill(store.audit, 2)
    refused = pytest.raises(sqlite3.IntegrityError, match="append-only")
    for statement in ("UPDATE audit_trail SET reason = 'x'", "DELETE FROM audit_trail"):
        with refused, store.db.transaction() as tx:
            tx.execute(statement)
    assert store.audit.verify().entries == 2


def test_an_empty_trail_verifies_but_not_against_a_head(store):
    assert store.audit.verify().ok and store.audit.verify().head_hash is None
    (line,) = problems(store.audit, expected_head="a" * 64)
    assert "the trail is empty" in line

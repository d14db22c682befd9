"""`keys rotate`: re-seal everything the vault key sealed under a new key, crash-safe.

The vault key seals two things in the data dir: the vault's patient records
(`vault/patients/*.parquet`, column `sealed`, bound to `patient_key` as associated data) and
quarantined raw events (`lake/quarantine/**/*.parquet`, column `raw_encrypted`, no associated
data). Dead letters sealed with it have left for Kafka and stay under the old key.

A kill at any point leaves exactly one key usable, by one commit point:

1. *stage*: a journal (old and new fingerprints, the files) under `<data_dir>/.key-rotation/`,
   the new key (generated keys: `vault.key.next` beside the key file), and a re-sealed copy
   of every file, all fsynced. Nothing in use has changed: the old key still opens it all.
2. *commit*: the `COMMITTED` marker appears, atomically (write, fsync, rename).
3. *roll forward* (idempotent): the key file becomes the new key, the fingerprint record
   names it, the staged copies are renamed over the originals, the access log gets one entry,
   the staging folder goes.

Whoever comes next (`keys rotate` again, or any run that loads the keys, see
`keyring.ensure_keys`) finishes a committed rotation or rolls back an uncommitted one.
"""

from __future__ import annotations

import os
import shutil
import signal
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from pharmaflow.datadir import fsync_dir
from pharmaflow.errors import PharmaflowError
from pharmaflow.ingest.phi import keyring
from pharmaflow.ingest.phi.keys import VAULT, fingerprint, new_key, parse_key, write_key_file
from pharmaflow.ingest.phi.vault import Sealer, access_logged, append_access
from pharmaflow.lake.layout import TMP_PREFIX
from pharmaflow.lake.writers import is_live
from pharmaflow.locks import locked

if TYPE_CHECKING:
    import pyarrow as pa

    from pharmaflow.config import Settings

STAGE = ".key-rotation"
JOURNAL = "journal.json"
COMMITTED = "COMMITTED"
NEW_KEY_ENV = "PHARMAFLOW_NEW_VAULT_KEY"
# Tests only: SIGKILL this process at the n-th step of a rotation (a real kill -9 at a chosen
# point; see tests/integration/ingest/test_key_rotation.py).
_KILL_AT = "_PHARMAFLOW_TEST_KILL_ROTATION_AT"
HMAC_REFUSAL = (
    "the HMAC key cannot be rotated in place: patient keys and name tokens are HMACs of MRNs "
    "and names, so a new key would give every earlier patient a new patient key and stop name "
    "scrubbing for them; keep it, or start a new data dir with a new key (docs/keys.md)"
)


@dataclass(frozen=True)
class SealedColumn:
    """Where the vault key seals: a folder of parts, the sealed column, its associated data."""

    folder: Path
    column: str
    aad_column: str | None


def sealed_columns(settings: Settings) -> list[SealedColumn]:
    return [
        SealedColumn(settings.vault_dir / "patients", "sealed", "patient_key"),
        SealedColumn(settings.lake_dir / "quarantine", "raw_encrypted", None),
    ]


def _parts(where: SealedColumn) -> Iterator[Path]:
    """Every part file of a folder (not temporaries being written: none while we hold it)."""
    if where.folder.exists():
        for path in sorted(where.folder.rglob("*.parquet")):
            if path.is_file() and not path.name.startswith((TMP_PREFIX, ".")):
                yield path


@dataclass(frozen=True)
class SealedSample:
    """One sealed record already in a data dir: checks keys given to a data dir that has no
    fingerprint record yet (made before fingerprints existed)."""

    path: Path
    sealed: bytes
    patient_key: str | None  # its associated data (a vault record), None for a reject

    def verify(self, vault: keyring.LoadedKey, hmac: keyring.LoadedKey) -> None:
        aad = self.patient_key.encode() if self.patient_key is not None else b""
        try:
            plain = Sealer(vault.value).open(self.sealed, aad)
        except PharmaflowError:
            raise PharmaflowError(
                f"{vault.origin} (fingerprint {vault.fingerprint}) does not open the sealed "
                f"records already in this data dir ({self.path}): set {VAULT.env} to the key it "
                "was created with"
            ) from None
        if self.patient_key is None:
            return
        from pharmaflow.ingest.phi.tokens import Tokenizer

        mrn = orjson.loads(plain).get("patient_id")
        if isinstance(mrn, str) and Tokenizer(hmac.value).patient_key(mrn) != self.patient_key:
            raise PharmaflowError(
                f"{hmac.origin} (fingerprint {hmac.fingerprint}) does not give the patient keys "
                f"already in this data dir's vault: set {hmac.spec.env} to the key it was "
                "created with"
            )


def sealed_sample(settings: Settings) -> SealedSample | None:
    """The first sealed record in the data dir (vault first: it also checks the HMAC key)."""
    import pyarrow.parquet as pq

    for where in sealed_columns(settings):
        for path in _parts(where):
            columns = [where.column] + ([where.aad_column] if where.aad_column else [])
            table = pq.read_table(path, columns=columns)
            for i, sealed in enumerate(table[where.column].to_pylist()):
                if sealed is not None:
                    aad = table[where.aad_column][i].as_py() if where.aad_column else None
                    return SealedSample(path, sealed, aad)
    return None


class _Steps:
    """Checkpoints between the durable steps of a rotation (a test kills the process at one)."""

    def __init__(self) -> None:
        target = os.environ.get(_KILL_AT, "")
        self._kill_at = int(target) if target.isdigit() else None
        self.count = 0

    def __call__(self) -> None:
        self.count += 1
        if self.count == self._kill_at:
            os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class Rotation:
    """What a rotation did (or an interrupted one that was finished)."""

    rotation_id: str
    old_fingerprint: str
    new_fingerprint: str
    files: int
    records: int
    key_file: str | None  # the key file that now holds the new key; None: update the secret
    resumed: bool = False


def _stage(settings: Settings) -> Path:
    return settings.root / STAGE


def pending(settings: Settings) -> str | None:
    """'committed' / 'staged' for an interrupted rotation, None when there is none."""
    stage = _stage(settings)
    if (stage / COMMITTED).exists():
        return "committed"
    return "staged" if (stage / JOURNAL).exists() else None


def recover(settings: Settings, steps: _Steps | None = None) -> Rotation | None:
    """Finish a committed rotation or roll back an uncommitted one; the caller holds the data
    dir's key lock. Returns the finished rotation, if there was one."""
    stage = _stage(settings)
    if not stage.exists():
        return None
    steps = steps or _Steps()
    journal_path = stage / JOURNAL
    if not journal_path.exists():  # debris from before the journal, or of a finished cleanup
        shutil.rmtree(stage)
        return None
    journal = orjson.loads(journal_path.read_bytes())
    if (stage / COMMITTED).exists():
        done = orjson.loads((stage / COMMITTED).read_bytes())
        return _roll_forward(settings, journal, done, steps, resumed=True)
    if journal.get("next_key_file"):
        Path(journal["next_key_file"]).unlink(missing_ok=True)
    shutil.rmtree(stage)
    return None


def rotate_vault_key(
    settings: Settings, *, requested_by: str, new_key_hex: str | None = None
) -> Rotation:
    """Re-seal this data dir under a new vault key. With generated keys the new key is made
    here and replaces the key file; with `PHARMAFLOW_VAULT_KEY` set it must be given
    (`new_key_hex`, from `PHARMAFLOW_NEW_VAULT_KEY`) and the operator updates the secret."""
    if not requested_by.strip():
        raise PharmaflowError("a key rotation needs who is asking: pass --requested-by")
    root = settings.root
    if not root.exists():
        raise PharmaflowError(f"data dir {root} does not exist: nothing to rotate")
    steps = _Steps()
    with ExitStack() as held:
        held.enter_context(locked(root / keyring.DATA_DIR_LOCK))
        try:
            held.enter_context(locked(root / keyring.IN_USE_LOCK, wait=False))
        except BlockingIOError:
            raise PharmaflowError(
                "a pharmaflow process holds this data dir's keys (an ingest is running): let it "
                "finish, then run `pharmaflow keys rotate` again"
            ) from None
        _refuse_live_writers(settings)
        finished = recover(settings, steps)
        if finished is not None:
            return finished
        try:
            return _rotate(settings, requested_by, new_key_hex, steps)
        except PharmaflowError:
            recover(settings, steps)  # refused before the commit point: undo the staging
            raise


def _refuse_live_writers(settings: Settings) -> None:
    writers = settings.lake_dir / "_writers"
    if not writers.exists():
        return
    for lock in sorted(writers.glob("*.lock")):
        if is_live(settings.lake_dir, lock.stem):
            raise PharmaflowError(
                f"an ingest is writing into this lake (writer {lock.stem!r}): let it finish, "
                "then run `pharmaflow keys rotate` again"
            )


def _rotate(
    settings: Settings, requested_by: str, new_key_hex: str | None, steps: _Steps
) -> Rotation:
    old = keyring.checked_keys(settings).vault
    if new_key_hex is not None:
        new = parse_key(new_key_hex, NEW_KEY_ENV)
    elif old.path is None:
        raise PharmaflowError(
            f"{VAULT.env} is set, so the new key must come from {NEW_KEY_ENV}: set it to a new "
            "key (64 hexadecimal characters) and run `pharmaflow keys rotate` again"
        )
    else:
        new = new_key()
    if new == old.value:
        raise PharmaflowError(f"{NEW_KEY_ENV} is the current vault key: give a different one")
    stage = _stage(settings)
    stage.mkdir(mode=0o700, parents=True, exist_ok=True)
    parts = [(where, path) for where in sealed_columns(settings) for path in _parts(where)]
    next_file = old.path.with_name(old.path.name + ".next") if old.path is not None else None
    journal = {
        "rotation_id": uuid.uuid4().hex,
        "requested_by": requested_by,
        "started_at": datetime.now(UTC).isoformat(),
        "old_fingerprint": old.fingerprint,
        "new_fingerprint": fingerprint(new),
        "key_file": str(old.path) if old.path is not None else None,
        "next_key_file": str(next_file) if next_file is not None else None,
        "files": [str(path.relative_to(settings.root)) for _, path in parts],
    }
    _write_atomic(stage / JOURNAL, journal)
    steps()
    if next_file is not None:
        write_key_file(next_file, new, replace=True)
        steps()
    records = 0
    for where, path in parts:
        records += _reseal(where, path, stage / "files" / path.relative_to(settings.root), old, new)
        steps()
    for folder in sorted({p.parent for p in (stage / "files").rglob("*") if p.is_file()}):
        fsync_dir(folder)
    steps()
    _write_atomic(stage / COMMITTED, {"files": len(parts), "records": records})  # commit point
    steps()
    return _roll_forward(settings, journal, {"files": len(parts), "records": records}, steps)


def _reseal(
    where: SealedColumn, path: Path, staged: Path, old: keyring.LoadedKey, new: bytes
) -> int:
    """Write a copy of `path` with its sealed column re-sealed under `new`; return the count."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pharmaflow.lake.files import write_parquet_atomic

    table: pa.Table = pq.read_table(path)
    opener, sealer = Sealer(old.value), Sealer(new)
    values = table[where.column].to_pylist()
    aads = table[where.aad_column].to_pylist() if where.aad_column else [None] * len(values)
    out: list[bytes | None] = []
    for sealed, aad in zip(values, aads, strict=True):
        if sealed is None:
            out.append(None)
            continue
        ad = aad.encode() if aad is not None else b""
        try:
            plain = opener.open(sealed, ad)
        except PharmaflowError:
            raise PharmaflowError(
                f"a record in {path} does not open with {old.origin} (fingerprint "
                f"{old.fingerprint}); nothing was changed: restore that file or the key it was "
                "sealed with, then rotate"
            ) from None
        out.append(sealer.seal(plain, ad))
    index = table.schema.get_field_index(where.column)
    table = table.set_column(index, table.schema.field(index), pa.array(out, pa.binary()))
    write_parquet_atomic(table, staged)
    return sum(v is not None for v in out)


def _roll_forward(
    settings: Settings,
    journal: dict[str, Any],
    done: dict[str, Any],
    steps: _Steps,
    *,
    resumed: bool = False,
) -> Rotation:
    stage = _stage(settings)
    new_fp = journal["new_fingerprint"]
    if journal.get("next_key_file"):
        next_file, key_file = Path(journal["next_key_file"]), Path(journal["key_file"])
        if next_file.exists():
            os.replace(next_file, key_file)
            fsync_dir(key_file.parent)
            steps()
    record = keyring.read_record(settings)
    if keyring.recorded(record, VAULT) != new_fp:
        keyring.write_record(settings, keyring.with_fingerprint(record, VAULT, new_fp))
        steps()
    for rel in journal["files"]:
        staged, target = stage / "files" / rel, settings.root / rel
        if staged.exists():
            os.replace(staged, target)
            fsync_dir(target.parent)
            steps()
    access_log = settings.vault_dir / "access_log.jsonl"
    if not access_logged(access_log, "rotation_id", journal["rotation_id"]):
        append_access(
            access_log,
            {
                "at": datetime.now(UTC).isoformat(),
                "action": "rotate_vault_key",
                "rotation_id": journal["rotation_id"],
                "requested_by": journal["requested_by"],
                "reason": "vault key rotation",
                "started_at": journal["started_at"],
                "old_fingerprint": journal["old_fingerprint"],
                "new_fingerprint": new_fp,
                "files": done["files"],
                "records": done["records"],
            },
        )
        steps()
    (stage / JOURNAL).unlink()
    steps()
    shutil.rmtree(stage)
    return Rotation(
        rotation_id=journal["rotation_id"],
        old_fingerprint=journal["old_fingerprint"],
        new_fingerprint=new_fp,
        files=done["files"],
        records=done["records"],
        key_file=journal.get("key_file"),
        resumed=resumed,
    )


def _write_atomic(path: Path, data: dict[str, Any]) -> None:
    from pharmaflow.lake.files import write_bytes_atomic

    write_bytes_atomic(orjson.dumps(data, option=orjson.OPT_INDENT_2), path)

"""Reference files as history input: every row version needs the time it took effect.

The reference snapshots (dbt/snapshots/reference_history.yml) record a new SCD2 version when a
row's attributes change, effective from the row's `updated_at`. A user's own reference file may
not carry that column; then its rows are taken to be in effect from when the file was written
(its modification time), the best the file itself can say. A file may also predate a column
the warehouse added later (facilities' `timezone`): it gets that column empty, which gold reads
as "unknown" (a facility without a time zone counts its local business day in UTC). A file
that has every column is copied as it is.
"""

from __future__ import annotations

import csv
import io
import shutil
from datetime import UTC, datetime
from pathlib import Path

# The seeds that are snapshotted (facilities, products, carriers, payers).
HISTORY_SEEDS = ("facilities.csv", "products.csv", "carriers.csv", "payers.csv")

# Columns added to a reference file after users may have written theirs: filled in empty.
LATER_COLUMNS = {"facilities.csv": ("timezone",)}


def copy_reference_file(src: Path, dest: Path) -> None:
    if dest.name not in HISTORY_SEEDS:
        shutil.copyfile(src, dest)
        return
    text = src.read_text(encoding="utf-8-sig")
    rows = [row for row in csv.reader(io.StringIO(text)) if row]
    if not rows:
        shutil.copyfile(src, dest)
        return
    header, body = rows[0], rows[1:]
    missing = [c for c in LATER_COLUMNS.get(dest.name, ()) if c not in header]
    stamp = "updated_at" not in header
    if not missing and not stamp:
        shutil.copyfile(src, dest)
        return
    written = datetime.fromtimestamp(src.stat().st_mtime, UTC).strftime("%Y-%m-%d %H:%M:%S")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*header, *missing, *(["updated_at"] if stamp else [])])
    writer.writerows([*row, *([""] * len(missing)), *([written] if stamp else [])] for row in body)
    dest.write_text(out.getvalue(), encoding="utf-8")

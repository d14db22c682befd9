"""Reference files as history input: every row version needs the time it took effect.

The reference snapshots (dbt/snapshots/reference_history.yml) record a new SCD2 version when a
row's attributes change, effective from the row's `updated_at`. A user's own reference file may
not carry that column; then its rows are taken to be in effect from when the file was written
(its modification time), the best the file itself can say. A file that has the column is copied
as it is.
"""

from __future__ import annotations

import csv
import io
import shutil
from datetime import UTC, datetime
from pathlib import Path

# The seeds that are snapshotted (facilities, products, carriers, payers).
HISTORY_SEEDS = ("facilities.csv", "products.csv", "carriers.csv", "payers.csv")


def copy_reference_file(src: Path, dest: Path) -> None:
    if dest.name not in HISTORY_SEEDS:
        shutil.copyfile(src, dest)
        return
    text = src.read_text(encoding="utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or "updated_at" in rows[0]:
        shutil.copyfile(src, dest)
        return
    written = datetime.fromtimestamp(src.stat().st_mtime, UTC).strftime("%Y-%m-%d %H:%M:%S")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*rows[0], "updated_at"])
    writer.writerows([*row, written] for row in rows[1:] if row)
    dest.write_text(out.getvalue(), encoding="utf-8")

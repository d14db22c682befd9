"""Per-row rejection bookkeeping shared by every ingest step.

Each row keeps the *first* reason it failed for: a row with a broken envelope is reported as
such, not also for every payload field behind it. Reasons are machine-readable codes plus the
dotted field path; details describe the rule, never the offending value (it may be PHI).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from pharmaflow.ingest.reasons import ReasonCode


class Rejects:
    def __init__(self, n: int) -> None:
        self.ok = np.ones(n, dtype=bool)
        self.code = np.full(n, None, dtype=object)
        self.field = np.full(n, None, dtype=object)
        self.detail = np.full(n, None, dtype=object)

    def reject(self, rows: np.ndarray, code: ReasonCode, field: str | None, detail: str) -> None:
        """Mark `rows` (indices, or a boolean mask over all rows) as failing, unless already
        failed."""
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        if rows.size == 0:
            return
        rows = rows[self.ok[rows]]
        self.ok[rows] = False
        self.code[rows] = code
        self.field[rows] = field
        self.detail[rows] = detail

    def reasons(self) -> Counter[str]:
        return Counter(str(c) for c in self.code[~self.ok])

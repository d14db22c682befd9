"""Run logs: one file per data dir, written by every command.

Log lines carry counts, ids of batches and reason codes — never payload values — so the log can
be shared with support without exposing a patient.
"""

from __future__ import annotations

import logging
from pathlib import Path

_CONFIGURED: set[Path] = set()


def configure(logs_dir: Path, level: str = "INFO") -> None:
    logs_dir.mkdir(parents=True, exist_ok=True)
    path = logs_dir / "pharmaflow.log"
    root = logging.getLogger("pharmaflow")
    root.setLevel(level.upper())
    if path in _CONFIGURED:
        return
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root.addHandler(handler)
    _CONFIGURED.add(path)

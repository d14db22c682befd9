"""Run logs: one file per data dir, written by every command.

Log lines carry counts, ids of batches and reason codes — never payload values — so the log can
be shared with support without exposing a patient. Where the log file cannot be written (a
read-only copy of a data dir, a full disk), warnings go to stderr instead: reading a data dir
must never need write access, and a run must not die for want of a log.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

_CONFIGURED: set[Path] = set()
_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def configure(logs_dir: Path, level: str = "INFO", *, writable: bool = True) -> Path | None:
    """Log to `<logs_dir>/pharmaflow.log`; returns that path, or None when it could not be
    opened and warnings go to stderr."""
    root = logging.getLogger("pharmaflow")
    root.setLevel(level.upper())
    path = logs_dir / "pharmaflow.log"
    if path in _CONFIGURED:
        return path
    handler: logging.Handler
    try:
        if not writable:
            raise PermissionError(f"{logs_dir} is read-only")
        logs_dir.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, encoding="utf-8")
    except OSError:
        handler = logging.StreamHandler(sys.stderr)
        handler.setLevel(logging.WARNING)
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        root.addHandler(handler)
        return None
    handler.setFormatter(logging.Formatter(_FORMAT))
    root.addHandler(handler)
    _CONFIGURED.add(path)
    return path

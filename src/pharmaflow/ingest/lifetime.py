"""Child processes end with their parent, even when the parent is killed with SIGKILL.

A crashed ingest must not leave orphans behind: analysis workers would sit idle forever, and
an orphaned Kafka worker would keep consuming for a group nobody watches. Linux delivers the
chosen signal to the child when its parent dies (PR_SET_PDEATHSIG); elsewhere the parent's own
shutdown has to suffice.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import signal
import sys

_PR_SET_PDEATHSIG = 1


def die_with_parent(signum: int = signal.SIGTERM) -> None:
    """Ask the kernel to send `signum` to this process when its parent dies."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signum)

"""Simulation settings and the seeded random streams every module draws from.

Each module gets its own named stream derived from the one seed, so adding draws in one
domain never shifts the numbers of an unrelated one: a change to sales leaves which batches
fail and which orders arrive late as they were, which keeps simulator changes reviewable.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MINUTE_MS = 60_000
# Window starts whose every date (birth dates a century back, events days on) can be written.
FIRST_START, LAST_START = date(1970, 1, 1), date(2999, 12, 31)


class SimConfig(BaseModel):
    """What to simulate. Fault rates are fractions of valid events; 0 switches a fault off."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = Field(default=42, ge=0)
    days: int = Field(default=7, ge=1)
    scale: float = Field(default=1.0, gt=0)
    start: date = Field(default=date(2026, 11, 1), ge=FIRST_START, le=LAST_START)
    duplicate_rate: float = Field(default=0.01, ge=0, le=0.5)
    late_rate: float = Field(default=0.02, ge=0, le=0.5)
    out_of_order_rate: float = Field(default=0.02, ge=0, le=0.5)
    malformed_rate: float = Field(default=0.005, ge=0, le=0.5)
    reference_dir: Path | None = None

    @property
    def start_ms(self) -> int:
        """Window start: UTC midnight of `start`, in epoch milliseconds."""
        moment = datetime(self.start.year, self.start.month, self.start.day, tzinfo=UTC)
        return int(moment.timestamp()) * 1000

    @property
    def end_ms(self) -> int:
        """Window end (exclusive): nothing the simulator writes happens at or after it."""
        return self.start_ms + self.days * DAY_MS


@dataclass(frozen=True)
class Streams:
    """A numpy generator for bulk draws and a `random.Random` for cheap scalar draws."""

    np: np.random.Generator
    py: random.Random


def streams(config: SimConfig, name: str) -> Streams:
    """The deterministic random streams for one named part of the simulation."""
    stream_id = zlib.crc32(name.encode())
    bulk = np.random.SeedSequence(entropy=config.seed, spawn_key=(stream_id, 0))
    scalar = np.random.SeedSequence(entropy=config.seed, spawn_key=(stream_id, 1))
    scalar_seed = int.from_bytes(scalar.generate_state(4, np.uint32).tobytes(), "little")
    return Streams(np.random.Generator(np.random.PCG64(bulk)), random.Random(scalar_seed))

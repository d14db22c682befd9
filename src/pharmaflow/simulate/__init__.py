"""Deterministic simulator of a coherent window of pharma supply-chain events (JSONL).

`simulate(SimConfig(...), path)` writes the events of all five domains in arrival order,
with duplicates, late, out-of-order and malformed lines injected and counted;
`generate(config)` returns the same lines in memory (`SimOutput`, with each line's arrival time
and source event, for publishing); `patient_pool(config)` returns the exact PHI it wrote, for
leak tests.
"""

from pharmaflow.simulate.config import SimConfig
from pharmaflow.simulate.people import Address, Patient, patient_pool
from pharmaflow.simulate.simulator import PhiStats, SimOutput, SimStats, generate, simulate

__all__ = [
    "Address",
    "Patient",
    "PhiStats",
    "SimConfig",
    "SimOutput",
    "SimStats",
    "generate",
    "patient_pool",
    "simulate",
]

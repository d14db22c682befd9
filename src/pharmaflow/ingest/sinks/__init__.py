"""Where a protected batch goes: bronze, quarantine, the PHI vault, a dead-letter topic.

Each destination is a `Sink` (see `base.py`); the engine writes a batch to all of them, then
commits it at one point (the lake's manifest for ingest, one store transaction for the speed
layer), then acknowledges it to the source.
"""

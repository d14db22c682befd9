"""Decode raw records into Python values, marking the ones that are not JSON objects.

Decoding is the one step that must touch each record on its own (JSON is not columnar);
orjson does it in C at well over a million records a second. Everything after works on columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson


class Undecodable:
    """Stands in for a record that could not be decoded; carries the reason."""

    __slots__ = ("detail",)

    def __init__(self, detail: str) -> None:
        self.detail = detail


_loads = orjson.loads


def _decode_one(raw: bytes) -> Any:
    try:
        return _loads(raw)
    except orjson.JSONDecodeError as exc:
        # orjson's message names the position, never the content: safe to keep.
        return Undecodable(f"not valid JSON ({str(exc).split(':')[0]})")


def decode_json(records: Sequence[bytes]) -> list[Any]:
    """orjson-decode each record; failures become `Undecodable` so the batch never stops."""
    return [_decode_one(r) for r in records]

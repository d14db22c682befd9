"""The baselines' validation: a dict walk checking every field of an event against its contract,
one record at a time — what a careful engineer writes first, shared by every bench baseline."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pharmaflow.contracts.model import FieldSpec, Kind
from pharmaflow.contracts.registry import ContractRegistry

_PY = {
    Kind.STRING: (str,),
    Kind.ENUM: (str,),
    Kind.TIMESTAMP: (str,),
    Kind.DATE: (str,),
    Kind.INT: (int,),
    Kind.DOUBLE: (int, float),
    Kind.DECIMAL: (int, float),
    Kind.BOOLEAN: (bool,),
    Kind.STRING_LIST: (list,),
    Kind.RECORD: (dict,),
}


def _check(spec: FieldSpec, value: Any) -> str | None:
    if value is None or value == "":
        return "missing_field" if spec.required else None
    if not isinstance(value, _PY[spec.kind]) or (
        isinstance(value, bool) and spec.kind is not Kind.BOOLEAN
    ):
        return "wrong_type"
    if spec.kind is Kind.RECORD:
        for child in spec.children:
            reason = _check(child, value.get(child.name))
            if reason:
                return reason
        return None
    if spec.kind is Kind.TIMESTAMP:
        try:
            if datetime.fromisoformat(value).tzinfo is None:
                return "invalid_timestamp"
        except ValueError:
            return "invalid_timestamp"
    if spec.kind is Kind.DATE:
        try:
            datetime.strptime(value, "%Y-%m-%d")
        except ValueError:
            return "invalid_format"
    if spec.kind is Kind.STRING_LIST and not all(isinstance(x, str) for x in value):
        return "wrong_type"
    if spec.symbols and value not in spec.symbols:
        return "unknown_enum"
    if spec.minimum is not None and value < spec.minimum:
        return "out_of_range"
    if spec.exclusive_minimum is not None and value <= spec.exclusive_minimum:
        return "out_of_range"
    if spec.maximum is not None and value > spec.maximum:
        return "out_of_range"
    if spec.pattern:
        items = value if spec.kind is Kind.STRING_LIST else [value]
        if not all(re.fullmatch(spec.pattern, item) for item in items):
            return "invalid_identifier" if spec.identifier else "invalid_format"
    return None


def check_event(doc: dict[str, Any], registry: ContractRegistry) -> str | None:
    """The first reason `doc` breaks its contract, or None."""
    for spec in registry.envelope:
        reason = _check(spec, doc.get(spec.name))
        if reason:
            return reason
    contract = registry.get(doc["event_type"], doc["event_version"])
    if contract is None:
        return "unknown_event_type"
    return _check(contract.payload, doc.get("payload"))

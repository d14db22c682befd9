"""Avro schema compatibility: may data written with one schema be read with another?

A producer and its consumers upgrade at different times, so a contract change must keep both
directions working: new readers on old data (BACKWARD) and old readers on new data (FORWARD).
The rules are Avro's schema-resolution rules (the same a Confluent schema registry applies),
plus one of our own: a field's logical type may not change meaning (a `date` that becomes a
plain `int` still decodes, but every reader would misread it).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

_PROMOTIONS: dict[str, set[str]] = {
    "int": {"int", "long", "float", "double"},
    "long": {"long", "float", "double"},
    "float": {"float", "double"},
    "double": {"double"},
    "string": {"string", "bytes"},
    "bytes": {"bytes", "string"},
    "boolean": {"boolean"},
    "null": {"null"},
}


class Mode(StrEnum):
    BACKWARD = "BACKWARD"
    FORWARD = "FORWARD"
    FULL = "FULL"


def _type_name(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, dict):
        return str(schema["type"]) if not isinstance(schema["type"], (dict, list)) else "wrapped"
    return str(schema)


def _unwrap(schema: Any) -> Any:
    """`{"type": "string"}` is the same schema as `"string"`; nested dict types are unwrapped."""
    while isinstance(schema, dict) and isinstance(schema.get("type"), (dict, list)):
        schema = schema["type"]
    if (
        isinstance(schema, dict)
        and schema.get("type") in _PROMOTIONS
        and "logicalType" not in schema
    ):
        return schema["type"]
    return schema


def _logical(schema: Any) -> str | None:
    return schema.get("logicalType") if isinstance(schema, dict) else None


def reader_problems(writer: Any, reader: Any, path: str = "") -> list[str]:
    """Reasons a reader with `reader` schema cannot read data written with `writer` schema."""
    writer, reader = _unwrap(writer), _unwrap(reader)
    where = path or "<root>"
    if isinstance(writer, list):
        problems: list[str] = []
        for branch in writer:
            problems += reader_problems(branch, reader, path)
        return problems
    if isinstance(reader, list):
        for branch in reader:
            if not reader_problems(writer, branch, path):
                return []
        return [f"{where}: writer type {_type_name(writer)} matches no branch of the reader union"]
    if _logical(writer) != _logical(reader):
        return [f"{where}: logical type changed from {_logical(writer)} to {_logical(reader)}"]
    wt, rt = _type_name(writer), _type_name(reader)
    if wt in _PROMOTIONS or rt in _PROMOTIONS:
        if rt not in _PROMOTIONS.get(wt, set()):
            return [f"{where}: type {wt} cannot be read as {rt}"]
        decimal = wt == "bytes" and _logical(writer) == "decimal"
        if decimal and (writer["precision"], writer.get("scale")) != (
            reader["precision"],
            reader.get("scale"),
        ):
            return [f"{where}: decimal precision/scale changed"]
        return []
    if wt != rt:
        return [f"{where}: type {wt} cannot be read as {rt}"]
    if wt == "record":
        problems = []
        writer_fields = {f["name"]: f for f in writer["fields"]}
        for rf in reader["fields"]:
            sub = f"{path}.{rf['name']}" if path else rf["name"]
            wf = writer_fields.get(rf["name"])
            if wf is None:
                if "default" not in rf:
                    problems.append(f"{sub}: new field without a default")
                continue
            problems += reader_problems(wf["type"], rf["type"], sub)
        return problems
    if wt == "enum":
        missing = [s for s in writer["symbols"] if s not in reader["symbols"]]
        if missing and "default" not in reader:
            return [f"{where}: enum symbols {missing} unknown to the reader"]
        return []
    if wt == "array":
        return reader_problems(writer["items"], reader["items"], f"{path}[]")
    if wt == "map":
        return reader_problems(writer["values"], reader["values"], f"{path}{{}}")
    if wt == "fixed":
        if writer.get("size") != reader.get("size"):
            return [f"{where}: fixed size changed"]
        return []
    return [f"{where}: unsupported type {wt}"]


def compatibility_problems(old: Any, new: Any, mode: Mode = Mode.FULL) -> list[str]:
    """Everything that makes `new` an unsafe successor of `old` under `mode` (empty = safe)."""
    problems: list[str] = []
    if mode in (Mode.BACKWARD, Mode.FULL):
        problems += [f"new readers cannot read old data: {p}" for p in reader_problems(old, new)]
    if mode in (Mode.FORWARD, Mode.FULL):
        problems += [f"old readers cannot read new data: {p}" for p in reader_problems(new, old)]
    return problems

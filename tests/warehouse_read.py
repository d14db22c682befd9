"""Read bronze `event_json` the way the dbt warehouse does, without running dbt.

The silver models' payload columns and the DuckDB macros are read from the dbt project files
themselves (not copied here), so a test using this sees what a warehouse build would see:
`json_extract(event_json, '$.payload')` (bronze.sql), one `json_transform` with the types of
`pf_duckdb_json_type`, timestamps through `duckdb__pf_cast_timestamp_utc` (json_payload.sql).
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
import jinja2

DBT = Path(__file__).parents[1] / "src" / "pharmaflow" / "warehouse" / "dbt"
MACROS = DBT / "macros" / "json_payload.sql"
SILVER = DBT / "models" / "silver"


@cache
def silver_payload_columns() -> dict[str, list[tuple[str, str, str]]]:
    """Per event type, its silver model's payload columns as (column, type, json path)."""
    out: dict[str, list[tuple[str, str, str]]] = {}
    for path in sorted(SILVER.glob("silver_*.sql")):
        text = path.read_text()
        block = re.search(r"set payload_columns = \[(.*?)\]\s*-?%\}", text, re.S)
        event_type = re.search(r"pf_silver_select\('([^']+)'", text)
        assert block and event_type, path
        columns = []
        for match in re.finditer(r"\(([^()]*)\)", block.group(1)):
            parts = re.findall(r"'([^']*)'", match.group(1))
            columns.append((parts[0], parts[1], parts[2] if len(parts) > 2 else parts[0]))
        out[event_type.group(1)] = columns
    return out


@cache
def duckdb_json_types() -> dict[str, Any]:
    """`pf_duckdb_json_type`'s mapping, read from the macro."""
    text = MACROS.read_text()
    body = re.search(r"macro pf_duckdb_json_type.*?\{%- set types = \{(.*?)\} -%\}", text, re.S)
    assert body
    types: dict[str, Any] = {}
    for name, value in re.findall(r"'(\w+)': (\[?'[^']+'\]?)", body.group(1)):
        types[name] = json.loads(value.replace("'", '"'))
    return types


def _macro(name: str, **args: str) -> str:
    text = MACROS.read_text()
    body = re.search(r"\{% macro " + name + r"\(.*?\) -%\}(.*?)\{%- endmacro %\}", text, re.S)
    assert body, name
    return jinja2.Template(body.group(1)).render(**args)


def duckdb_timestamp_sql(expr: str) -> str:
    return _macro("duckdb__pf_cast_timestamp_utc", expr=expr)


def postgres_timestamp_sql(expr: str) -> str:
    return _macro("default__pf_cast_timestamp_utc", expr=expr)


def read_payloads(
    event_jsons: list[str], columns: list[tuple[str, str, str]]
) -> list[dict[str, Any]]:
    """Each event's payload columns as DuckDB reads them in silver."""
    types = duckdb_json_types()
    spec: dict[str, Any] = {}
    for _, kind, path in columns:
        node = spec
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = types[kind]
    selects = []
    for name, kind, path in columns:
        expr = 'p."' + '"."'.join(path.split(".")) + '"'
        selects.append(f'{duckdb_timestamp_sql(expr) if kind == "timestamp" else expr} as "{name}"')
    sql = f"""
        with bronze as (select unnest(?::varchar[]) as event_json, unnest(range(?)) as n),
        parsed as (
            select n, json_transform(
                cast(json_extract(event_json, '$.payload') as varchar), ?
            ) as p
            from bronze
        )
        select {", ".join(selects)} from parsed order by n
    """
    with duckdb.connect() as con:
        cursor = con.execute(sql, [event_jsons, len(event_jsons), json.dumps(spec)])
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

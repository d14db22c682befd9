"""The dbt project compiles for BigQuery, and what it compiles is BigQuery SQL (offline proof).

No BigQuery is reachable here, so nothing below ran ON BigQuery. What is proven: dbt-bigquery
1.11 compiles every model, snapshot and test of the project (on a first build and on an
incremental one), the on-run-start hooks issue their statements, the incremental strategies
render the DML dbt would send, and every piece of that SQL parses with sqlglot's BigQuery
dialect (`ErrorLevel.RAISE`) and passes the checks in `bigquery_problems` for what sqlglot
would otherwise accept leniently and rewrite (a `::` cast, a DuckDB or PostgreSQL function or
type name, a NUMERIC beyond BigQuery's precision, a reserved word as a bare identifier, a
backslash in a non-raw string, a DATETIME meeting a TIMESTAMP).

dbt runs in-process (`dbtRunner`) with a `method: oauth` BigQuery profile, and only the
adapter's calls that would reach the network are faked (dbt-bigquery needs a connection to
compile: `is_incremental()` asks for the model's table, the cache lists each dataset, the hooks
run queries):
  * `BigQueryConnectionManager.open` gives the connection an offline handle: dbt opens a
    connection only to close it, and any real API call on the handle fails the test;
  * `BigQueryConnectionManager.execute` records the SQL it is given (the hooks' statements) and
    returns an empty result, as a DDL job does;
  * `BigQueryAdapter.get_relation` returns None (nothing built yet: the full-build SQL) or a
    table (everything exists: the incremental SQL);
  * `BigQueryAdapter.list_relations_without_caching` returns no tables (first build) or the
    silver tables (incremental: the unread-batches hook then reads them).
Everything else is dbt's and the project's own code. The compiles share one project copy and
target dir, so the second reuses dbt's partial parse (the module takes about 30 s).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import duckdb
import pytest
import sqlglot
from sqlglot import exp
from sqlglot.dialects.bigquery import BigQuery
from sqlglot.parser import Parser
from sqlglot.tokens import TokenType

from pharmaflow.config import Settings
from pharmaflow.warehouse import runner
from pharmaflow.warehouse.dbt_env import dbt_runner

pytestmark = pytest.mark.slow

PROJECT = "pf-offline-proj"  # a dash on purpose: project ids need backticks in BigQuery SQL
PREFIX = "pfw"

# ------------------------------------------------------------------------- the checks

# DuckDB / PostgreSQL functions that BigQuery does not have, some of which sqlglot would parse
# (and transpile) without a word.
DENIED_FUNCTIONS = frozenset(
    {
        "json_transform", "json_extract_path_text", "json_typeof", "json_object_keys",
        "json_array_elements_text", "epoch", "epoch_ms", "epoch_us", "epoch_ns", "strptime",
        "strftime", "quantile", "quantile_cont", "quantile_disc", "median", "percentile_disc",
        "len", "regexp_matches", "try_cast", "bool_or", "bool_and", "array_position",
        "generate_series", "date_part", "to_timestamp", "now", "timezone", "read_parquet",
        "glob", "contains", "arg_max", "arg_min", "list", "struct_pack", "datediff", "age",
        "to_char", "to_date", "isnull", "nvl", "decode", "string_split", "unnest_tokens",
    }
)  # fmt: skip
DENIED_PREFIXES = ("list_", "jsonb_", "json_extract", "pg_", "epoch_", "quantile", "array_to_")
# type names BigQuery does not know (its own: INT64, NUMERIC, FLOAT64, BOOL, STRING, ...)
DENIED_TYPES = frozenset(
    {
        "varchar", "char", "character", "text", "double", "double precision", "real", "float",
        "float4", "float8", "int2", "int4", "int8", "hugeint", "uhugeint", "ubigint",
        "uinteger", "usmallint", "utinyint", "jsonb", "timestamptz", "uuid", "blob", "bytea",
        "money", "serial", "bigserial", "nvarchar",
    }
)  # fmt: skip
# GoogleSQL's functions (the subset a warehouse model may reasonably call), and two words a
# "(" follows that are no call (DDL `options (...)`; `values (...)` has its own check): an
# unqualified call of any other name fails (radians, for one, parses fine and does not exist)
_FUNCTION_NAMES = """
    abs acos acosh asin asinh atan atan2 atanh cos cosh cot coth csc csch sec sech sin sinh tan
    tanh exp ln log log10 ceil ceiling floor round trunc cbrt pow power sqrt sign greatest least
    rand div ieee_divide is_inf is_nan mod safe_add safe_divide safe_multiply safe_negate
    safe_subtract range_bucket
    any_value array_agg array_concat_agg avg bit_and bit_or bit_xor count countif logical_and
    logical_or max max_by min min_by string_agg sum approx_count_distinct approx_quantiles
    approx_top_count approx_top_sum corr covar_pop covar_samp stddev stddev_pop stddev_samp
    var_pop var_samp variance grouping
    row_number rank dense_rank percent_rank cume_dist ntile lead lag first_value last_value
    nth_value
    cast safe_cast parse_bignumeric parse_numeric
    ascii byte_length char_length character_length chr concat contains_substr ends_with
    from_base64 from_hex initcap instr left length lower lpad ltrim normalize octet_length
    regexp_contains regexp_extract regexp_extract_all regexp_instr regexp_replace
    regexp_substr repeat replace reverse right rpad rtrim split starts_with strpos substr
    substring to_base64 to_hex translate trim upper
    current_date current_datetime current_time current_timestamp date date_add date_diff
    date_from_unix_date date_sub date_trunc datetime datetime_add datetime_diff datetime_sub
    datetime_trunc extract format_date format_datetime format_time format_timestamp last_day
    parse_date parse_datetime parse_time parse_timestamp time timestamp timestamp_add
    timestamp_diff timestamp_micros timestamp_millis timestamp_seconds timestamp_sub
    timestamp_trunc unix_date unix_micros unix_millis unix_seconds generate_array
    generate_date_array generate_timestamp_array
    json_query json_query_array json_value json_value_array parse_json to_json to_json_string
    json_type json_keys json_object json_array lax_bool lax_int64 lax_float64 lax_string
    array array_concat array_length array_reverse array_to_string array_first array_last
    offset ordinal safe_offset safe_ordinal
    md5 sha1 sha256 sha512 farm_fingerprint
    coalesce if ifnull nullif format generate_uuid error
    options values
"""
BIGQUERY_FUNCTIONS = frozenset(_FUNCTION_NAMES.split())
# functions BigQuery has that sqlglot does not model (it parses them as anonymous calls);
# anything else anonymous is a typo or another engine's function
KNOWN_ANONYMOUS = frozenset({"pf_json_repeated_keys"})
_DECIMAL_WORDS = {"numeric": False, "decimal": False, "bignumeric": True, "bigdecimal": True}


def bigquery_problems(sql: str) -> list[str]:
    """What in `sql` BigQuery would refuse, as far as it can be told without BigQuery."""
    try:
        trees = sqlglot.parse(sql, read="bigquery", error_level=sqlglot.ErrorLevel.RAISE)
    except sqlglot.errors.SqlglotError as exc:
        return [f"does not parse as BigQuery: {str(exc).splitlines()[0]}"]
    problems = _token_problems(sql)
    for tree in trees:
        if tree is None:
            continue
        for call in tree.find_all(exp.Anonymous):
            if call.name.lower() not in KNOWN_ANONYMOUS:
                problems.append(f"function {call.name}() unknown to BigQuery")
        for ident in tree.find_all(exp.Identifier):
            if not ident.quoted and ident.name.lower() in BigQuery.Generator.RESERVED_KEYWORDS:
                problems.append(f"reserved word {ident.name} as a bare identifier")
        for node in tree.find_all(exp.DatetimeAdd, exp.DatetimeSub):
            parent = node.parent
            while isinstance(parent, exp.Paren):
                parent = parent.parent
            as_date_or_instant = isinstance(parent, exp.Cast) and parent.to.this in (
                exp.DataType.Type.DATE,
                exp.DataType.Type.TIMESTAMP,
                exp.DataType.Type.TIMESTAMPTZ,
            )
            if not (as_date_or_instant or isinstance(parent, exp.Extract)):
                problems.append(f"a DATETIME used as is (BigQuery times are TIMESTAMP): {node}")
    return problems


def _token_problems(sql: str) -> list[str]:
    problems: list[str] = []
    tokens = BigQuery().tokenize(sql)
    for i, token in enumerate(tokens):
        text = token.text.lower()
        following = tokens[i + 1] if i + 1 < len(tokens) else None
        before = tokens[i - 1] if i else None
        if token.token_type == TokenType.DCOLON:
            problems.append("a :: cast")
        elif token.token_type == TokenType.MOD:
            problems.append("the % operator (BigQuery has MOD())")
        elif token.token_type in Parser.TYPE_TOKENS and text in DENIED_TYPES:
            problems.append(f"type {token.text}")
        elif token.token_type == TokenType.STRING and "\\" in sql[token.start : token.end + 1]:
            problems.append(f"backslash in a non-raw string (an escape on BigQuery): {token.text}")
        calls = following is not None and following.token_type == TokenType.L_PAREN
        # a call: a name and "(", not `x.name(` (a UDF, SAFE.), not `as name (` (column aliases)
        unqualified = before is None or before.token_type not in (TokenType.DOT, TokenType.ALIAS)
        denied = text in DENIED_FUNCTIONS or text.startswith(DENIED_PREFIXES)
        if calls and unqualified and denied:
            problems.append(f"function {token.text}() of another engine")
        elif (
            calls
            and unqualified
            and token.token_type == TokenType.VAR
            and text not in (BIGQUERY_FUNCTIONS)
        ):
            problems.append(f"function {token.text}() is not a BigQuery function")
        if calls and text == "values":
            problems.append("a VALUES list (BigQuery has none: UNNEST an array of structs)")
        if calls and text in _DECIMAL_WORDS and tokens[i + 2].token_type == TokenType.NUMBER:
            precision = int(tokens[i + 2].text)
            scale = int(tokens[i + 4].text) if tokens[i + 3].token_type == TokenType.COMMA else 0
            big = _DECIMAL_WORDS[text]
            fits = scale <= (38 if big else 9) and precision - scale <= (38 if big else 29)
            if not fits or precision < max(1, scale):
                problems.append(f"{token.text}({precision},{scale}) beyond BigQuery's range")
    return problems


def test_the_checks_catch_what_sqlglot_lets_through():
    """Each check on a statement sqlglot alone accepts (and would silently rewrite)."""
    lenient = {
        "select x::int64 from t": "a :: cast",
        "select bool_or(x) from t": "function bool_or() of another engine",
        "select quantile_cont(x, 0.5) from t": "function quantile_cont() of another engine",
        "select epoch_us(t) from t": "function epoch_us() of another engine",
        "select list_value(1) from t": "function list_value() of another engine",
        "select cast(x as varchar) from t": "type varchar",
        "select cast(x as double precision) from t": "type DOUBLE PRECISION",
        "select cast(x as decimal(38,2)) from t": "decimal(38,2) beyond BigQuery's range",
        "select cast(x as numeric(12,10)) from t": "numeric(12,10) beyond BigQuery's range",
        "select 7 % 2 from t": "the % operator (BigQuery has MOD())",
        "select 1 as current from t": "reserved word current as a bare identifier",
        "select regexp_contains(x, '\\d') from t": "backslash in a non-raw string",
        "select made_up(x) from t": "function made_up() unknown to BigQuery",
        "select datetime_add(cast(x as datetime), interval 1 day) > y from t": "a DATETIME",
        "select radians(x) from t": "function radians() is not a BigQuery function",
        "select * from (values (1, 2)) as v (a, b)": "a VALUES list",
    }
    for sql, problem in lenient.items():
        sqlglot.parse(sql, read="bigquery", error_level=sqlglot.ErrorLevel.RAISE)
        found = bigquery_problems(sql)
        assert any(p.startswith(problem) for p in found), (sql, found)
    assert bigquery_problems("select 1 union select 2")  # sqlglot itself refuses this one
    fine = (
        "select cast(x as numeric(12,2)), cast(y as bignumeric(38,2)), mod(7, 2),"
        " regexp_replace(s, r'(\\.[0-9]{6})[0-9]+', r'\\1'),"
        " cast(datetime_add(cast(t as datetime), interval -1 minute) as timestamp)"
        " from `p-1`.d.t union all select 1, 2, 3, 'x', current_timestamp()"
    )
    assert bigquery_problems(fine) == []


# ------------------------------------------------------------------------- the compiles


class _OfflineClient:
    """The connection handle: dbt closes connections it opened; nothing else may be called."""

    def close(self) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"BigQuery API call {name!r} during an offline compile")


@dataclass
class Compiled:
    """One offline `dbt compile`: compiled SQL by node id, the statements the hooks sent, and
    the node counts by kind in the manifest."""

    sql: dict[str, str] = field(default_factory=dict)
    statements: list[str] = field(default_factory=list)
    manifest_nodes: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


@contextmanager
def _offline_bigquery(existing: bool, silver_tables: list[str], sent: list[str]) -> Iterator[None]:
    from dbt.adapters.bigquery.connections import BigQueryAdapterResponse, BigQueryConnectionManager
    from dbt.adapters.bigquery.impl import BigQueryAdapter
    from dbt.adapters.bigquery.relation import BigQueryRelation
    from dbt.adapters.contracts.connection import ConnectionState
    from dbt_common.clients import agate_helper

    def open_offline(cls: type, connection: Any) -> Any:
        connection.handle = _OfflineClient()
        connection.state = ConnectionState.OPEN
        return connection

    def execute(
        self: Any, sql: str, auto_begin: bool = False, fetch: Any = None, limit: Any = None
    ):
        sent.append(sql)
        return BigQueryAdapterResponse(_message="OK"), agate_helper.empty_table()

    def get_relation(self: Any, database: str, schema: str, identifier: str) -> Any:
        if not existing:
            return None
        return BigQueryRelation.create(
            database=database, schema=schema, identifier=identifier, type="table"
        )

    def list_relations(self: Any, schema_relation: Any) -> list[Any]:
        if not existing or not schema_relation.schema.endswith("_silver"):
            return []
        return [
            BigQueryRelation.create(
                database=schema_relation.database,
                schema=schema_relation.schema,
                identifier=name,
                type="table",
            )
            for name in silver_tables
        ]

    with (
        mock.patch.object(BigQueryConnectionManager, "open", classmethod(open_offline)),
        mock.patch.object(BigQueryConnectionManager, "execute", execute),
        mock.patch.object(BigQueryAdapter, "get_relation", get_relation),
        mock.patch.object(BigQueryAdapter, "list_relations_without_caching", list_relations),
    ):
        yield


def _compile(settings: Settings, project: Path, existing: bool, inline: str | None = None) -> Any:
    silver = [p.stem.removeprefix("silver_") for p in (project / "models" / "silver").glob("*.sql")]
    sent: list[str] = []
    args = [*runner.dbt_args(settings, project, "compile"), "--log-level", "none"]
    if inline is not None:
        args += ["--inline", inline]
    with _offline_bigquery(existing, [*silver, "_rejected"], sent):
        res = dbt_runner()().invoke(args)
    if res.exception is not None:
        raise res.exception
    return res, sent


@pytest.fixture(scope="module")
def bigquery_project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Path]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("bq") / "data",
        warehouse_target="bigquery",
        bigquery_project=PROJECT,
        bigquery_dataset=PREFIX,
    )
    return settings, runner.prepare_project(settings)


@pytest.fixture(scope="module")
def compiled(bigquery_project: tuple[Settings, Path]) -> dict[str, Compiled]:
    """A first build's SQL (nothing exists) and an incremental build's (everything exists)."""
    settings, project = bigquery_project
    out: dict[str, Compiled] = {}
    for mode, existing in (("first build", False), ("incremental", True)):
        res, sent = _compile(settings, project, existing)
        result = Compiled(statements=sent)
        for node_result in res.result.results:
            node = node_result.node
            if str(node_result.status) != "success":
                result.failures.append(f"{node.unique_id}: {node_result.message}")
            if getattr(node, "compiled_code", None):
                result.sql[node.unique_id] = node.compiled_code
        manifest = json.loads((project.parent / "target" / "manifest.json").read_text())
        for node in manifest["nodes"].values():
            kind = node["resource_type"]
            result.manifest_nodes[kind] = result.manifest_nodes.get(kind, 0) + 1
        out[mode] = result
    return out


@pytest.mark.parametrize("mode", ["first build", "incremental"])
def test_every_model_snapshot_and_test_compiles_for_bigquery(compiled: dict[str, Compiled], mode):
    result = compiled[mode]
    assert result.failures == []
    kinds: dict[str, int] = {}
    for unique_id in result.sql:
        kind = unique_id.split(".")[0]
        kinds[kind] = kinds.get(kind, 0) + 1
    # every model, snapshot and test of the manifest has compiled SQL
    for kind in ("model", "snapshot", "test"):
        assert kinds.get(kind, 0) == result.manifest_nodes[kind] > 0, kind
    assert result.manifest_nodes["model"] >= 45 and result.manifest_nodes["test"] >= 300


@pytest.mark.parametrize("mode", ["first build", "incremental"])
def test_the_compiled_sql_is_bigquery_sql(compiled: dict[str, Compiled], mode):
    problems = {
        uid: found for uid, sql in compiled[mode].sql.items() if (found := bigquery_problems(sql))
    }
    assert problems == {}


def test_the_incremental_sql_reads_only_what_is_new(compiled: dict[str, Compiled]):
    """The incremental compile really is incremental (is_incremental() was true), and its
    watermark arithmetic stays in TIMESTAMP."""
    first = compiled["first build"].sql
    later = compiled["incremental"].sql
    silver = "model.pharmaflow.silver_pharmacy_order_placed"
    assert f"`{PROJECT}`.`{PREFIX}_bronze`.`_unread_batches`" in later[silver]
    assert "already_loaded" in later[silver] and "already_loaded" not in first[silver]
    fact = "model.pharmaflow.fact_order_lifecycle"
    assert "max(last_ingest_time)" in later[fact] and "max(last_ingest_time)" not in first[fact]
    assert "union distinct" in later[fact]
    # the set-aside rules run on BigQuery's JSON functions and the repeated-key UDF
    assert "safe.parse_json(payload, wide_number_mode => 'round')" in first[silver]
    assert (
        f"`{PROJECT}`.{PREFIX}_bronze.pf_json_repeated_keys(payload, ['', 'patient'])"
        in (first[silver])
    )


@pytest.mark.parametrize("mode", ["first build", "incremental"])
def test_the_hooks_statements_are_bigquery_sql(compiled: dict[str, Compiled], mode):
    statements = compiled[mode].statements
    kinds = [" ".join(s.split()[:5]).lower() for s in statements]
    assert sum(k.startswith("create or replace function") for k in kinds) == 1  # the UDF
    assert "create schema if not exists" in kinds  # the ML score tables' dataset ...
    assert kinds.count("create table if not exists") == 4  # ... and tables
    assert f"drop table if exists `{PROJECT}`.`{PREFIX}_bronze`.`_unread_batches`" in (
        " ".join(s.split()) for s in statements
    )
    unread = next(s for s in statements if s.lstrip().startswith("create table `"))
    assert unread.count("union all") == 17  # one select per event type
    assert ("set_aside.model = 'silver_" in unread) == (mode == "incremental")
    assert not any(s.strip().lower() == "commit" for s in statements)
    problems = {s[:80]: found for s in statements if (found := bigquery_problems(s))}
    assert problems == {}


# ------------------------------------------------------------------------- strategies, seeds

_PROBE = """
{%- for node in graph.nodes.values() | sort(attribute='unique_id')
      if node.resource_type == 'model' and node.config.materialized == 'incremental' %}
{%- set target_relation = api.Relation.create(database=node.database, schema=node.schema,
                                              identifier=node.alias) -%}
{%- set columns = [] -%}
{%- for column in node.columns.values() -%}
{%- do columns.append(api.Column.create(column.name, 'string')) -%}
{%- endfor -%}
{%- set strategy = dbt_bigquery_validate_get_incremental_strategy(node.config) %}
-- pf-probe {{ node.unique_id }} {{ strategy }} {{ columns | length }}
{{ bq_generate_incremental_build_sql(strategy, make_temp_relation(target_relation),
     target_relation, 'select 1', node.config.unique_key, none, none, columns, true, false, none) }}
{%- endfor %}
-- pf-probe merge {{ dbt_bigquery_validate_get_incremental_strategy({}) }}
{%- set seed_types = {} -%}
{%- for node in graph.nodes.values() if node.resource_type == 'seed' -%}
{%- do seed_types.update(pf_bq_seed_column_types(node.config.column_types)) -%}
{%- endfor %}
-- pf-probe seeds {{ tojson(seed_types) }}
"""


@pytest.fixture(scope="module")
def probe(bigquery_project: tuple[Settings, Path], compiled: dict[str, Compiled]) -> str:
    settings, project = bigquery_project
    res, _ = _compile(settings, project, existing=True, inline=_PROBE)
    return res.result.results[0].node.compiled_code


def test_incremental_strategies_render_the_dml_dbt_would_send(probe: str):
    """append -> an INSERT; delete+insert -> DELETE and INSERT in one transaction (dbt-bigquery
    implements neither: macros/bigquery/incremental.sql), for every incremental model."""
    blocks = re.split(r"^-- pf-probe ", probe, flags=re.M)[1:]
    scripts = {b.split()[0]: b for b in blocks if b.startswith("model.")}
    assert len(scripts) == 18 + 1 + 8  # silver, silver._rejected, the gold facts
    for unique_id, block in scripts.items():
        _, strategy, columns, sql = block.split(maxsplit=3)
        assert int(columns) > 0, f"{unique_id}: no documented columns to insert"
        statements = sqlglot.parse(sql, read="bigquery", error_level=sqlglot.ErrorLevel.RAISE)
        kinds = [type(s).__name__ for s in statements if s is not None]
        if unique_id.startswith("model.pharmaflow.silver_"):
            assert (strategy, kinds) == ("append", ["Insert"]), unique_id
        else:
            assert (strategy, kinds) == (
                "delete+insert",
                ["Transaction", "Delete", "Insert", "Commit"],
            ), unique_id
        assert bigquery_problems(sql) == [], unique_id
    hourly = scripts["model.pharmaflow.fact_shipment_temperature_hourly"]
    # keyed by shipment, one row per shipment x hour: every hour of a changed shipment goes
    assert "DBT_INTERNAL_SOURCE.`shipment_id` = DBT_INTERNAL_DEST.`shipment_id`\n)" in hourly
    daily = scripts["model.pharmaflow.fact_sales_daily"]
    assert "DBT_INTERNAL_SOURCE.`pharmacy_id` = DBT_INTERNAL_DEST.`pharmacy_id` and" in daily
    # any other strategy is still dbt-bigquery's own (its default: merge)
    assert re.search(r"^-- pf-probe merge merge$", probe, flags=re.M)


def test_the_installed_materialization_calls_the_overridden_macros():
    """The override works by name: a dbt-bigquery that stops calling these names would
    silently bypass it (and refuse append / delete+insert)."""
    import dbt.include.bigquery as include

    source = (Path(include.__file__).parent / "macros/materializations/incremental.sql").read_text()
    assert "dbt_bigquery_validate_get_incremental_strategy(config)" in source
    assert "bq_generate_incremental_build_sql(" in source


def test_seed_column_types_become_bigquery_field_types(probe: str):
    from google.cloud.bigquery.enums import SqlTypeNames, StandardSqlTypeNames

    line = next(x for x in probe.splitlines() if x.startswith("-- pf-probe seeds "))
    types = json.loads(line.removeprefix("-- pf-probe seeds "))
    assert types["ndc"] == "STRING" and types["list_price"] == "NUMERIC"
    assert types["updated_at"] == "TIMESTAMP" and types["cold_chain_capable"] == "BOOL"
    # names the BigQuery API takes as a field type (legacy or standard SQL spelling)
    assert set(types.values()) <= {t.value for t in (*SqlTypeNames, *StandardSqlTypeNames)}


# ------------------------------------------------------------------------- the UDF's JavaScript


def _udf_body() -> str:
    source = (runner.PROJECT_DIR / "macros" / "bigquery" / "set_aside.sql").read_text()
    match = re.search(r"macro pf_bq_repeated_keys_js\(\) -%\}\n(.*?)\{%- endmacro", source, re.S)
    assert match is not None
    body = match[1]
    assert '"""' not in body  # it sits in a BigQuery r\"\"\"...\"\"\" string
    return body


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node (V8, BigQuery's JS engine)")
def test_the_repeated_keys_udf_agrees_with_duckdbs_rule():
    """The JavaScript of pf_json_repeated_keys, run by node, flags exactly the objects whose
    keys DuckDB's rule (duckdb__pf_check_duplicate_key: json_keys, list_unique) flags."""
    cases = [
        ('{"a": 1, "b": {"c": 2}}', ["", "b"]),
        ('{"a": 1, "a": 2}', ["", "patient"]),
        ('{"patient": {"k": 1, "k": 2}, "x": "a\\"b"}', ["", "patient"]),
        ('{"patient": {"k": 1}, "y": {"k": 1, "k": 2}}', ["", "patient"]),
        ('{"x": [{"k": 1, "k": 2}], "patient": "s"}', ["", "patient"]),
        ('{"x": "\\u0041", "x": 1}', [""]),
        ('{"s": "say \\"hi\\", \\\\", "n": -1.5e3, "t": true, "z": null, "e": {}}', ["", "e"]),
        ('{"\\u006b": 1, "k": 2}', [""]),
    ]  # fmt: skip
    program = (
        f"function udf(doc, paths) {{\n{_udf_body()}\n}}\n"
        f"const cases = {json.dumps(cases)};\n"
        "console.log(JSON.stringify(cases.map(c => udf(c[0], c[1]))));\n"
        "console.log(JSON.stringify([udf('not json', ['']), udf('{} trailing', ['']),"
        " udf(null, [''])]));"
    )
    out = subprocess.run(["node", "-e", program], capture_output=True, text=True, check=True)
    verdicts, invalid = (json.loads(line) for line in out.stdout.splitlines())
    with duckdb.connect() as con:
        expected = [
            [
                bool(
                    con.execute(
                        "select list_unique(k) < len(k) from (select json_keys(?, ?) as k)",
                        [doc, "$" + (f".{path}" if path else "")],
                    ).fetchone()[0]
                )
                for path in paths
            ]
            for doc, paths in cases
        ]
    assert verdicts == expected
    assert verdicts[1] == [True, False] and verdicts[2] == [False, True] and verdicts[7] == [True]
    assert invalid == [None, None, None]  # not JSON: no verdict (the check passes)

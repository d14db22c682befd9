"""The data dictionary, generated from the dbt project itself.

dbt parses the project (models, seeds, their YAML descriptions and tests) into its manifest;
this renders that manifest as one markdown page, table by table. Generated rather than written,
so it cannot drift from the models: a test regenerates it and compares with the committed copy.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from pharmaflow.config import Settings
from pharmaflow.errors import PharmaflowError
from pharmaflow.warehouse.dbt_env import dbt_runner
from pharmaflow.warehouse.runner import dbt_args, prepare_project

SCHEMA_ORDER = ("reference", "silver", "gold")
LINEAGE_FILE = "static_index.html"
TABLE_TYPES = ("model", "seed", "snapshot")
SCHEMA_INTRO = {
    "reference": "Reference data shipped as dbt seeds (replaceable by your own files).",
    "silver": "Typed, validated, deduplicated and PHI-protected events: one table per event type.",
    "gold": "What people query: dimensions, facts and daily summaries (star schema).",
}


def parse_manifest(settings: Settings) -> Any:
    """`dbt parse` of the project as shipped; returns dbt's manifest object."""
    dbtRunner = dbt_runner()

    project = prepare_project(settings)
    res = dbtRunner().invoke([*dbt_args(settings, project, "parse"), "--quiet"])
    if not res.success or res.result is None:
        raise PharmaflowError(f"dbt could not parse the project: {res.exception}")
    return res.result


def lineage_page(settings: Settings) -> Path:
    """dbt's own documentation site (lineage graph, SQL, columns) as one self-contained HTML
    file: `dbt docs generate --static` against the data dir's warehouse."""
    dbtRunner = dbt_runner()

    project = prepare_project(settings)
    args = dbt_args(settings, project, "docs")
    args.insert(1, "generate")
    res = dbtRunner().invoke([*args, "--static", "--quiet"])
    page = project.parent / "target" / LINEAGE_FILE
    if not res.success or not page.exists():
        raise PharmaflowError(f"dbt could not generate its docs: {res.exception}")
    return page


def render(manifest: Any) -> str:
    """Markdown: per schema, per table, its description and every column with its tests."""
    tests: dict[tuple[str, str | None], list[str]] = defaultdict(list)
    rules: list[tuple[str, list[str]]] = []
    relations = {
        n.unique_id: f"{n.schema}.{n.alias}"
        for n in manifest.nodes.values()
        if n.resource_type in TABLE_TYPES
    }
    for node in manifest.nodes.values():
        if node.resource_type != "test":
            continue
        metadata = getattr(node, "test_metadata", None)
        attached = getattr(node, "attached_node", None)
        if metadata is not None and attached:
            tests[(attached, node.column_name)].append(metadata.name)
        elif metadata is None:  # a singular test: a business rule over whole tables
            reads = sorted(relations[d] for d in node.depends_on.nodes if d in relations)
            rules.append((node.name, reads))
    tables: dict[str, list[Any]] = defaultdict(list)
    for node in manifest.nodes.values():
        if node.resource_type in TABLE_TYPES and node.schema in SCHEMA_ORDER:
            tables[node.schema].append(node)
    # tables written outside dbt into a modelled schema (the ML scores), declared as sources
    written_elsewhere = {
        source.unique_id for source in manifest.sources.values() if source.schema in SCHEMA_ORDER
    }
    for uid in written_elsewhere:
        tables[manifest.sources[uid].schema].append(manifest.sources[uid])
    lines = [
        "# Data dictionary",
        "",
        "Generated from the dbt project by `make docs` (`pharmaflow docs`); do not edit by hand.",
        "",
    ]
    for schema in SCHEMA_ORDER:
        lines += [f"## `{schema}`", "", SCHEMA_INTRO[schema], ""]
        for node in sorted(tables[schema], key=lambda n: getattr(n, "alias", n.name)):
            name = getattr(node, "alias", None) or node.name
            lines += [f"### `{schema}.{name}`", "", node.description.strip() or "-", ""]
            if node.unique_id in written_elsewhere:
                lines += [f"Written outside dbt: {node.source_description.strip()}", ""]
            # seeds and sources depend on nothing
            upstream = getattr(getattr(node, "depends_on", None), "nodes", [])
            parents = sorted(
                {relations[d] for d in upstream if d in relations}
                | {
                    f"{manifest.sources[d].schema}.{manifest.sources[d].name}"
                    for d in upstream
                    if d in manifest.sources
                }
            )
            if parents:
                lines += [f"Built from: {', '.join(f'`{p}`' for p in parents)}.", ""]
            table_tests = sorted(set(tests[(node.unique_id, None)]))
            if table_tests:
                lines += [f"Table tests: {', '.join(table_tests)}.", ""]
            lines += ["| column | description | tests |", "|---|---|---|"]
            for column in node.columns.values():
                checks = ", ".join(sorted(set(tests[(node.unique_id, column.name)])))
                text = " ".join(column.description.split()).replace("|", "\\|")
                lines.append(f"| `{column.name}` | {text} | {checks} |")
            lines.append("")
    lines += [
        "## Business-rule tests",
        "",
        "Singular dbt tests (`tests/*.sql`): each returns the "
        "rows that break its rule and must return none.",
        "",
        "| test | reads |",
        "|---|---|",
    ]
    lines += [
        f"| `{name}` | {', '.join(f'`{r}`' for r in reads)} |" for name, reads in sorted(rules)
    ]
    return "\n".join(lines).rstrip() + "\n"


def _tables(manifest: Any) -> list[tuple[str, Any]]:
    """(`schema.table`, node) of every table in a modelled schema: models, seeds, snapshots,
    and the tables written there outside dbt (declared as sources)."""
    found = [
        (f"{n.schema}.{n.alias}", n)
        for n in manifest.nodes.values()
        if n.resource_type in TABLE_TYPES and n.schema in SCHEMA_ORDER
    ]
    found += [
        (f"{s.schema}.{s.name}", s) for s in manifest.sources.values() if s.schema in SCHEMA_ORDER
    ]
    return found


def undocumented(manifest: Any) -> list[str]:
    """`schema.table.column` of every declared column without a description."""
    missing = []
    for table, node in _tables(manifest):
        if not node.description.strip():
            missing.append(table)
        missing += [f"{table}.{c.name}" for c in node.columns.values() if not c.description.strip()]
    return missing


def documented_columns(manifest: Any) -> dict[str, set[str]]:
    """`schema.table` → the columns the YAML declares."""
    return {table: set(node.columns) for table, node in _tables(manifest)}

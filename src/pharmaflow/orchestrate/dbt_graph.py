"""The dbt project's graph, pre-compiled for the scheduler: nodes, their parents, their tests.

Why pre-compiled: Airflow parses a DAG file every few seconds; parsing the dbt project there
(seconds, and a warehouse profile) would make every parse slow. dbt's manifest holds the graph;
`write()` reduces it to what the DAG needs (`dbt_graph.json`, shipped beside this module and
checked against a fresh `dbt parse` by the tests), and `load()` reads that file in
milliseconds. Regenerate it after changing the dbt project:

    python -m pharmaflow.orchestrate.dbt_graph     # (also done by `make docs`)
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GRAPH_FILE = Path(__file__).with_name("dbt_graph.json")
_KINDS = ("seed", "snapshot", "model")


@dataclass(frozen=True)
class Node:
    """One buildable dbt node: `name` (unique in the project), its `kind` (seed, snapshot,
    model), its `layer` (silver, gold, … the folder under models/), the nodes it reads, and the
    names of the data tests attached to it."""

    name: str
    kind: str
    layer: str
    parents: tuple[str, ...]
    tests: tuple[str, ...]


def from_manifest(manifest: dict[str, Any]) -> list[Node]:
    """The seeds, snapshots and models of a dbt manifest, in a stable order."""
    nodes = {
        uid: n
        for uid, n in manifest["nodes"].items()
        if n["resource_type"] in _KINDS and n.get("package_name") == "pharmaflow"
    }
    tests: dict[str, list[str]] = {uid: [] for uid in nodes}
    for n in manifest["nodes"].values():
        if n["resource_type"] != "test":
            continue
        attached = n.get("attached_node")
        if attached is None:  # a singular test over several models: its first parent
            parents = [p for p in n.get("depends_on", {}).get("nodes", []) if p in nodes]
            attached = parents[0] if parents else None
        if attached in tests:
            tests[attached].append(n["name"])
    out = []
    for uid, n in nodes.items():
        fqn = n.get("fqn", [])
        layer = fqn[1] if n["resource_type"] == "model" and len(fqn) > 2 else n["resource_type"]
        parents = sorted(
            nodes[p]["name"] for p in n.get("depends_on", {}).get("nodes", []) if p in nodes
        )
        out.append(
            Node(n["name"], n["resource_type"], layer, tuple(parents), tuple(sorted(tests[uid])))
        )
    return sorted(out, key=lambda node: (_KINDS.index(node.kind), node.layer, node.name))


def to_json(nodes: list[Node]) -> str:
    rows = [
        {
            "name": n.name,
            "kind": n.kind,
            "layer": n.layer,
            "parents": list(n.parents),
            "tests": list(n.tests),
        }
        for n in nodes
    ]
    return json.dumps({"nodes": rows}, indent=1) + "\n"


def load(path: Path = GRAPH_FILE) -> list[Node]:
    """The shipped graph (fast: no dbt import)."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    return [
        Node(r["name"], r["kind"], r["layer"], tuple(r["parents"]), tuple(r["tests"]))
        for r in raw["nodes"]
    ]


def parse_project() -> list[Node]:
    """`dbt parse` of the shipped project in a scratch data dir (no warehouse is touched)."""
    from pharmaflow.config import Settings
    from pharmaflow.warehouse.dictionary import parse_manifest

    with tempfile.TemporaryDirectory(prefix="pharmaflow-dbt-graph-") as tmp:
        settings = Settings(data_dir=Path(tmp))
        parse_manifest(settings)
        target = settings.warehouse_dir / "dbt" / "target" / "manifest.json"
        manifest = json.loads(target.read_text(encoding="utf-8"))
    return from_manifest(manifest)


def write(path: Path = GRAPH_FILE) -> list[Node]:
    nodes = parse_project()
    path.write_text(to_json(nodes), encoding="utf-8")
    return nodes


if __name__ == "__main__":
    written = write(Path(sys.argv[1]) if len(sys.argv) > 1 else GRAPH_FILE)
    print(f"{len(written)} nodes")

"""The contract registry: every event type's schema versions, loaded from the repo at runtime.

Schema files live in `schemas/<event_type>/v<N>.avsc`. Registering a new version refuses a
change that would break existing producers or consumers (see `compat`), so a contract can only
evolve the way a schema registry in production would let it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import fastavro

from pharmaflow.contracts.compat import Mode, compatibility_problems
from pharmaflow.contracts.model import Contract, FieldSpec, contract_from_schema
from pharmaflow.errors import IncompatibleSchemaError, PharmaflowError

SCHEMA_DIR = Path(__file__).parent / "schemas"


class ContractRegistry:
    """All known contracts, by event type and version."""

    def __init__(self, mode: Mode = Mode.FULL) -> None:
        self.mode = mode
        self._contracts: dict[str, dict[int, Contract]] = {}

    def register(self, schema: dict[str, Any]) -> Contract:
        """Add one schema version; refuse it if it is invalid Avro or breaks the previous one."""
        try:
            fastavro.parse_schema(schema)
        except Exception as exc:  # fastavro raises several unrelated types for bad schemas
            raise PharmaflowError(f"invalid Avro schema {schema.get('name')!r}: {exc}") from exc
        contract = contract_from_schema(schema)
        versions = self._contracts.setdefault(contract.event_type, {})
        if contract.version in versions:
            if versions[contract.version].schema != schema:
                raise IncompatibleSchemaError(
                    f"{contract.event_type} v{contract.version} is already registered "
                    "with a different schema; publish a new version instead"
                )
            return versions[contract.version]
        previous = [v for v in versions if v < contract.version]
        if previous:
            old = versions[max(previous)]
            problems = compatibility_problems(old.schema, schema, self.mode)
            if problems:
                raise IncompatibleSchemaError(
                    f"{contract.event_type} v{contract.version} breaks v{old.version} "
                    f"({self.mode}): " + "; ".join(problems)
                )
        versions[contract.version] = contract
        return contract

    def load_dir(self, directory: Path = SCHEMA_DIR) -> ContractRegistry:
        """Register every `*/v*.avsc` under `directory`, oldest version first."""
        files = sorted(directory.glob("*/v*.avsc"), key=lambda p: (p.parent.name, _version(p)))
        for path in files:
            self.register(json.loads(path.read_text()))
        return self

    def get(self, event_type: str, version: int | None = None) -> Contract | None:
        versions = self._contracts.get(event_type)
        if not versions:
            return None
        if version is None:
            return versions[max(versions)]
        return versions.get(version)

    @property
    def envelope(self) -> tuple[FieldSpec, ...]:
        """The envelope fields, which every contract shares (docs/contracts.md)."""
        return next(iter(self)).envelope

    def event_types(self) -> list[str]:
        return sorted(self._contracts)

    def versions(self, event_type: str) -> list[int]:
        return sorted(self._contracts.get(event_type, {}))

    def __iter__(self) -> Iterable[Contract]:  # type: ignore[override]
        for event_type in self.event_types():
            yield from (self._contracts[event_type][v] for v in self.versions(event_type))


def _version(path: Path) -> int:
    return int(path.stem.lstrip("v"))


@cache
def default_registry() -> ContractRegistry:
    """The contracts shipped with pharmaflow (loaded once per process)."""
    return ContractRegistry().load_dir()

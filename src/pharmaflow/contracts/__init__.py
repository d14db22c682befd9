"""Versioned event contracts: Avro schema files, their runtime registry and compatibility rules."""

from pharmaflow.contracts.model import Contract, FieldSpec, Kind
from pharmaflow.contracts.registry import ContractRegistry, default_registry

__all__ = ["Contract", "ContractRegistry", "FieldSpec", "Kind", "default_registry"]

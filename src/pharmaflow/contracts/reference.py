"""Reference data (products, facilities, equipment, carriers, payers) read from the seed CSVs.

The same five CSV files are dbt seeds for the warehouse dimensions and the master data the
simulator draws from, so events and dimensions can never disagree about which NDCs, facility
ids or carriers exist. A user may point `load_reference` at their own files with the same
columns; extra columns are ignored so a richer export still loads.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

DEFAULT_DIR = Path(__file__).parents[1] / "warehouse" / "dbt" / "seeds"


@dataclass(frozen=True)
class Product:
    """A dispensable product; `storage` decides whether it must travel cold."""

    ndc: str
    name: str
    strength: str
    dosage_form: str
    storage: str
    list_price: Decimal
    therapeutic_class: str = ""

    @property
    def cold_chain(self) -> bool:
        return self.storage == "COLD_CHAIN"


@dataclass(frozen=True)
class Facility:
    """A plant, distribution centre or pharmacy; `facility_type` is its role in the flow."""

    facility_id: str
    facility_type: str
    name: str
    region: str
    state: str


@dataclass(frozen=True)
class Equipment:
    """A production unit at a plant (`site_id` is the plant's facility id)."""

    equipment_id: str
    site_id: str
    equipment_type: str
    name: str
    capacity_kg: float


@dataclass(frozen=True)
class Carrier:
    """A carrier; only `cold_chain_capable` ones may move 2-8 C product."""

    carrier_id: str
    name: str
    carrier_type: str
    cold_chain_capable: bool


@dataclass(frozen=True)
class Payer:
    """An insurer or PBM that adjudicates pharmacy claims."""

    payer_id: str
    name: str
    payer_type: str


@dataclass(frozen=True)
class Reference:
    """All reference rows, in file order (file order keeps anything derived deterministic)."""

    products: tuple[Product, ...]
    facilities: tuple[Facility, ...]
    equipment: tuple[Equipment, ...]
    carriers: tuple[Carrier, ...]
    payers: tuple[Payer, ...]

    def _facilities_of(self, facility_type: str) -> tuple[Facility, ...]:
        return tuple(f for f in self.facilities if f.facility_type == facility_type)

    @property
    def plants(self) -> tuple[Facility, ...]:
        return self._facilities_of("PLANT")

    @property
    def dcs(self) -> tuple[Facility, ...]:
        return self._facilities_of("DC")

    @property
    def pharmacies(self) -> tuple[Facility, ...]:
        return self._facilities_of("PHARMACY")

    @property
    def cold_chain_products(self) -> tuple[Product, ...]:
        return tuple(p for p in self.products if p.cold_chain)

    def product(self, ndc: str) -> Product:
        """The product with this NDC; raises KeyError for an unknown one."""
        for p in self.products:
            if p.ndc == ndc:
                return p
        raise KeyError(ndc)

    def facility(self, facility_id: str) -> Facility:
        """The facility with this id; raises KeyError for an unknown one."""
        for f in self.facilities:
            if f.facility_id == facility_id:
                return f
        raise KeyError(facility_id)

    def equipment_at(self, site_id: str) -> tuple[Equipment, ...]:
        return tuple(e for e in self.equipment if e.site_id == site_id)


def _read(path: Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    """Rows of one CSV, failing early with the file name when a needed column is missing."""
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
        return [{k: (v or "").strip() for k, v in row.items() if k} for row in reader]


def _bool(text: str) -> bool:
    return text.strip().lower() in ("true", "1", "yes", "y", "t")


def load_reference(directory: Path | None = None) -> Reference:
    """Read the five reference CSVs from `directory` (default: the packaged dbt seeds)."""
    base = Path(directory) if directory is not None else DEFAULT_DIR
    products = tuple(
        Product(
            ndc=r["ndc"],
            name=r["name"],
            strength=r["strength"],
            dosage_form=r["dosage_form"],
            storage=r["storage"],
            list_price=Decimal(r["list_price"]),
            therapeutic_class=r.get("therapeutic_class", ""),
        )
        for r in _read(
            base / "products.csv",
            ("ndc", "name", "strength", "dosage_form", "storage", "list_price"),
        )
    )
    facilities = tuple(
        Facility(r["facility_id"], r["facility_type"], r["name"], r["region"], r["state"])
        for r in _read(
            base / "facilities.csv", ("facility_id", "facility_type", "name", "region", "state")
        )
    )
    equipment = tuple(
        Equipment(
            r["equipment_id"], r["site_id"], r["equipment_type"], r["name"], float(r["capacity_kg"])
        )
        for r in _read(
            base / "equipment.csv",
            ("equipment_id", "site_id", "equipment_type", "name", "capacity_kg"),
        )
    )
    carriers = tuple(
        Carrier(r["carrier_id"], r["name"], r["carrier_type"], _bool(r["cold_chain_capable"]))
        for r in _read(
            base / "carriers.csv", ("carrier_id", "name", "carrier_type", "cold_chain_capable")
        )
    )
    payers = tuple(
        Payer(r["payer_id"], r["name"], r["payer_type"])
        for r in _read(base / "payers.csv", ("payer_id", "name", "payer_type"))
    )
    return Reference(products, facilities, equipment, carriers, payers)

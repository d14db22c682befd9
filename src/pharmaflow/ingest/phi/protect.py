"""Apply Safe Harbor to a batch's valid events before anything is written.

`pharmacy.order.placed` patients are replaced by a pseudonymous profile (patient key, birth year
or 90+, state, 3-digit ZIP); the original goes sealed to the vault. Free-text fields lose emails,
phone numbers, SSNs, MRNs and — for events tied to an order — that order's patient's names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from pharmaflow.ingest.phi.scrub import scrub_names, scrub_patterns
from pharmaflow.ingest.phi.tokens import Tokenizer
from pharmaflow.ingest.phi.vault import NAME_TOKENS_SCHEMA, PATIENTS_SCHEMA, Sealer

# 3-digit ZIP areas with 20,000 people or fewer (HHS Safe Harbor guidance): reported as 000.
RESTRICTED_ZIP3 = frozenset(
    [
        "036",
        "059",
        "063",
        "102",
        "203",
        "556",
        "692",
        "790",
        "821",
        "823",
        "830",
        "831",
        "878",
        "879",
        "884",
        "890",
        "893",
    ]
)
_NAME_PARTS = re.compile(r"[\s'\u2019-]+")


def generalise_zip(zip_code: str | None) -> str | None:
    if not zip_code:
        return None
    zip3 = zip_code[:3]
    return "000" if zip3 in RESTRICTED_ZIP3 else zip3


def age_at(born: date, when: datetime) -> int:
    return when.year - born.year - ((when.month, when.day) < (born.month, born.day))


@dataclass
class ProtectedBatch:
    """What protection produced besides the rewritten payloads: rows for the vault."""

    patients: list[dict[str, Any]] = field(default_factory=list)
    name_tokens: list[dict[str, str]] = field(default_factory=list)

    def patients_table(self) -> pa.Table:
        return pa.Table.from_pylist(self.patients, schema=PATIENTS_SCHEMA)

    def name_tokens_table(self) -> pa.Table:
        return pa.Table.from_pylist(self.name_tokens, schema=NAME_TOKENS_SCHEMA)


class Protector:
    def __init__(
        self, tokenizer: Tokenizer, sealer: Sealer, name_tokens: dict[str, frozenset[str]]
    ) -> None:
        self.tokenizer = tokenizer
        self.sealer = sealer
        self.name_tokens = name_tokens

    def protect_patients(
        self,
        payloads: list[dict[str, Any]],
        event_ids: list[str],
        event_times: list[datetime],
        out: ProtectedBatch,
    ) -> None:
        """Replace each payload's `patient` in place; seal the original; learn its name tokens."""
        tok = self.tokenizer
        for payload, event_id, when in zip(payloads, event_ids, event_times, strict=True):
            patient = payload["patient"]
            key = tok.patient_key(patient["patient_id"])
            born = date.fromisoformat(patient["date_of_birth"])
            # Conservative: a birth year 90+ years before the event could reveal an age over 89
            # even when the birthday is still to come, so that year is withheld too.
            over_89 = when.year - born.year >= 90 or age_at(born, when) > 89
            address = patient.get("address") or {}
            payload["patient"] = {
                "patient_key": key,
                "birth_year": None if over_89 else born.year,
                "age_90_plus": over_89,
                "state": address.get("state"),
                "zip3": generalise_zip(address.get("zip")),
            }
            order_id = payload["order_id"]
            out.patients.append(
                {
                    "patient_key": key,
                    "order_id": order_id,
                    "event_id": event_id,
                    "event_time": when.replace(tzinfo=None),
                    "sealed": self.sealer.seal(orjson.dumps(patient), key.encode()),
                }
            )
            words = {
                w
                for n in (patient.get("first_name"), patient.get("last_name"))
                if n
                for w in _NAME_PARTS.split(n)
                if w
            }
            tokens = frozenset(tok.name_token(w) for w in words)
            self.name_tokens[order_id] = self.name_tokens.get(order_id, frozenset()) | tokens
            out.name_tokens.extend({"order_id": order_id, "name_token": t} for t in tokens)

    def scrub_free_text(self, payloads: list[dict[str, Any]], field_name: str) -> np.ndarray:
        """Scrub one free-text field across payloads (in place); True where the text changed."""
        originals = [p.get(field_name) for p in payloads]
        scrubbed = scrub_patterns(pa.array(originals, pa.string())).to_pylist()
        names = [self.name_tokens.get(p.get("order_id") or "", frozenset()) for p in payloads]
        if any(names):
            scrubbed = scrub_names(scrubbed, names, self.tokenizer.name_token)
        changed = np.fromiter(
            (a != b for a, b in zip(originals, scrubbed, strict=True)),
            dtype=bool,
            count=len(originals),
        )
        for i in np.flatnonzero(changed):
            payloads[i][field_name] = scrubbed[i]
        return changed

"""Apply Safe Harbor to a batch's valid events before anything is written.

`pharmacy.order.placed` patients are replaced by a pseudonymous profile (patient key, birth year
or 90+, state, 3-digit ZIP); the original goes sealed to the vault. Free-text fields (every
`pharmaflow.phi: free_text` field, at any depth, strings or lists of strings) lose, in this
order: e-mails, MRNs, dates, SSNs, phones and street addresses (pattern rules, `scrub.py`); the
name words of every patient the platform has seen (`names.py`); names and addresses it has not
seen (`detect.py`). A text in which nothing was found is kept byte for byte; one that changed
is stored in its NFKC form with labels in place of what was found.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from pharmaflow.ingest.phi.detect import Detector
from pharmaflow.ingest.phi.names import NameIndex, name_words
from pharmaflow.ingest.phi.scrub import normalise, scrub_patterns
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
    """Protects one run's batches. `name_tokens` (order_id → its patient's name tokens, from
    the vault) is loaded once per run and grows as patients arrive."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        sealer: Sealer,
        name_tokens: dict[str, frozenset[str]],
        detector: Detector | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.sealer = sealer
        self.names = NameIndex(tokenizer, name_tokens)
        self.detector = detector if detector is not None else Detector()

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
            words = name_words(patient.get("first_name"), patient.get("last_name"))
            tokens = frozenset(tok.name_token(w) for w in words)
            self.names.learn(order_id, tokens)
            out.name_tokens.extend({"order_id": order_id, "name_token": t} for t in tokens)

    def scrub_free_text(self, payloads: list[dict[str, Any]], path: str) -> np.ndarray:
        """Scrub one free-text field (`path` below the payload, dotted for nested records; a
        list of strings is scrubbed item by item) across payloads, in place. True where the
        text changed."""
        parts = path.split(".")
        holders = [_holder(p, parts) for p in payloads]
        name = parts[-1]
        values = [h.get(name) if h is not None else None for h in holders]
        changed = np.zeros(len(payloads), dtype=bool)
        texts: list[str | None] = []
        owners: list[int] = []
        for i, value in enumerate(values):
            if isinstance(value, str):
                texts.append(value)
                owners.append(i)
            elif isinstance(value, list):
                texts.extend(v if isinstance(v, str) else None for v in value)
                owners.extend([i] * len(value))
        if not texts:
            return changed
        order_ids = [payloads[i].get("order_id") for i in owners]
        scrubbed = self.scrub_texts(texts, order_ids)
        at = 0
        for i, value in enumerate(values):
            if isinstance(value, str):
                if scrubbed[at] is not value:
                    holders[i][name] = scrubbed[at]  # type: ignore[index]
                    changed[i] = True
                at += 1
            elif isinstance(value, list):
                new = scrubbed[at : at + len(value)]
                if any(a is not b for a, b in zip(new, value, strict=True)):
                    holders[i][name] = new  # type: ignore[index]
                    changed[i] = True
                at += len(value)
        return changed

    def scrub_texts(
        self, texts: Sequence[str | None], order_ids: Sequence[str | None]
    ) -> list[str | None]:
        """Each text scrubbed; the very same object where nothing was found."""
        out: list[str | None] = []
        names, detector = self.names, self.detector
        for original, order_id in zip(texts, order_ids, strict=True):
            if original is None:
                out.append(None)
                continue
            norm = normalise(original)
            text = detector.scrub(names.scrub(scrub_patterns(norm), order_id))
            out.append(original if text == norm else text)
        return out


def _holder(payload: dict[str, Any], parts: list[str]) -> dict[str, Any] | None:
    """The dict that holds the field `parts[-1]` (None when a record on the way is absent)."""
    node: Any = payload
    for part in parts[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None

"""`docs/contracts.md`, generated from the contract files so it cannot drift from them.

The Avro schemas are the single source of truth for field names, types, presence and rules, so
the per-event-type tables, the envelope table and the list of identifier patterns are rendered
from them; only the prose (what links the domains, wire forms, versioning, quarantine reasons,
what each identifier pattern accepts and refuses) is written here by hand. A test compares the
committed file with `render_contracts_doc()`. Regenerate it with

    python -m pharmaflow.contracts.docs docs/contracts.md

The schemas are read as JSON (`Contract.schema`), not through `FieldSpec`, so a rule attribute
appears in the document as soon as it is in a schema file.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pharmaflow.broker.topics import topic_for
from pharmaflow.contracts.registry import ContractRegistry, default_registry
from pharmaflow.ingest.reasons import ReasonCode

# How the patient protector treats each `pharmaflow.phi` class (src/pharmaflow/ingest/phi).
PHI_TREATMENT = {
    "free_text": "free text: e-mails, phone numbers, SSNs, MRNs (and on events with an "
    "`order_id` that order's patient's names) replaced at ingest",
    "identifier": "patient PHI: replaced by `patient_key` (keyed HMAC); original only in the vault",
    "name": "patient PHI: removed (kept as keyed tokens to scrub free text); original in the vault",
    "remove": "patient PHI: removed; original only in the vault",
    "zip": "patient PHI: generalised to the 3-digit ZIP (`000` for sparse areas)",
    "date_of_birth": "patient PHI: generalised to the birth year (none, and a 90+ flag, past 89)",
}

# What each identifier pattern is for, and its known limits. Keyed by the pattern itself; a
# test fails when a schema uses a pattern without a note here, or a note is left unused.
PATTERN_NOTES: dict[str, str] = {
    r"^[A-Za-z0-9][A-Za-z0-9_.:/#-]{0,127}$": (
        "Generic id: starts with a letter or digit, then letters, digits and `_ . : / # -`, "
        "1-128 characters. Accepts `ORD-000123`, `RPH_42`, UUIDs, hex and W3C trace ids "
        "(`00-4bf9…-01`), `survey-db:S-1`. Refuses anything with a space, `@`, parentheses, "
        "`+` or a comma, so an e-mail, a phone number written with spaces or parentheses, a "
        "full name (`Jane Doe`) or `MRN: 00424242` cannot pass. A dotted user name "
        "(`jane.doe`) still can: ids that name a person use the staff-id pattern."
    ),
    r"^[A-Za-z0-9][A-Za-z0-9_.:/#-]{0,191}$": (
        "Event id: the generic id, up to 192 characters, because derived ids prefix a source "
        "id (`survey-db:` + a 128-character `survey_id`)."
    ),
    r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$": (
        "System name (`oms`, `wms`, `survey-db`): starts with a letter; letters, digits, "
        "`_ . -`; up to 64 characters."
    ),
    r"^(?:[A-Za-z][A-Za-z_.:/#-]{0,31})?[0-9][A-Za-z0-9_.:/#-]{0,63}$": (
        "Staff id (pharmacist, operator, analyst): the generic id that must contain a digit, "
        "so a user name or a name (`jdoe`, `jane.doe`, `JANE_DOE`) is refused while "
        "`RPH-042`, `RPH_42`, `OP-118`, `QC-PL01-03`, `E12345` and UUIDs pass."
    ),
    r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,19}$": (
        "Lot number: up to 20 characters (the GS1 batch/lot limit): letters, digits, "
        "`_ . / -` (`L261101-1-01`, `LOT-B1`)."
    ),
    r"^[A-Z0-9][A-Z0-9_]{0,63}$": (
        "Code of an open vocabulary (`GROUND`, `SAME_DAY`, `EQUIPMENT`, `LAB_OOS`): upper "
        "case, digits and `_`. A string rather than an Avro enum so a new code needs no new "
        "schema version."
    ),
    r"^[A-Z0-9]{1,3}$": "NCPDP reject code: 1-3 upper-case letters or digits (`70`, `MR`, `1Y`).",
    r"^[A-Z0-9][A-Z0-9_-]{0,31}$": (
        "Promotion code: upper case, digits, `_ -`, up to 32 characters (`WELLNESS15`)."
    ),
    r"^[0-9]{5}-[0-9]{4}-[0-9]{2}$": (
        "NDC in 5-4-2 form with dashes (`00002-1433-80`). `[0-9]`, not `\\d`: Python and "
        "pydantic match any Unicode digit with `\\d`, RE2 only ASCII."
    ),
    r"^[A-Z]{2}$": "Two-letter US state or territory code (`MA`).",
    r"^\d{5}(-\d{4})?$": (
        "Patient ZIP or ZIP+4: patient PHI, not an identifier, so a mismatch is "
        "`invalid_format`; generalised to 3 digits at ingest. (`\\d` is ASCII-only in RE2.)"
    ),
    r"^[A-Za-z%°µμ][A-Za-z0-9%°µμ/.^·-]{0,15}(?: [a-z%°µμ][A-Za-z0-9%°µμ/.^·-]{0,15}){0,3}$": (
        "Unit of measure: a first token of letters, digits and `% ° µ / . ^ · -` that starts "
        "with a letter, `%`, `°` or `µ` (`C`, `°C`, `%RH`, `kPa`, `mm/s`, `mg/mL`, `EU/mL`), "
        "then up to three more tokens after single spaces that start in lower case or with "
        "`%` (`CFU/10 mL`, `% label claim`, `acceptance value`). `Jane Doe` is refused (a "
        "later token in upper case), but a lower-case name (`jane doe`) is not: the shape "
        "cannot tell it from `acceptance value`."
    ),
    (
        r"^[A-Za-z][A-Za-z0-9/.+-]{0,31}"
        r"(?: (?:[a-z][A-Za-z0-9/.+-]{0,31}|\([A-Za-z0-9/.+% -]{1,32}\))){0,7}$"
    ): (
        "Lab test name from the test catalogue, in sentence case as pharmacopoeias write them "
        "(`Assay`, `Bacterial endotoxin`, `Purity (SEC-HPLC)`, `Dissolution (30 min)`): a "
        "first word starting with a letter, then up to seven words that start in lower case "
        "or are in parentheses. Refuses `Jane Doe`, e-mails, phone numbers and `MRN: …`; "
        "limits: a lower-case name passes, and a Title Case catalogue name "
        "(`Total Organic Carbon`) is refused."
    ),
}


_PATIENT_PHI = frozenset(PHI_TREATMENT) - {"free_text"}


@dataclass(frozen=True)
class FieldRow:
    """One field as the document shows it (JSON-wire type, presence, rule, note)."""

    path: str
    type: str
    required: bool
    rule: str
    note: str
    pattern: str | None = None


def _unwrap(avro_type: Any) -> tuple[Any, bool]:
    if isinstance(avro_type, list):
        return next(t for t in avro_type if t != "null"), "null" not in avro_type
    return avro_type, True


def _type_name(avro_type: Any) -> str:
    simple = {
        "string": "string",
        "int": "integer (32-bit)",
        "long": "integer (64-bit)",
        "float": "number",
        "double": "number",
        "boolean": "boolean",
    }
    if isinstance(avro_type, str):
        return simple.get(avro_type, avro_type)
    logical = avro_type.get("logicalType")
    if logical in ("timestamp-millis", "timestamp-micros"):
        return "timestamp"
    if logical == "date":
        return "date"
    if logical == "decimal":
        return f"decimal({avro_type['precision']},{avro_type.get('scale', 0)})"
    kind = avro_type["type"]
    if kind == "enum":
        return "enum"
    if kind == "record":
        return "object"
    if kind == "array":
        return f"list of {_type_name(avro_type['items'])}s"
    return _type_name(kind)


def _rule(field: dict[str, Any], avro_type: Any) -> str:
    parts: list[str] = []
    if "pharmaflow.const" in field:
        parts.append(f"always `{field['pharmaflow.const']}`")
    if isinstance(avro_type, dict) and avro_type.get("type") == "enum":
        parts.append("one of " + ", ".join(f"`{s}`" for s in avro_type["symbols"]))
    phi = field.get("pharmaflow.phi")
    if phi is not None:
        parts.append(PHI_TREATMENT.get(phi, f"PHI `{phi}`"))
    pattern = field.get("pharmaflow.pattern")
    if pattern is not None:
        each = " (each item)" if isinstance(avro_type, dict) and "items" in avro_type else ""
        label = "identifier" if field.get("pharmaflow.identifier") is True else "pattern"
        parts.append(f"{label}{each} `{pattern}`")
    bounds = [
        (">=", field.get("pharmaflow.min")),
        (">", field.get("pharmaflow.exclusive_min")),
        ("<=", field.get("pharmaflow.max")),
    ]
    parts.extend(f"{op} {value:g}" for op, value in bounds if value is not None)
    return "; ".join(parts)


def field_rows(fields: list[dict[str, Any]], parent: str = "") -> Iterator[FieldRow]:
    """Every field below `fields`, depth first; a record is a row, then its children."""
    for field in fields:
        path = f"{parent}.{field['name']}" if parent else field["name"]
        avro_type, required = _unwrap(field["type"])
        yield FieldRow(
            path=path,
            type=_type_name(avro_type),
            required=required,
            rule=_rule(field, avro_type),
            note=" ".join(str(field.get("doc", "")).split()),
            pattern=field.get("pharmaflow.pattern"),
        )
        if isinstance(avro_type, dict) and avro_type.get("type") == "record":
            yield from field_rows(avro_type["fields"], path)


def _cell(text: str) -> str:
    """Markdown table cell: a `|` (regex alternation) would end the cell."""
    return text.replace("|", "\\|")


def _table(rows: list[FieldRow]) -> list[str]:
    out = ["| field | type | required | rule | note |", "|---|---|---|---|---|"]
    for r in rows:
        required = "yes" if r.required else "no"
        out.append(f"| `{r.path}` | {r.type} | {required} | {_cell(r.rule)} | {_cell(r.note)} |")
    return out


def _envelope_section(registry: ContractRegistry) -> list[str]:
    first = next(iter(registry))
    fields = [f for f in first.schema["fields"] if f["name"] != "payload"]
    rows = []
    for r in field_rows(fields):
        # `event_type` and the key's note are per contract; the first contract's say nothing.
        if r.path == "event_type":
            r = FieldRow(r.path, r.type, r.required, "the contract's event type", "", r.pattern)
        elif r.path == "key":
            note = "partition key: the value of the event type's key field"
            r = FieldRow(r.path, r.type, r.required, r.rule, note, r.pattern)
        rows.append(r)
    return [
        "## The envelope",
        "",
        "Every event is one JSON object (or one Avro record) with the same envelope fields, "
        "repeated in each schema file, and a `payload` object whose fields depend on "
        "`event_type` and `event_version`. The envelope's `key` is the value of the event "
        "type's key field (below) and is the Kafka message key, so one order's, batch's or "
        "shipment's events stay in one partition, in order. Duplicates are found by "
        "`event_id`: the same id twice is the same event, and only the first copy lands.",
        "",
        *_table(rows),
        "| `payload` | object | yes | the event type's payload (below) | |",
        "",
    ]


def _patterns_section(registry: ContractRegistry) -> list[str]:
    used: dict[str, list[str]] = {}
    for contract in registry:
        for row in field_rows(contract.schema["fields"]):
            if row.pattern is not None:
                name = row.path.removeprefix("payload.")
                fields = used.setdefault(row.pattern, [])
                if name not in fields:
                    fields.append(name)
    out = [
        "## Patterns",
        "",
        "Patterns are RE2 expressions (what Arrow's `match_substring_regex` runs at ingest), "
        "anchored with `^…$`. Identifier patterns use only constructs Python's `re` reads the "
        "same way (`[0-9]`, not `\\d`; no look-around), so the bench baseline, the survey "
        "API and the ingest validator agree. A list field's pattern applies to each item. "
        "A mismatch on an identifier is quarantined as `invalid_identifier`; on another "
        "patterned field (`zip`) as `invalid_format`.",
        "",
    ]
    for pattern, fields in used.items():
        out += [
            f"- `{pattern}`",
            f"  - used by: {', '.join(f'`{f}`' for f in fields)}",
            f"  - {PATTERN_NOTES.get(pattern, '(no note)')}",
        ]
    return [*out, ""]


def _event_sections(registry: ContractRegistry) -> list[str]:
    out = [
        "## Event types",
        "",
        "| event type | version | key | Kafka topic |",
        "|---|---|---|---|",
    ]
    contracts = list(registry)
    for c in contracts:
        out.append(
            f"| `{c.event_type}` | {c.version} | `{c.key_field}` | `{topic_for(c.event_type)}` |"
        )
    out.append("")
    for c in contracts:
        payload = next(f for f in c.schema["fields"] if f["name"] == "payload")
        out += [
            f"### `{c.event_type}` v{c.version}",
            "",
            f"Key: `payload.{c.key_field}`. Topic: `{topic_for(c.event_type)}`. Schema: "
            f"`src/pharmaflow/contracts/schemas/{c.event_type}/v{c.version}.avsc`.",
            "",
            *_table(list(field_rows(_unwrap(payload["type"])[0]["fields"], "payload"))),
            "",
        ]
    return out


_HEAD = """\
# Event contracts

<!-- Generated by `python -m pharmaflow.contracts.docs docs/contracts.md` from the schema files
in src/pharmaflow/contracts/schemas and the prose in src/pharmaflow/contracts/docs.py. Edit
those, not this file: a test fails when it is stale. -->

Every event pharmaflow reads follows a contract: one Avro schema per event type and version,
`src/pharmaflow/contracts/schemas/<event_type>/v<N>.avsc`, loaded by the contract registry
(`pharmaflow.contracts.registry`). Avro is the reference form (it is what a schema registry and
Confluent-framed Avro use); events also arrive as JSON, and the validator checks the JSON-wire
form described below. Rules Avro cannot express live in extra `pharmaflow.*` attributes on the
fields, which Avro tools ignore and keep:

| attribute | meaning |
|---|---|
| `pharmaflow.const` | the field always holds this value (`event_type`, `event_version`) |
| `pharmaflow.min`, `pharmaflow.max`, `pharmaflow.exclusive_min` | numeric bounds |
| `pharmaflow.pattern` | an RE2 pattern a string (each item of a string list) must match |
| `pharmaflow.identifier` | `true`: an id or code; a pattern mismatch is `invalid_identifier` |
| `pharmaflow.phi` | `free_text`, or a patient class: `identifier`, `name`, `remove`, `zip`, … |

Schema-level attributes: `pharmaflow.event_type`, `pharmaflow.version` and `pharmaflow.key` (the
payload field whose value is the envelope `key`).

## Every text field has a class

Each string field (envelope and payload, nested, and list items) is exactly one of:

- **identifier or code**: `"pharmaflow.identifier": true` and a `pharmaflow.pattern` (ids, keys,
  lot numbers, NDC, state, units, service levels, reject and promotion codes). The patterns
  refuse e-mails, phone numbers written with spaces or parentheses and full names, so a person
  typed into an id field is quarantined instead of reaching silver and gold.
- **enum**: an Avro enum; the value must be one of its symbols.
- **free text** (`"pharmaflow.phi": "free_text"`): survey comments, deviation descriptions and
  resolutions, shipment exception details, cancellation reasons. Kept, but scrubbed at ingest.
  A free-text field may sit anywhere in the payload (nested records, lists of strings).
- **patient PHI**: the `payload.patient` record of `pharmacy.order.placed`, handled by the
  patient protector (tokenised, generalised or removed; the original only in the encrypted
  vault).
- **constant**: `event_type` (`pharmaflow.const`); it selects the contract, so an unknown value
  is `unknown_event_type`.

`tests/unit/contracts/test_field_classification.py` fails if a field is in none of these classes
or in more than one, if a pattern does not compile in Python `re` and in RE2, refuses a value
the simulator writes, or accepts a hostile sample (an e-mail, `Jane Doe`, `+1 (415) 555-0134`,
`MRN: 00424242`).

## JSON wire forms

| Avro type | JSON wire form |
|---|---|
| `string`, enum | JSON string; a required string must not be empty |
| `int`, `long` | JSON integer within the Avro type's range (`"5"` and `5.0` are wrong types) |
| `double` | JSON number |
| `boolean` | `true` or `false` |
| `timestamp-millis` | ISO-8601 string with an offset or `Z` (see below) |
| `date` | ISO date string `YYYY-MM-DD` |
| `decimal(p,s)` | JSON number or numeric string with at most `s` fractional digits |
| array of strings | JSON array of strings |
| record | JSON object |
| `["null", T]` (optional) | the field may be absent or `null` |

Timestamps: `YYYY-MM-DD[T| ]HH:MM:SS[.fraction]` and an offset `Z`, `±HH`, `±HHMM` or `±HH:MM`
(hours 00 to 14), e.g. `2026-11-02T10:00:00.000Z` or `2026-11-02T05:00:00-05:00` (same instant):
one grammar that the validator, DuckDB and PostgreSQL all read alike. A time without an offset
is refused, since its instant is unknown. Up to 9 fractional digits are accepted (Java
`Instant`, Go `RFC3339Nano`) and truncated — not rounded — to microseconds, the warehouse's
precision; the lost nanoseconds are recorded nowhere, because no table could hold them, and
DuckDB and PostgreSQL read the same truncated value. Timestamps are stored in UTC.

Decimals: a JSON number or a string in plain notation (`"12.50"`, `"-3"`, `"007.10"`), the usual
lossless form for money. List items: a null item is `missing_field` and a non-string item
`wrong_type`, both at `path[]` (e.g. `payload.lot_numbers[]`); a list field's pattern applies to
each item. A UTF-8 byte-order mark at the start of a JSONL or CSV file is skipped; a CSV header
that repeats a column name refuses the file.

On Kafka, a value is either JSON or Confluent-framed Avro (magic byte 0, the 4-byte schema id,
the Avro body; one registry subject per record name). A framed value is decoded with its writer
schema into the same JSON-wire form and then validated like JSON
(`pharmaflow.contracts.avro_wire`). Fields a contract does not declare are dropped before
storage; they never cause a rejection.
"""

_LINKS = """\
## How the domains link

- **Lot genealogy.** `manufacturing.batch.status` names the `lot_number` a batch produces;
  `logistics.shipment.created.lot_numbers` lists the lots a shipment carries (plant to DC, DC to
  pharmacy); `pharmacy.order.filled.lot_number` is the lot dispensed for an order. Together they
  trace a lot from its batch to every order and patient key (`pharmaflow trace lot`).
- **Orders and shipments.** `pharmacy.order.shipped.shipment_id` is the shipment carrying an
  order to its patient; `logistics.shipment.created.order_id` is set on those shipments.
- **Surveys.** `feedback.survey.submitted.order_id` is the order the patient rates.
- **Batches.** Sensor readings, lab results and deviations carry the `batch_id` of the batch
  they belong to (it is also their key); `deviation.closed` repeats the `deviation_id` it
  closes.
- **Reference data.** `pharmacy_id`, `payer_id`, `site_id`, `equipment_id`, `carrier_id`,
  the facility ids and `ndc` name rows of the reference data (facilities, payers, equipment,
  carriers, products).
"""

_TAIL = """\
## Versioning and compatibility

A contract evolves by adding a new version file (`v2.avsc` next to `v1.avsc`); events name the
version they were written with (`event_version`) and are validated against it. The registry
refuses a new version that breaks the previous one under FULL compatibility
(`pharmaflow.contracts.compat`, Avro's schema-resolution rules, as a Confluent registry applies
them): new readers must read old data and old readers new data. In practice:

- a field may be added or removed only if it has a default (an optional `["null", T]` field
  with `"default": null`);
- a type may change only where Avro promotes it in both directions (`string` and `bytes`);
- enum symbols may be added only when the enum has a default;
- a logical type may not change (a `date` that becomes an `int` still decodes, but every reader
  would misread it), nor a decimal's precision or scale;
- the same version number registered twice with a different schema is refused.

`pharmaflow.*` rule attributes are outside Avro's resolution rules and are not checked by the
registry. Loosening a rule is safe; tightening one quarantines events that passed before, so do
it with a new version and tell the producers.

## Quarantine reason codes

A record that breaks its contract is not lost: it goes to the quarantine
(`lake/quarantine/…`, the raw record sealed) and, from Kafka, to `<topic>.dlq`, with a reason
code, the dotted field path and a detail that describes the rule, never the value (it may be
PHI). A record keeps the first reason it fails for.

| code | stage | meaning |
|---|---|---|
"""


def render_contracts_doc(registry: ContractRegistry | None = None) -> str:
    """The whole of `docs/contracts.md` for the contracts in `registry` (default: shipped)."""
    registry = registry or default_registry()
    reasons = [f"| `{code}` | {code.stage} | {_cell(code.meaning)} |" for code in ReasonCode]
    lines = [
        _HEAD,
        *_envelope_section(registry),
        *_patterns_section(registry),
        _LINKS,
        *_event_sections(registry),
        _TAIL + "\n".join(reasons),
    ]
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    """`python -m pharmaflow.contracts.docs [OUT]`: write the document (stdout without OUT)."""
    args = sys.argv[1:] if argv is None else argv
    text = render_contracts_doc()
    if not args:
        sys.stdout.write(text)
        return 0
    out = Path(args[0])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

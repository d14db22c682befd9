"""Quarantine reason codes: one vocabulary for every place a rejected record is described.

The codes are public: they are the quarantine's `reason_code` column, the `reason_code` header
of a dead letter, the `reason` label of the `pharmaflow_ingest_events_quarantined_total`
metric, the keys of `quarantine_reasons` in a batch manifest and the speed layer's
`quarantined` KPI. So they live
here once, as an enum whose members are their string values (a `StrEnum`: written and compared
as plain strings everywhere), each with the stage that assigns it and what it means; the table
in `docs/contracts.md` is generated from it.
"""

from __future__ import annotations

from enum import StrEnum


class ReasonCode(StrEnum):
    """Why a record was quarantined (the first reason it failed for)."""

    stage: str
    meaning: str

    def __new__(cls, value: str, stage: str = "", meaning: str = "") -> ReasonCode:
        member = str.__new__(cls, value)
        member._value_ = value
        member.stage = stage
        member.meaning = meaning
        return member

    MALFORMED_JSON = (
        "malformed_json",
        "decode",
        "not valid JSON; for CSV: not UTF-8, or the wrong column count",
    )
    DUPLICATE_KEY = (
        "duplicate_key",
        "decode",
        (
            "a JSON object, at any depth, names the same key twice (also written with escapes: "
            '`"n\\u0070s"` is `nps`); readers disagree on which copy counts (orjson and '
            "PostgreSQL take the last, DuckDB the first), so the event has no single meaning"
        ),
    )
    NOT_AN_OBJECT = ("not_an_object", "decode", "valid JSON, but not an object")
    UNDECODABLE = (
        "undecodable",
        "decode (Kafka, Pub/Sub)",
        (
            "Avro-framed record, but no schema registry configured (Kafka); a message a "
            "Pub/Sub schema encodes as BINARY (Pub/Sub)"
        ),
    )
    UNKNOWN_SCHEMA_ID = (
        "unknown_schema_id",
        "decode (Kafka)",
        "Avro frame names a schema id the registry lacks",
    )
    MALFORMED_AVRO = (
        "malformed_avro",
        "decode (Kafka)",
        "Avro body does not match its writer schema",
    )
    MISSING_FIELD = (
        "missing_field",
        "validate",
        "a required field is absent, null or an empty string",
    )
    WRONG_TYPE = ("wrong_type", "validate", 'a value of the wrong JSON type (`"5"` for an integer)')
    INVALID_TIMESTAMP = (
        "invalid_timestamp",
        "validate",
        "not an ISO-8601 timestamp with an offset",
    )
    INVALID_FORMAT = (
        "invalid_format",
        "validate",
        (
            "a date that is not ISO `YYYY-MM-DD`; a decimal string not in plain notation "
            '(`"1e2"`, `" 12.50"`); a string or key holding U+0000 (PostgreSQL cannot store '
            "it); a `pharmaflow.pattern` mismatch on a field that is not an identifier (`zip`)"
        ),
    )
    INVALID_IDENTIFIER = (
        "invalid_identifier",
        "validate",
        "an identifier or code does not match its pattern",
    )
    UNKNOWN_ENUM = ("unknown_enum", "validate", "not one of the enum's symbols")
    OUT_OF_RANGE = (
        "out_of_range",
        "validate",
        (
            "outside `pharmaflow.min`/`max`/`exclusive_min`; an integer beyond its Avro type "
            "(int: 32-bit, long: 64-bit, literals beyond 64 bits included); a non-finite "
            "double; a decimal with more fractional digits than its scale or more integer "
            "digits than precision minus scale (never rounded); a timestamp before "
            "`PHARMAFLOW_TIMESTAMP_MIN` (2000-01-01), an `event_time` more than "
            "`PHARMAFLOW_EVENT_TIME_MAX_AHEAD_HOURS` (24) after ingest, another timestamp more "
            "than `PHARMAFLOW_TIMESTAMP_MAX_AHEAD_DAYS` (366) after ingest; a date before "
            "1900-01-01 or after the day of ingest"
        ),
    )
    UNKNOWN_EVENT_TYPE = ("unknown_event_type", "validate", "no contract for this `event_type`")
    UNKNOWN_VERSION = (
        "unknown_version",
        "validate",
        "the event type has no contract of this `event_version`",
    )

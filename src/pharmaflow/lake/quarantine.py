"""Quarantine: every event that failed its contract, with a machine-readable reason.

The raw bytes are kept (sealed with the vault key, since a malformed event may carry PHI) so an
operator can fix and replay them; the reason never repeats the offending value.
"""

from __future__ import annotations

import pyarrow as pa

from pharmaflow.lake.bronze import PROVENANCE_FIELDS

QUARANTINE_SCHEMA = pa.schema(
    [
        *PROVENANCE_FIELDS,
        pa.field("event_id", pa.string()),
        pa.field("event_type", pa.string()),
        pa.field("reason_code", pa.string()),
        pa.field("reason_field", pa.string()),
        pa.field("reason_detail", pa.string()),
        pa.field("raw_encrypted", pa.binary()),
    ]
)

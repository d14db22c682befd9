"""The benches' keys: fixed, random-looking (pharmaflow refuses keys with too few distinct
bytes, such as "11" * 32), the same for every bench so their data dirs stay comparable."""

from __future__ import annotations

import hashlib

KEYS = {
    name: hashlib.sha256(f"pharmaflow-bench-{name}".encode()).hexdigest()
    for name in ("PHARMAFLOW_HMAC_KEY", "PHARMAFLOW_VAULT_KEY")
}

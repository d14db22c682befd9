"""Keyed-HMAC tokens: stable pseudonyms that cannot be reversed without the key.

The same MRN always gives the same patient key (so orders join across time), but without the
key nobody can test a guessed MRN against it, unlike a plain hash.
"""

from __future__ import annotations

import hashlib
import hmac


class Tokenizer:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def _digest(self, domain: str, value: str) -> str:
        msg = f"{domain}\x1f{value}".encode()
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()

    def patient_key(self, mrn: str) -> str:
        return "pk_" + self._digest("patient", mrn.strip().upper())[:32]

    def name_token(self, word: str) -> str:
        """Token of one name word, case-insensitive: lets free text be checked for a patient's
        name without the name itself being stored anywhere."""
        return self._digest("name", word.casefold())[:24]

"""Keyed-HMAC tokens: stable pseudonyms that cannot be reversed without the key.

The same MRN always gives the same patient key (so orders join across time), but without the
key nobody can test a guessed MRN against it, unlike a plain hash.
"""

from __future__ import annotations

import hmac
from functools import lru_cache


class Tokenizer:
    def __init__(self, key: bytes) -> None:
        self._key = key
        # Names and comment words repeat (refills, common words): memoise per tokenizer.
        self.name_token = lru_cache(maxsize=65536)(self._name_token)  # type: ignore[method-assign]

    def _digest(self, domain: str, value: str) -> str:
        return hmac.digest(self._key, f"{domain}\x1f{value}".encode(), "sha256").hex()

    def patient_key(self, mrn: str) -> str:
        return "pk_" + self._digest("patient", mrn.strip().upper())[:32]

    def _name_token(self, word: str) -> str:
        """Token of one name word, case-insensitive: lets free text be checked for a patient's
        name without the name itself being stored anywhere."""
        return self._digest("name", word.casefold())[:24]

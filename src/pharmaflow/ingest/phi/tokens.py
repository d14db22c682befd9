"""Keyed-HMAC tokens: stable pseudonyms that cannot be reversed without the key.

The same MRN always gives the same patient key (so orders join across time), but without the
key nobody can test a guessed MRN against it, unlike a plain hash.
"""

from __future__ import annotations

import hmac
import unicodedata
from functools import lru_cache


def fold(word: str) -> str:
    """NFKC + case folding (+ NFKC again, as Unicode's NFKC_Casefold): `JOSE\u0301`, `José` and
    `josé` fold alike, so a name typed decomposed or in capitals still matches its token."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", word).casefold())


def strip_marks(word: str) -> str:
    """The word without combining accents (`josé` → `jose`): people often type names plain."""
    decomposed = unicodedata.normalize("NFD", word)
    return unicodedata.normalize(
        "NFC", "".join(c for c in decomposed if not unicodedata.combining(c))
    )


class Tokenizer:
    def __init__(self, key: bytes) -> None:
        self._key = key
        # Names and comment words repeat (refills, common words): memoise per tokenizer.
        self.name_token = lru_cache(maxsize=262144)(self._name_token)  # type: ignore[method-assign]

    def _digest(self, domain: str, value: str) -> str:
        return hmac.digest(self._key, f"{domain}\x1f{value}".encode(), "sha256").hex()

    def patient_key(self, mrn: str) -> str:
        return "pk_" + self._digest("patient", mrn.strip().upper())[:32]

    def _name_token(self, word: str) -> str:
        """Token of one name word, folded (case, compatibility forms) and without accents: lets
        free text be checked for a patient's name without the name itself being stored."""
        folded = fold(word)
        if not folded.isascii():
            folded = strip_marks(folded)
        return self._digest("name", folded)[:24]

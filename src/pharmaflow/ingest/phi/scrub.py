"""Scrub identifiers out of free text (survey comments, deviation notes, cancellation reasons).

Patterns run as RE2 kernels over whole Arrow columns. A patient's own name cannot be found by a
pattern, so it is matched by token: every word of the text is HMAC'd and compared with the
tokens of the patient's first and last names, which the ingest keeps instead of the names.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import pyarrow as pa
import pyarrow.compute as pc

# Order matters: emails before phones (an email may hold digits), SSN before phone.
PATTERNS: tuple[tuple[str, str], ...] = (
    (r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}", "[EMAIL]"),
    (r"\b\d{3}-\d{2}-\d{4}\b", "[SSN]"),
    (r"(?:\+?1[\s.-]?)?(?:\(\d{3}\)|\b\d{3})[\s.-]?\d{3}[\s.-]?\d{4}\b", "[PHONE]"),
    (r"\bMRN[-\s#:]?\d{6,10}\b", "[MRN]"),
)
_WORD = re.compile(r"[^\W\d_]+(?:['\u2019-][^\W\d_]+)*")


def scrub_patterns(texts: pa.Array) -> pa.Array:
    """Replace emails, SSNs, phone numbers and MRNs in every string of the column."""
    for pattern, replacement in PATTERNS:
        texts = pc.replace_substring_regex(texts, pattern=pattern, replacement=replacement)
    return texts


def scrub_names(
    texts: Sequence[str | None], names: Sequence[frozenset[str]], token: Callable[[str], str]
) -> list[str | None]:
    """Replace each word whose token is in that row's name tokens with `[NAME]`."""
    out: list[str | None] = []
    for text, tokens in zip(texts, names, strict=True):
        if not text or not tokens:
            out.append(text)
            continue

        def replace(match: re.Match[str], tokens: frozenset[str] = tokens) -> str:
            word = match.group(0)
            parts = [word, *re.split(r"['\u2019-]", word)]
            if any(token(p) in tokens for p in parts if p):
                return "[NAME]"
            return word

        out.append(_WORD.sub(replace, text))
    return out

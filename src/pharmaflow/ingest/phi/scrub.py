"""Pattern rules for identifiers in free text (survey comments, deviation notes, exception details).

The rules run after Unicode NFKC normalisation (so full-width digits, ligatures and decomposed
accents look like their plain forms) and case-insensitively where case carries no meaning
(`mrn#…`, `dob`). What they find is replaced by a label: `[EMAIL] [PHONE] [SSN] [MRN] [DATE]
[ADDRESS]` (`[NAME]` comes from `names.py` and `detect.py`).

They are Python `re` patterns compiled once, not RE2 kernels over Arrow columns: free text is a
few texts in a thousand events, and RE2 recompiles a pattern on every call (5-20 ms each for
these Unicode-aware ones, measured), which cost far more than matching the texts themselves.
Look-arounds keep a value from matching inside a longer id (the lot `LOT-2026-11-0042`, the
NDC `00002-1433-80`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

# Not preceded / followed by a letter, digit, underscore or hyphen: a value standing on its own.
_PRE = r"(?<![\w-])"
_POST = r"(?![\w]|-[\w])"
_LETTER = r"[^\W\d_]"
_UPPER = r"[A-Z\u00c0-\u00d6\u00d8-\u00de]"
_MONTHS = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_STREET_WORDS = (
    "Street", "Avenue", "Road", "Boulevard", "Lane", "Drive", "Court", "Way", "Place",
    "Terrace", "Circle", "Parkway", "Highway", "Square", "Trail", "Alley", "Row", "Crescent",
)  # fmt: skip
_STREET_ABBREVIATIONS = (
    "St", "Ave", "Rd", "Blvd", "Ln", "Dr", "Ct", "Pl", "Ter", "Cir", "Pkwy", "Hwy", "Sq", "Trl",
)  # fmt: skip
# A full word takes no dot (that is the sentence's full stop); an abbreviation may.
_STREET_TYPE = (
    "(?:(?:"
    + "|".join(t for s in _STREET_WORDS for t in (s, s.upper()))
    + ")|(?:"
    + "|".join(t for s in _STREET_ABBREVIATIONS for t in (s, s.upper()))
    + r")\.?)"
)
# House number, optional direction, one to four capitalised words, a street type, optional unit.
_ADDRESS = (
    _PRE + r"\d{1,6}[A-Za-z]?\s+(?:(?:[NSEW]|North|South|East|West)\.?\s+)?"
    rf"(?:{_UPPER}[\w'.-]*\s+){{0,3}}{_UPPER}[\w'-]*\s+"
    + _STREET_TYPE
    + r"(?:,?\s+(?:Apt|APT|Apartment|Suite|Ste|STE|Unit|UNIT|#)\.?\s*#?\s*[\w-]+)?"
    + _POST
)

# (label, pattern). Order matters: e-mail first (it may hold digits), dates and MRNs before
# phones and SSNs (`1950-03-04` is no phone, `MRN 123456789` no SSN), addresses last.
PATTERNS: tuple[tuple[str, str], ...] = (
    (
        "EMAIL",
        r"(?<![\w.%+-])[\w.%+-]+@[\w-]+(?:\.[\w-]+)*\." + _LETTER + r"{2,}(?![\w])",
    ),
    (
        "MRN",
        r"(?i)(?<!\w)(?:mrn|mr\s*#|medical\s+record(?:\s+(?:number|no\.?|#))?)"
        r"\s*(?:no\.?|number)?\s*[-:#]?\s*[a-z]{0,3}\d{4,12}" + _POST,
    ),
    (
        "DATE",
        r"(?i)" + _PRE + r"(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.](?:\d{4}|\d{2})"
        r"|" + _MONTHS + r"\.?\s+\d{1,2}(?:st|nd|rd|th)?,?\s+\d{4}"
        r"|\d{1,2}(?:st|nd|rd|th)?\s+(?:of\s+)?" + _MONTHS + r"\.?,?\s+\d{4})" + _POST,
    ),
    (
        "SSN",
        _PRE + r"(?:\d{3}-\d{2}-\d{4}|\d{3} \d{2} \d{4}|\d{9})" + _POST,
    ),
    (
        "PHONE",
        _PRE + r"(?:"
        # +44 20 7946 0958, +49 30 1234567, +1 (415) 555-0134
        r"\+\d{1,3}[\s.-]?\(?\d{1,5}\)?(?:[\s.-]?\d{2,8}){1,4}"
        # 0049 30 1234567 (international prefix, spaced: an NDC is hyphenated)
        r"|00[1-9]\d{0,2} \d{1,5}(?: ?\d{2,8}){1,3}"
        # (415) 555-0134, 415.555.0134, 415-555-0134, 4155550134
        r"|(?:1[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-]?)\d{3}[\s.-]?\d{4}"
        # 07700 900123, 020 7946 0958 (national trunk prefix 0)
        r"|0\d{2,4}[\s-]?\d{3,4}[\s-]?\d{3,4}"
        r")" + _POST,
    ),
    ("ADDRESS", _ADDRESS),
)
LABELS = tuple(label for label, _ in PATTERNS)
_COMPILED = tuple((re.compile(pattern), f"[{label}]") for label, pattern in PATTERNS)
# Cheap gate: every rule needs a digit or an "@".
_MAYBE = re.compile(r"[\d@]")


def normalise(text: str) -> str:
    """NFKC: the form every rule (and the stored text, when something is replaced) is in."""
    return text if text.isascii() else unicodedata.normalize("NFKC", text)


def scrub_patterns(text: str) -> str:
    """Replace e-mails, MRNs, dates, SSNs, phones and street addresses in an (already
    normalised) text with their labels."""
    if not _MAYBE.search(text):
        return text
    for pattern, label in _COMPILED:
        text = pattern.sub(label, text)
    return text


def scrub_all(texts: Sequence[str | None]) -> list[str | None]:
    """Normalise and pattern-scrub each text (None stays None)."""
    return [None if t is None else scrub_patterns(normalise(t)) for t in texts]

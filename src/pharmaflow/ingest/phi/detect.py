"""Names and street addresses the platform has not seen yet (a comment that arrives before its
order, a relative named in a deviation note), found offline.

No NER model can be installed here, so detection is candidate spans confirmed by data that
ships in two PyPI packages (about 9 MB installed, all offline):
- names: runs of capitalised words, split at words that are never names
  (`lexicon.NOT_NAMES`); a run is a name when a word announces it ("Mrs.", "name is", "from"),
  when it starts with a US given name (the 5,163 census first names shipped in
  `probablepeople.gender`), or, for a run of two or more words, when probablepeople's CRF
  tags it as a person rather than a corporation. A run after "Dr."/"Doctor" is a clinician,
  not patient data, and is kept.
- addresses: a house number followed by capitalised words (or a PO box), confirmed by
  usaddress's CRF: a street address with a street name and a street type, direction, unit, or
  a city with a state. "12 Vials" or "8 Cartons Received" have only a number and a word.
Only texts with a capitalised word or a house-number shape are looked at, and probablepeople
(its tables take half a second to import) only when a run needs its CRF. Measured precision and
recall: `bench/phi_detection.py` and docs/phi.md.
"""

from __future__ import annotations

import importlib.util
import re
import threading
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

from pharmaflow.errors import PharmaflowError
from pharmaflow.ingest.phi.lexicon import (
    COMMON_WORDS,
    NAME_CUES,
    NOT_NAMES,
    PROVIDER_TITLES,
    SIGN_OFF_CUES,
)
from pharmaflow.ingest.phi.names import NAME_LABEL, WORD
from pharmaflow.ingest.phi.tokens import fold, strip_marks

ADDRESS_LABEL = "[ADDRESS]"
_CANDIDATE = re.compile(r"[A-Z\u00c0-\u00de]|\d\s+[^\W\d_]")
_ADDRESS_SPAN = re.compile(
    r"(?<![\w-])(?:(?:P\.?\s?O\.?|Post\s+Office)\s+Box\s+\d+"
    r"|\d{1,6}[A-Za-z]?\s+(?:[NSEW]\.?\s+)?[A-Z][\w'.-]*(?:\s+[A-Z0-9][\w'.-]*){0,4}"
    r"(?:,?\s+(?:Apt|Suite|Ste|Unit|#)\.?\s*#?\s*[\w-]+)?"
    r"(?:,\s*[A-Z][a-z]+(?:\s+[A-Z][a-z]+)?,?\s+[A-Z]{2}(?:\s+\d{5}(?:-\d{4})?)?)?)"
)
_STREET_CONFIRM = frozenset(
    {
        "StreetNamePostType",
        "StreetNamePreDirectional",
        "StreetNamePostDirectional",
        "StreetNamePreType",
        "OccupancyType",
        "StateName",
        "ZipCode",
    }
)
_ADDRESS_PARTS = _STREET_CONFIRM | {
    "AddressNumber",
    "AddressNumberSuffix",
    "StreetName",
    "OccupancyIdentifier",
    "PlaceName",
    "USPSBoxType",
    "USPSBoxID",
}
_STRONG_CUE = re.compile(
    r"(?:\bname\s+is|\bthis\s+is|\bi\s+am|\bi'm|\bsigned|\bfamily\s+of)\s*$", re.IGNORECASE
)
_SENTENCE_END = re.compile(r"(?:^|[.!?:;]\s*|\n\s*)$")
_ENDS_SENTENCE = re.compile(r"\s*(?:$|[.!?,;:\n])")


class Detector:
    """Finds unseen names and addresses; loads its data on first use (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._given: frozenset[str] | None = None
        self._address: Any = None
        self._people: Any = None

    # -- data ----------------------------------------------------------------------------------

    def _load(self) -> None:
        with self._lock:
            if self._given is None:
                import usaddress

                self._address = usaddress
                self._given = _given_names()

    def _person(self, run: str) -> bool:
        """probablepeople's CRF: is this run a person (not a corporation)? Imported on demand."""
        if self._people is None:
            with self._lock:
                if self._people is None:
                    import probablepeople

                    self._people = probablepeople
        return _tag_person(self._people, run)

    # -- detection -----------------------------------------------------------------------------

    def scrub(self, text: str) -> str:
        """The text with unseen names and street addresses replaced by their labels."""
        if not _CANDIDATE.search(text):
            return text
        if self._given is None:
            self._load()
        spans = sorted(self.spans(text), reverse=True)
        for start, end, label in spans:
            text = text[:start] + label + text[end:]
        return text

    def spans(self, text: str) -> list[tuple[int, int, str]]:
        """Non-overlapping (start, end, label) spans of names and addresses in the text."""
        if self._given is None:
            self._load()
        found = list(self._addresses(text))
        taken = [(s, e) for s, e, _ in found]
        for start, end in self._names(text):
            if not any(s < end and start < e for s, e in taken):
                found.append((start, end, NAME_LABEL))
        return found

    def _addresses(self, text: str) -> Iterator[tuple[int, int, str]]:
        for match in _ADDRESS_SPAN.finditer(text):
            span = match.group(0)
            end = _address_end(self._address, span)
            if end:
                yield match.start(), match.start() + end, ADDRESS_LABEL

    def _names(self, text: str) -> Iterator[tuple[int, int]]:
        given = self._given
        assert given is not None
        words = list(WORD.finditer(text))
        i = 0
        while i < len(words):
            if not _is_capitalised(words[i].group(0)):
                i += 1
                continue
            j = i + 1
            while (
                j < len(words)
                and _is_capitalised(words[j].group(0))
                and _only_space(text[words[j - 1].end() : words[j].start()])
            ):
                j += 1
            yield from self._run_names(text, words, i, j, given)
            i = j

    def _run_names(
        self, text: str, words: list[re.Match[str]], i: int, j: int, given: frozenset[str]
    ) -> Iterator[tuple[int, int]]:
        """Names inside the capitalised run words[i:j], split at words that are never names."""
        k = i
        while k < j:
            if _never_name(words[k].group(0)):
                k += 1
                continue
            m = k
            while m < j and not _never_name(words[m].group(0)):
                m += 1
            if self._is_name(text, words, k, m, given):
                yield words[k].start(), words[m - 1].end()
            k = m

    def _is_name(
        self, text: str, words: list[re.Match[str]], k: int, m: int, given: frozenset[str]
    ) -> bool:
        before = text[: words[k].start()]
        previous = fold(words[k - 1].group(0)).rstrip(".") if k > 0 else ""
        if previous in PROVIDER_TITLES and _only_space(before[words[k - 1].end() :].rstrip(".")):
            return False
        if previous in NAME_CUES or _STRONG_CUE.search(before):
            return True
        if previous in SIGN_OFF_CUES and _ENDS_SENTENCE.match(text, words[m - 1].end()):
            return True
        first = strip_marks(fold(words[k].group(0)))
        if first in given and (m - k >= 2 or first not in COMMON_WORDS):
            return True
        if m - k >= 2:
            run = text[words[k].start() : words[m - 1].end()]
            starts_sentence = _SENTENCE_END.search(before) is not None
            return not starts_sentence and self._person(run)
        return False


def _given_names() -> frozenset[str]:
    """probablepeople's census given names, loaded from its `gender.py` alone, without the
    package's `__init__` (which loads 150,000 name ratios: half a second)."""
    spec = importlib.util.find_spec("probablepeople")
    if spec is None or not spec.submodule_search_locations:
        raise PharmaflowError("probablepeople is not installed (a pharmaflow dependency)")
    path = Path(next(iter(spec.submodule_search_locations))) / "gender.py"
    gender_spec = importlib.util.spec_from_file_location("_pharmaflow_given_names", path)
    if gender_spec is None or gender_spec.loader is None:
        raise PharmaflowError(f"cannot load the given-name table {path}")
    module = importlib.util.module_from_spec(gender_spec)
    gender_spec.loader.exec_module(module)
    return frozenset(module.gender_names)


def _is_capitalised(word: str) -> bool:
    """Title-case (Okonkwo, O'Brien, José): all-capital words are codes (QC, NDC, LOT)."""
    return word[0].isupper() and (len(word) == 1 or not word.isupper())


def _never_name(word: str) -> bool:
    return len(word) < 2 or fold(word) in NOT_NAMES


def _only_space(gap: str) -> bool:
    return gap == " " or (gap.isspace() and "\n" not in gap)


@lru_cache(maxsize=4096)
def _address_end_cached(usaddress: Any, span: str) -> int:
    try:
        tokens = usaddress.parse(span)
    except Exception:  # the CRF tokeniser is not ours to trust on hostile text
        return 0
    labels = {label for _, label in tokens}
    box = {"USPSBoxType", "USPSBoxID"} <= labels
    street = {"AddressNumber", "StreetName"} <= labels and bool(labels & _STREET_CONFIRM)
    if not (box or street):
        return 0
    end = 0
    cursor = 0
    for token, label in tokens:
        at = span.find(token, cursor)
        if at < 0:
            break
        cursor = at + len(token)
        if label in _ADDRESS_PARTS:
            end = cursor
        else:
            break
    return end


def _address_end(usaddress: Any, span: str) -> int:
    """Length of the address at the start of the span (0: none)."""
    return _address_end_cached(usaddress, span)


def _tag_person(people: Any, run: str) -> bool:
    try:
        _, kind = people.tag(run)
    except Exception:  # RepeatedLabelError and the like: ambiguous, so not confirmed
        return False
    return kind == "Person"

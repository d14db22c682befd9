"""Names of patients the platform has seen, found in free text by keyed token.

The vault keeps, per order, the HMAC tokens of its patient's name words (never the names). For
scrubbing, every token of every order is one global set: a comment naming ANY known patient
loses that name, whether or not it carries the order id, and whatever order the events came
in within the run (patients are protected before free text in each batch, and each batch's
new tokens join the set at once).

Many names are ordinary words ("will", "may", "mark", "grace", "brown"). The rule:
- the linked order's own patient (the text's payload carries that `order_id`) matches in any
  case: the patient wrote about themself;
- any other known patient's word matches in any case, unless it is a common word
  (`lexicon.COMMON_WORDS`); then it must be capitalised and either not start a sentence or
  stand next to another matched name word ("Will Okonkwo called" scrubs both; "Will deliver",
  "may arrive", "the Brown box" stay).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pharmaflow.ingest.phi.lexicon import COMMON_WORDS
from pharmaflow.ingest.phi.tokens import Tokenizer, fold

NAME_LABEL = "[NAME]"
# A word: letters and combining marks, joined by apostrophes or hyphens (O'Brien, Smith-Jones).
_LETTERS = r"(?:[^\W\d_]|[\u0300-\u036f])+"
WORD = re.compile(rf"{_LETTERS}(?:['\u2019-]{_LETTERS})*")
_PARTS = re.compile(r"['\u2019-]")
_SENTENCE_END = re.compile(r"(?:^|[.!?:;]\s*|\n\s*)$")
_NAME_SPLIT = re.compile(r"[\s'\u2019-]+")


def name_words(*names: str | None) -> set[str]:
    """The words of a patient's name fields, as they are tokenised."""
    return {w for n in names if n for w in _NAME_SPLIT.split(n) if w}


class NameIndex:
    """Global name tokens plus, per order, its own patient's tokens."""

    def __init__(self, tokenizer: Tokenizer, by_order: dict[str, frozenset[str]]) -> None:
        self.tokenizer = tokenizer
        self.by_order = by_order
        self.known: set[str] = set().union(*by_order.values()) if by_order else set()

    def learn(self, order_id: str, tokens: Iterable[str]) -> None:
        tokens = frozenset(tokens)
        self.by_order[order_id] = self.by_order.get(order_id, frozenset()) | tokens
        self.known |= tokens

    def scrub(self, text: str, order_id: str | None) -> str:
        """The text with every word of a known patient's name replaced by `[NAME]`."""
        if not self.known:
            return text
        token = self.tokenizer.name_token
        linked = self.by_order.get(order_id or "", frozenset())
        known = self.known
        words = list(WORD.finditer(text))
        hits = [False] * len(words)
        weak: list[int] = []  # common words of other patients: decided by their context
        for i, match in enumerate(words):
            word = match.group(0)
            parts = [word, *_PARTS.split(word)] if _PARTS.search(word) else [word]
            tokens = [token(p) for p in parts if p]
            if any(t in linked for t in tokens):
                hits[i] = True
            elif any(t in known for t in tokens):
                if fold(word) in COMMON_WORDS:
                    weak.append(i)
                else:
                    hits[i] = True
        openers = []
        for i in weak:
            if not words[i].group(0)[0].isupper():
                continue
            if _SENTENCE_END.search(text[: words[i].start()]) is None:
                hits[i] = True
            else:
                openers.append(i)
        for i in openers:  # "Will Brown called": an opener beside a name is one too
            hits[i] = (i > 0 and hits[i - 1]) or (i + 1 < len(words) and hits[i + 1])
        if not any(hits):
            return text
        out: list[str] = []
        last = 0
        for match, hit in zip(words, hits, strict=True):
            if hit:
                out.append(text[last : match.start()])
                out.append(NAME_LABEL)
                last = match.end()
        out.append(text[last:])
        return "".join(out)

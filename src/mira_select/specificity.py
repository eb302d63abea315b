"""Is a rubric text about the group, or about a few of its records? ("covers distcc", "uses ctypes")

An anchor's definition must apply to any record of its group. A term gives it away when it comes from the records
yet is rare in them (a few records out of many) and rare in English (wordfreq's Zipf frequency), and the teacher's
judgments mention it for one record only: a tool, a library, a topic. Domain words pass: "docstring" or
"constructor" are rare in English and in most records, but the teacher brings them up for many records, so they are
part of how this kind of record is judged; "reproducibility" comes from no record at all, so it is the teacher's own
general word. Identifiers (snake_case, camelCase) that only part of the records contain are always specific.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

_TERM = re.compile(r"[A-Za-z_][A-Za-z0-9_]{3,}")
MAX_ZIPF = 3.0  # below: rarer than ~1 per million words of English
_IDENTIFIER = re.compile(r"_|[a-z][A-Z]|\d")  # snake_case, camelCase, digits: names from code or tools


@dataclass
class GroupVocabulary:
    """Document frequency of terms over a sample of a group's records."""

    df: Counter
    n_records: int
    judged: Counter | None = None  # term -> records whose free-form judgments mention it

    @classmethod
    def from_texts(cls, texts: list[str], judgments: dict[str, list[str]] | None = None) -> "GroupVocabulary":
        """``texts``: a sample of the group's records; ``judgments``: record id -> the teacher's reasons for it."""
        df: Counter = Counter()
        for t in texts:
            df.update({w.lower() for w in _TERM.findall(t)})
        judged = None
        if judgments is not None:
            judged = Counter()
            for reasons in judgments.values():
                judged.update({w.lower() for r in reasons for w in _TERM.findall(r)})
        return cls(df, len(texts), judged)

    def specific_terms(self, text: str, max_share: float = 0.1) -> list[str]:
        """Terms of ``text`` that occur in some but at most ``max_share`` of the records and are rare in English."""
        from wordfreq import zipf_frequency

        limit = max(1, int(max_share * self.n_records))
        out = []
        for term in dict.fromkeys(_TERM.findall(text)):
            w = term.lower()
            n = self.df.get(w, 0)
            if n == 0:
                continue
            if _IDENTIFIER.search(term) and n <= self.n_records // 2:  # a tool / function / file name
                out.append(term)
            elif n <= limit and zipf_frequency(w, "en") < MAX_ZIPF and self._judged_once(w):
                out.append(term)
        return out

    def _judged_once(self, w: str) -> bool:
        """The judgments name the term for at most one record (always true without judgments)."""
        return self.judged is None or self.judged.get(w, 0) <= 1

"""Is a rubric text about the group, or about a few of its records? ("covers distcc", "the PR description")

An anchor's definition must apply to any record of its group. A term gives it away when it comes from the records
yet is rare in them (a few records out of many) and rare in English (wordfreq's Zipf frequency), e.g. a tool name,
a library, a person: "docstring" is rare in English but common in a code group; "reproducibility" is rare in both
but comes from no record, so it is the teacher's own general word.
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

    @classmethod
    def from_texts(cls, texts: list[str]) -> "GroupVocabulary":
        df: Counter = Counter()
        for t in texts:
            df.update({w.lower() for w in _TERM.findall(t)})
        return cls(df, len(texts))

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
            elif n <= limit and zipf_frequency(w, "en") < MAX_ZIPF:
                out.append(term)
        return out

"""Is a rubric text about the group, or about a few of its records or one of its sources? ("covers distcc",
"relevant to learning Flask", "calculates the stock price changes", "the expected output, which is 25")

An anchor's definition must apply to any record of its group, so a term gives it away when it comes from the
records yet only a part of them is about it:

- **rare**: it occurs in at most ``max_share`` of the group's records, at most one record's judgment names it, and
  either that record is about it (`subject_terms`: "stock" three times in one word problem) or the term is a name
  rare in English. Domain words pass because the judgments bring them up for many records ("docstring",
  "concise"); the teacher's own general words pass because no record holds them ("reproducibility"); the
  commonest English words always pass.
- **one source's**: most records holding it come from one source (in a group of two sources: all but 5 %), at
  least a tenth of that source's records hold it, the judged records it was taken from are mostly that source's,
  and it is not an everyday word ("Django", "Flask" in a group of docs); a criterion about it cannot be scored on
  the other sources' records.
- **an identifier** (snake_case, camelCase, digits) that only part of the records contain.
- **a number from the records**: a version ("8.5.1") or a value of two or more digits that records hold ("25"),
  other than the scale's own 0 / 5 / 10.

English frequency alone does not separate these (wordfreq's Zipf: "island" 5.0 and "clear" 5.3; "stock" 4.9 and
"examples" 4.6), so it only exempts the very commonest words; the records and the judgments decide.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from importlib import resources
from typing import Callable

from .teacher.schema import ANCHOR_FIELDS

_TERM = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,}")
COMMON_ZIPF = 5.5  # at or above: among the commonest English words ("which", "should"), never specific
RARE_ZIPF = 3.0  # below: rarer than ~1 per million words of English (a term of art, a name)
NAME_ZIPF = 4.5  # below: rarer than ~3 per 100k words ("django" 3.1, "dynamic" 4.3; "examples" 4.6)
# a judged record that holds a term this often is about it: a judgment naming it took it from there
SUBJECT_COUNT, SUBJECT_SHARE = 2, 0.01
_IDENTIFIER = re.compile(r"_|[a-z][A-Z]|\d")  # snake_case, camelCase, digits: names from code or tools
_VERSION = re.compile(r"(?<![\w.])v?\d+(?:\.\d+)+(?!\w|\.\d)")
_NUMBER = re.compile(r"(?<![\w.])\d{2,}(?!\w|\.\d)")  # "25." at a sentence's end too
SCALE_NUMBERS = frozenset({"10"})
ONE_SOURCE_SHARE = 0.75  # of the records holding a term, at least this share from one source: that source's term
# ... with two sources three quarters is too weak a sign (half is what chance gives): the term must be that source's
# alone ("Wikipedia", "Wolfram" in 42 and 33 records of a tool-use source, none of its code-QA neighbour)
TWO_SOURCE_SHARE = 0.95
# ... and a source's term is typical of it: held by at least this share of its records (and MIN_TYPICAL of them)
TYPICAL_SHARE, MIN_TYPICAL = 0.1, 3
ONE_SOURCE_QUOTES = 2 / 3  # ... and the judged records it was taken from are mostly that source's
MASK = "…"  # what `GroupVocabulary.masked` shows instead of a specific term


@dataclass
class GroupVocabulary:
    """Document frequency of terms over a sample of a group's records, per source, and which terms the teacher's
    judgments took from the records they judged."""

    df: Counter
    n_records: int
    judged: Counter | None = None  # term -> records whose free-form judgments mention it
    df_by_source: dict[str, Counter] = field(default_factory=dict)  # term -> records holding it, per source
    quoted: Counter = field(default_factory=Counter)  # term -> judged records about it whose judgment names it
    quoted_sources: dict[str, Counter] = field(default_factory=dict)  # term -> those records per source
    numbers: set[str] = field(default_factory=set)  # every number of two or more digits the records hold
    n_by_source: Counter = field(default_factory=Counter)  # records per source

    @classmethod
    def from_texts(cls, texts: list[str], judgments: dict[str, list[str]] | None = None,
                   sources: list[str] | None = None,
                   judged_records: dict[str, tuple[str, str]] | None = None) -> "GroupVocabulary":
        """``texts``: a sample of the group's records (``sources``: the source of each); ``judgments``: record id
        -> the teacher's reasons for it; ``judged_records``: record id -> (source, text) of the judged records."""
        df: Counter = Counter()
        by_source: dict[str, Counter] = defaultdict(Counter)
        numbers: set[str] = set()
        for i, t in enumerate(texts):
            terms = _terms(t)
            df.update(terms)
            if sources is not None:
                by_source[sources[i]].update(terms)
            numbers.update(_NUMBER.findall(t))
        judged, quoted, quoted_sources = None, Counter(), defaultdict(Counter)
        if judgments is not None:
            judged = Counter()
            for record_id, reasons in judgments.items():
                named = {w.lower() for r in reasons for w in _TERM.findall(r)}
                judged.update(named)
                if judged_records and record_id in judged_records:
                    source, text = judged_records[record_id]
                    taken = subject_terms(text) & named
                    quoted.update(taken)
                    for w in taken:
                        quoted_sources[w][source] += 1
        return cls(df, len(texts), judged, dict(by_source), quoted, dict(quoted_sources), numbers,
                   Counter(sources or []))

    def specific_terms(self, text: str, max_share: float = 0.1) -> list[str]:
        """Terms of ``text`` that name a part of the group's records rather than the whole group (module doc)."""
        from wordfreq import zipf_frequency

        limit = max(1, int(max_share * self.n_records))
        out = list(dict.fromkeys(_VERSION.findall(text)))
        out += [n for n in dict.fromkeys(_NUMBER.findall(text)) if n in self.numbers and n not in SCALE_NUMBERS
                and n not in out]
        for term in dict.fromkeys(_TERM.findall(text)):
            w = term.lower()
            n = self.df.get(w, 0)
            if n == 0:
                continue
            if _IDENTIFIER.search(term):
                if n <= self.n_records // 2:  # a tool / function / file name
                    out.append(term)
                continue
            zipf = zipf_frequency(w, "en")
            if zipf >= COMMON_ZIPF:
                continue
            rare_once = n <= limit and self._judged_once(w)
            if (rare_once and (zipf < RARE_ZIPF or self.quoted.get(w, 0) >= 1)) or self._one_sources(w, n, zipf):
                out.append(term)
        return out

    def masked(self, text: str) -> str:
        """``text`` with every term `specific_terms` finds shown as "…": a judgment point the anchor writer cannot
        copy a record's subject from."""
        for term in self.specific_terms(text):
            text = re.sub(rf"(?<![\w.]){re.escape(term)}(?![\w]|\.\d)", MASK, text, flags=re.IGNORECASE)
        return text

    def criterion_problems(self, anchor: dict[str, str]) -> list[str]:
        """Everything discovery's check finds wrong with a criterion (``anchor``: name, definition, score_0/5/10):
        terms only part of the group's records are about, levels that repeat each other, and `form_problems`.
        Empty when the criterion is usable; the sentences go back to the teacher in the repair request."""
        terms = self.specific_terms(" ".join(anchor[k] for k in ANCHOR_FIELDS))
        problems = [f"it names {', '.join(repr(t) for t in terms[:6])}, which only some records are about; write "
                    "the criterion in general terms that apply to every record of this kind"] if terms else []
        levels = levels_problem(levels_of(anchor))
        return problems + ([levels] if levels else []) + form_problems(anchor)

    def _judged_once(self, w: str) -> bool:
        """The judgments name the term for at most one record (always true without judgments)."""
        return self.judged is None or self.judged.get(w, 0) <= 1

    def _one_sources(self, w: str, n: int, zipf: float) -> bool:
        """Most records holding the term are one source's, it is what judged records of mostly that source are
        about (so the criterion took it from them), and it is a name or a term of art rather than an everyday word
        (those pile up in one source by chance; ``zipf``: the term's English Zipf frequency)."""
        if len(self.df_by_source) < 2:
            return False
        share = ONE_SOURCE_SHARE if len(self.df_by_source) > 2 else TWO_SOURCE_SHARE
        source, count = max(((s, c.get(w, 0)) for s, c in self.df_by_source.items()), key=lambda sc: sc[1])
        typical = count >= max(MIN_TYPICAL, TYPICAL_SHARE * self.n_by_source[source])
        taken_from = self.quoted_sources.get(w, Counter())
        taken_here = taken_from[source] >= ONE_SOURCE_QUOTES * sum(taken_from.values()) > 0
        return count >= share * n and typical and taken_here and zipf < NAME_ZIPF


def _terms(text: str) -> set[str]:
    return {w.lower() for w in _TERM.findall(text)}


def subject_terms(text: str) -> set[str]:
    """Terms a record is about: said at least ``SUBJECT_COUNT`` times and at least ``SUBJECT_SHARE`` of its terms
    ("stock" three times in a 150-word word problem; "easy" twice in a 2,000-word page is not its subject)."""
    counts = Counter(w.lower() for w in _TERM.findall(text))
    total = sum(counts.values())
    return {w for w, c in counts.items() if c >= SUBJECT_COUNT and c >= SUBJECT_SHARE * total}


MIDDLE_LEVEL = "Meets the criterion in part: between the 0 and the 10 descriptions."
LEVELS = ("0", "5", "10")


def levels_of(anchor: dict[str, str]) -> dict[str, str]:
    """``{"0": ..., "5": ..., "10": ...}`` of a criterion in the teacher's fields (score_0 / score_5 / score_10)."""
    return {level: anchor[f"score_{level}"] for level in LEVELS}


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


def levels_problem(levels: dict[str, str]) -> str | None:
    """The 0 / 5 / 10 descriptions must say different things: a small teacher often repeats the 10 as the 5 (then
    the label prompt shows no difference between the two and the scale collapses). None when they differ."""
    seen: dict[str, str] = {}
    for level, description in levels.items():
        key = _norm(description)
        if key in seen:
            return (f"score_{seen[key]} and score_{level} say the same thing; say what a record at {seen[key]} "
                    f"does differently from one at {level}")
        seen[key] = level
    return None


def mended_middle(anchor: dict[str, str], problems: Callable[[dict[str, str]], list[str]]) -> dict[str, str] | None:
    """``anchor`` (name, definition, score_0/5/10) with the neutral ``MIDDLE_LEVEL`` as its 5, when its 5 was its
    only fault: a middle that repeats an end ("Every step is explained." as the 5 and the 10) or that describes the
    scale ("not as detailed as the 10"). The 0 and the 10 carry the criterion; a small teacher rarely writes a
    usable middle, and the label prompt is better without a false one. None when anything else is wrong with it
    (``problems`` of the mended anchor), the two ends saying the same included."""
    candidate = {**anchor, "score_5": MIDDLE_LEVEL}
    return None if problems(candidate) else candidate


# a scale point named as such: "score 5", "at 10", "the 0", "a 5"; and an ordinal or a "10-point" scale
_SCALE_POINT = re.compile(r"(?:\bscor(?:e[sd]?|ing)|\brat(?:ed|ing))(?:\s+(?:is|of|a|an|at|as|be|would|will))*"
                          r"\s+(0|5|10)\b(?![-.,/%]?\d)|(?:\bat|\bthe|\ban?)\s+(0|5|10)\b(?![-.,/%]?\d)",
                          re.IGNORECASE)
_SCALE_META = re.compile(r"\b(?:0|5|10)(?:th\b|-point\b)", re.IGNORECASE)
_PLACEHOLDER = re.compile(rf"{MASK}|(?<!\w)\.{{3}}")  # the masked rewrite's "…", or dots standing for a word
_CODE_SPAN = re.compile(r"`([^`\n]+)`")  # `f[1]`, `n + 1`: code quoted from one record's solution


ECHO_WORDS = 5  # a run of this many words of the anchor prompt's own instructions is copied, not written


def _words(text: str) -> list[str]:
    return _norm(text).split()


@functools.cache
def _instruction_runs() -> frozenset[tuple[str, ...]]:
    """Every run of ``ECHO_WORDS`` words in the instructions of the prompt that asks for a criterion."""
    words = _words(resources.files("mira_select.prompts").joinpath("anchor/base.md").read_text(encoding="utf-8"))
    return frozenset(tuple(words[i:i + ECHO_WORDS]) for i in range(len(words) - ECHO_WORDS + 1))


def echoed_instruction(text: str) -> str | None:
    """The first run of words ``text`` copies from the criterion prompt's instructions, or None. A small teacher
    sometimes answers the rule instead of following it ("The final answer ... does not contain any topic, library,
    product, file, person, number or version from the examples")."""
    words, runs = _words(text), _instruction_runs()
    return next((" ".join(words[i:i + ECHO_WORDS]) for i in range(len(words) - ECHO_WORDS + 1)
                 if tuple(words[i:i + ECHO_WORDS]) in runs), None)


def form_problems(anchor: dict[str, str]) -> list[str]:
    """What makes a criterion unusable whatever its terms (``anchor``: name, definition, score_0/5/10 as the
    teacher wrote them). A small teacher copies the masked points' "…" into the criterion; quotes one solution's
    code (`f[1]`); drifts into another script mid-sentence ("well-组织ed"); and describes the scale instead of
    records: a definition that says what score it gives ("The combined score is 10 because …"), a level that points
    at another level ("A 5 is neither the 0 nor the 10", "not as detailed as the 10-point version", "the 5th"). It
    also copies the prompt's own rules into a definition (`echoed_instruction`); only the definition is checked for
    that, since a level that opens with the prompt's "a record scoring 0 on this criterion" still describes one.
    The label prompt shows these texts to every record, so each of them would be read as a criterion of its own."""
    problems = []
    fields = {k: v for k, v in anchor.items() if k == "name" or k == "definition" or k.startswith("score_")}
    if any(_PLACEHOLDER.search(v) for v in fields.values()):
        problems.append('it contains "…" where a word should be; say in general words what the records share')
    quoted = [m for v in fields.values() for m in _CODE_SPAN.findall(v)]
    if quoted:
        problems.append(f"it quotes code ({', '.join(repr(q) for q in quoted[:4])}); say in words what property of "
                        "the code the criterion judges")
    if any(_mixed_scripts(v) for v in fields.values()):
        problems.append("it mixes scripts; write every sentence in one language")
    definition = fields.get("definition", "")
    if _SCALE_POINT.search(definition) or _SCALE_META.search(definition):
        problems.append("the definition states a score; say what property of a record the criterion judges")
    if echo := echoed_instruction(definition):
        problems.append(f'the definition repeats the instructions ("{echo}"); say what property of a record the '
                        "criterion judges")
    for key, text in fields.items():
        if not key.startswith("score_") or text == MIDDLE_LEVEL:
            continue
        own = key[len("score_"):]
        others = {m.group(1) or m.group(2) for m in _SCALE_POINT.finditer(text)} - {own}
        if others or _SCALE_META.search(text):
            problems.append(f"{key} describes the scale ({', '.join(sorted(others)) or 'an ordinal'}); describe "
                            f"what a record at {own} looks like, without naming other scores")
    return problems


def _mixed_scripts(text: str) -> bool:
    """Letters of more than one script (Latin and CJK, say): the teacher drifted from the prompt's language."""
    scripts = {unicodedata.name(ch, "?").split(" ")[0] for ch in text if ch.isalpha()}
    return len(scripts - {"?"}) > 1

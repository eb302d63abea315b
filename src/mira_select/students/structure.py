"""Structural signals of a record: what a mean of hashed n-grams cannot see.

A mean-pooled bag of n-grams scores a tool call repeated six times like the call made once, a shuffled file like the
file, and a minified bundle like a tidy one with the same identifiers. These few dense, length-robust numbers see
repetition (duplicate lines, repeated n-grams, compressibility), layout (line lengths), character make-up, and the
prefilter's own rules as graded values (a parse with the likeliest tree-sitter grammar, repeated action +
observation pairs, an unfinished trajectory, the answer's share of a QA record), computed from the text so the
pipeline, the `Scorer` API and the datatrove filter give a record the same features. The student weighs them
against the teacher's labels like any feature. The same family of signals drives Gopher /
C4 / FineWeb quality rules and StarCoder's code filters; here they are inputs to a learned score, not thresholds.
"""

from __future__ import annotations

import contextlib
import re
import zlib

import numpy as np

from ..embed import remembered_embeddings
from ..hashing import cap_text

FEATURES = (
    "dup_line_frac",  # share of non-empty lines that repeat an earlier line
    "dup_line_char_frac",  # share of characters in such lines
    "top_3gram_frac",  # share of word 3-grams taken by the most frequent one
    "dup_3gram_frac",  # share of word 3-grams that occurred before
    "compress_ratio",  # zlib size / raw size (low = repetitive)
    "mean_line_len_log",
    "max_line_len_log",
    "long_line_frac",  # lines over 300 characters (minified, data blobs)
    "alnum_frac",
    "space_frac",
    "punct_frac",
    "upper_frac",
    "digit_frac",
    "nonascii_frac",
    "empty_line_frac",
    "unique_word_frac",  # distinct words / words (type-token ratio over the first 2,000 words)
    # the prefilter's rules as graded signals (prefilter/rules.py), whatever the record's format: a rule that only
    # flags (by default) still tells the student something the n-grams cannot see
    "parse_error_share",  # bytes in tree-sitter error nodes, likeliest grammar
    "action_repeats_log",  # log(1 + repeats of the most repeated action + observation pair)
    "no_final_answer",  # 1: a trajectory that stops on an action without finishing or answering
    "answer_share",  # QA records: answer characters / record characters (0: no question/answer split)
    # QA records: share of the question's distinct words (3+ letters) that the answer uses. An answer written for
    # another question shares little of this one's vocabulary (200 demo QA pairs each, answers swapped between
    # records: the original scores higher in 95 % / 99 %); 0.5 where there is no question/answer split
    "answer_overlap",
    # reasoning records (`<think>` … `</think>` then the answer, as records.render_text lays them out): does the
    # answer follow from the trace? Both are 0.5 / 0 where they do not apply, so other formats see constants.
    "answer_matches_trace",  # 1: the answer's last number is one the trace ends on; 0: it is not; 0.5: n/a
    "answer_code_error_share",  # the answer's last fenced code block: share of bytes in parse-error nodes
    # ... and, when it is Python, the share of its functions annotated to return a value that never return, yield
    # or raise (mypy's "missing return statement"): code that parses but cannot deliver what it promises
    "answer_missing_return",
)
# Bumped whenever FEATURES or how they are computed changes: part of the train stage's inputs, so students refit.
# v5: the parse grammar is voted by lines (order-free), not the head's first match; answer_overlap; v6:
# answer_missing_return
FEATURE_VERSION = 6
MAX_CHARS = 8_000  # the statistics are read from the first 8k characters: enough to judge, bounded cost
# the structure signals (turns, the final answer) read the whole record up to this size, its head and tail beyond it:
# a trajectory's ending is where "did it finish?" is answered (v3 read the first 8k only, so every long trajectory
# looked unfinished)
MAX_STRUCTURE_CHARS = 200_000
_WORD = re.compile(r"\w+")
_LETTERS = re.compile(r"[^\W\d_]{3,}")
# byte class: 0 lower/other letter, 1 upper, 2 digit, 3 whitespace, 4 punctuation, 5 non-ASCII byte
_LUT = np.full(256, 5, np.int8)
for _b in range(128):
    _c = chr(_b)
    _LUT[_b] = 1 if _c.isupper() else 0 if _c.isalpha() else 2 if _c.isdigit() else 3 if _c.isspace() else 4


_memo: dict[str, np.ndarray] | None = None


@contextlib.contextmanager
def remembered():
    """Inside, each distinct text's signals (and embeddings, `embed.remembered_embeddings`) are computed once:
    `mira train` fits a group's few hundred labels ~11 times (folds x tiers, then the kept student), and the
    signals cost more than the fits."""
    global _memo
    outer, _memo = _memo, {} if _memo is None else _memo
    try:
        with remembered_embeddings():
            yield
    finally:
        _memo = outer


def structural_features(texts: list[str]) -> np.ndarray:
    """-> float32 [n, len(FEATURES)]."""
    out = np.zeros((len(texts), len(FEATURES)), np.float32)
    for i, text in enumerate(texts):
        row = _memo.get(text) if _memo is not None else None
        if row is None:
            row = np.asarray(_one(text[:MAX_CHARS], cap_text(text, MAX_STRUCTURE_CHARS)), np.float32)
            if _memo is not None:
                _memo[text] = row
        out[i] = row
    return out


def _one(text: str, whole: str) -> list[float]:
    """``text``: the head the statistics are read from; ``whole``: the record (head + tail of a very long one) for
    the signals about its structure, which live anywhere (a loop mid-trajectory, the final answer at its end)."""
    raw = text.encode("utf-8", "surrogatepass")
    n = max(len(raw), 1)
    lines = text.split("\n")
    nonempty = [ln.strip() for ln in lines if ln.strip()]
    seen: set[str] = set()
    dup_lines = dup_chars = 0
    for ln in nonempty:
        if ln in seen:
            dup_lines += 1
            dup_chars += len(ln)
        else:
            seen.add(ln)
    words = _WORD.findall(text)
    top = dup = 0.0
    if len(words) >= 3:
        h = np.fromiter((hash(w) for w in words), np.int64, len(words)).astype(np.uint64)
        grams = h[:-2] * np.uint64(0x9E3779B97F4A7C15) ^ h[1:-1] * np.uint64(0xC2B2AE3D27D4EB4F) ^ h[2:]
        _, counts = np.unique(grams, return_counts=True)
        top = float(counts.max() / len(grams))
        dup = float(1.0 - len(counts) / len(grams))
    ratio = len(zlib.compress(raw, 6)) / n
    lens = np.fromiter((len(ln) for ln in lines), np.float64, len(lines))
    cls = np.bincount(_LUT[np.frombuffer(raw, np.uint8)], minlength=6) / n
    first = words[:2000]
    return [
        dup_lines / max(len(nonempty), 1),
        dup_chars / n,
        top,
        dup,
        ratio,
        float(np.log1p(lens.mean())),
        float(np.log1p(lens.max())),
        float((lens > 300).mean()),
        float(cls[0] + cls[1] + cls[2]),
        float(cls[3]),
        float(cls[4]),
        float(cls[1]),
        float(cls[2]),
        float(cls[5]),
        1.0 - len(nonempty) / max(len(lines), 1),
        len(set(first)) / max(len(first), 1),
        *_rule_signals(whole),
        *_answer_signals(whole),
    ]


def _rule_signals(text: str) -> list[float]:
    from ..prefilter.rules import action_repeats, guessed_error_share, no_final_answer, split_qa

    qa = split_qa(text)
    return [guessed_error_share(text, MAX_CHARS), float(np.log1p(action_repeats(text))),
            float(no_final_answer(text, None) is not None),
            len(qa[1].strip()) / max(len(text), 1) if qa else 0.0, _answer_overlap(qa)]


def _answer_overlap(qa: tuple[str, str] | None) -> float:
    if qa is None:
        return 0.5
    question, answer = ({w.lower() for w in _LETTERS.findall(part)} for part in qa)
    return len(question & answer) / len(question) if question and answer else 0.5


_THINK_END = "</think>"
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_CODE_FENCE = re.compile(r"```[\w+-]*\n(.*?)```", re.S)
TRACE_TAIL = 3  # the trace "ends on" its last few numbers (a result is often restated: "= <<9*2=18>>18")


def _numbers(text: str) -> list[float]:
    out = []
    for m in _NUMBER.finditer(text):
        try:
            out.append(float(m.group().replace(",", "")))
        except ValueError:  # "1,,2": digits and commas that are not one number
            continue
    return out


def _answer_signals(text: str) -> list[float]:
    """Whether a reasoning record's answer agrees with its own trace: a tidy trace ending on 150 followed by
    "Answer: 152" is the defect a rubric's "answer follows from the reasoning" anchor punishes, and a mean of
    n-grams cannot see it (the two records differ in one token). Code answers are judged by whether they parse."""
    head, sep, tail = text.rpartition(_THINK_END)
    if not sep:
        return [0.5, 0.0, 0.0]
    if fences := _CODE_FENCE.findall(tail):
        from ..prefilter.rules import error_share, parse_guessed

        if not fences[-1].strip():
            return [0.5, 1.0, 0.0]
        lang, tree, n_bytes = parse_guessed(fences[-1], MAX_CHARS)  # one parse for both code signals
        return [0.5, error_share(tree, n_bytes), missing_return_share(tree) if lang == "python" else 0.0]
    answer = _numbers(tail)
    if not answer:
        return [0.5, 0.0, 0.0]
    return [float(any(abs(answer[-1] - x) < 1e-9 for x in _numbers(head)[-TRACE_TAIL:])), 0.0, 0.0]


_EXITS = frozenset({"return_statement", "yield", "raise_statement"})
_SCOPES = frozenset({"function_definition", "lambda", "class_definition"})  # their returns are not the outer one's


def missing_return_share(tree) -> float:
    """Share of the functions of a Python syntax tree annotated to return something (not None / NoReturn) whose
    body has no return, yield or raise of its own."""
    stack = [tree.root_node]
    annotated = missing = 0
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        returns = node.child_by_field_name("return_type") if node.type == "function_definition" else None
        if returns is None or returns.text in (b"None", b"NoReturn"):
            continue
        annotated += 1
        body, found = [node.child_by_field_name("body")], False
        while body and not found:
            n = body.pop()
            found = n is not None and n.type in _EXITS
            if n is not None and not found:
                body.extend(c for c in n.children if c.type not in _SCOPES)
        missing += not found
    return missing / annotated if annotated else 0.0


class StructureScaler:
    """The structural signals of a student's texts, standardized with the mean and spread of its training texts
    (a constant signal keeps scale 1); an empty [n, 0] block when the student does not use them."""

    def __init__(self, enabled: bool):
        n = len(FEATURES) if enabled else 0
        self.enabled = enabled
        self.mean = np.zeros(n, np.float32)
        self.scale = np.ones(n, np.float32)

    def fit(self, texts: list[str]) -> np.ndarray:
        """Learn mean and spread from the training texts; -> their standardized block."""
        if not self.enabled:
            return np.zeros((len(texts), 0), np.float32)
        f = structural_features(texts)
        std = f.std(axis=0)
        self.mean, self.scale = f.mean(axis=0), np.where(std > 1e-6, std, 1.0).astype(np.float32)
        return self.standardize(f)

    def transform(self, texts: list[str]) -> np.ndarray:
        if not self.enabled:
            return np.zeros((len(texts), 0), np.float32)
        return self.standardize(structural_features(texts))

    def standardize(self, f: np.ndarray) -> np.ndarray:
        return ((f - self.mean) / self.scale).astype(np.float32)

    def weights(self) -> dict[str, np.ndarray]:
        return {"struct_mean": self.mean, "struct_scale": self.scale} if self.enabled else {}

    def set_weights(self, arrays: dict[str, np.ndarray]) -> None:
        if self.enabled:
            self.mean = arrays["struct_mean"].astype(np.float32)
            self.scale = arrays["struct_scale"].astype(np.float32)

"""Vectorised tokenisation and hashing of a whole batch of texts at once (numpy, no per-token Python).

Shared by the `hashed_linear` student (word + bigram features), the contamination guard (word 13-grams) and the
n-gram baselines. The token rule suits code and prose alike: a run of word bytes (letters, digits, ``_``, any
non-ASCII byte) is a token, every punctuation byte is a token, every whitespace run is a token.

Every token's hash comes from one prefix sum: with P[i] = sum_{j<=i} b[j] B^j (mod 2**64) a token [s, e] hashes to
(P[e] - P[s-1]) B^-s, a polynomial hash independent of where the token sits. The same trick over a sequence of
token hashes gives n-gram hashes for any n in one more pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

MIX = np.uint64(0x9E3779B97F4A7C15)
_BASE = 0x5BD1E995_3C6EF372 | 1  # odd, so invertible modulo 2**64

WORD, SPACE, PUNCT = 0, 1, 2
CLASS = np.full(256, PUNCT, dtype=np.int8)
for _c in b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_":
    CLASS[_c] = WORD
CLASS[0x80:] = WORD
for _c in b" \t\n\r\x0b\x0c":
    CLASS[_c] = SPACE


def _inverse_mod64(a: int) -> int:
    x = a  # Newton's iteration doubles the correct low bits each step: 3 -> 6 -> ... -> 96 >= 64
    for _ in range(5):
        x = (x * (2 - a * x)) % (1 << 64)
    return x


def _power_table(base: int, n: int) -> np.ndarray:
    """[base**0, base**1, ...] modulo 2**64 (numpy's uint64 products wrap, which is the modulus we want)."""
    out = np.empty(n, np.uint64)
    out[0] = 1
    if n > 1:
        out[1:] = np.cumprod(np.full(n - 1, base, np.uint64), dtype=np.uint64)
    return out


class _Powers:
    """BASE**i and BASE**-i modulo 2**64 for i < n, grown on demand and shared by every caller in the process."""

    up = np.ones(1, np.uint64)
    down = np.ones(1, np.uint64)

    @classmethod
    def get(cls, n: int) -> tuple[np.ndarray, np.ndarray]:
        if len(cls.up) < n:
            size = max(n, 2 * len(cls.up), 1 << 16)
            cls.up = _power_table(_BASE, size)
            cls.down = _power_table(_inverse_mod64(_BASE), size)
        return cls.up[:n], cls.down[:n]


def cap_text(text: str, max_chars: int) -> str:
    """Head (80%) + tail (20%) of a long record: enough to judge style and ending without unbounded cost."""
    if len(text) <= max_chars:
        return text
    head = int(max_chars * 0.8)
    return text[:head] + "\n" + text[len(text) - (max_chars - head):]


@dataclass
class TokenBatch:
    """Tokens of a batch in document order: hash, class (WORD/SPACE/PUNCT) and document of each token."""

    hashes: np.ndarray  # uint64
    classes: np.ndarray  # int8
    doc: np.ndarray  # int64, non-decreasing
    byte_lengths: np.ndarray  # int64 per document
    n_docs: int


def _byte_buffer(texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The texts' UTF-8 bytes end to end; -> (bytes, byte length per text, each text's first byte)."""
    data = [t.encode("utf-8", "surrogatepass") for t in texts]
    lengths = np.fromiter((len(b) for b in data), dtype=np.int64, count=len(data))
    return np.frombuffer(b"".join(data), dtype=np.uint8), lengths, np.cumsum(lengths) - lengths


def _span_hashes(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each byte span [start, end] (inclusive), from one rolling prefix sum over the buffer: the
    one token hash every caller shares."""
    up, down = _Powers.get(len(buf))
    prefix = np.cumsum(buf * up, dtype=np.uint64)
    below = np.where(starts > 0, prefix[starts - 1], np.uint64(0))
    h = (prefix[ends] - below) * down[starts] + np.uint64(1)
    return (h * MIX) ^ (h >> np.uint64(29))


def tokenize_batch(texts: list[str], max_chars: int | None = None, lower: bool = False) -> TokenBatch:
    raw = [(cap_text(t, max_chars) if max_chars else t) for t in texts]
    buf, lengths, doc_starts = _byte_buffer([t.lower() for t in raw] if lower else raw)
    n_docs = len(lengths)
    if len(buf) == 0:
        return TokenBatch(np.empty(0, np.uint64), np.empty(0, np.int8), np.empty(0, np.int64), lengths, n_docs)
    cls = CLASS[buf]
    boundary = np.empty(len(buf), dtype=bool)
    boundary[0] = True
    boundary[1:] = (cls[1:] != cls[:-1]) | (cls[1:] == PUNCT)
    boundary[doc_starts[lengths > 0]] = True
    starts = np.flatnonzero(boundary)
    hashes = _span_hashes(buf, starts, np.r_[starts[1:], len(buf)] - 1)
    doc = np.searchsorted(doc_starts, starts, side="right") - 1
    return TokenBatch(hashes, cls[starts], doc, lengths, n_docs)


def word_hashes(texts: list[str], lower: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(hash, document) of the WORD tokens of :func:`tokenize_batch` only, with the same hash values: a caller that
    reads words alone (the contamination guard, on every ingested byte) skips hashing whitespace and punctuation."""
    buf, lengths, doc_starts = _byte_buffer([t.lower() for t in texts] if lower else texts)
    if len(buf) == 0:
        return np.empty(0, np.uint64), np.empty(0, np.int64)
    word = CLASS[buf] == WORD
    edge = np.zeros(len(buf) + 1, dtype=bool)  # a document start is a token boundary whatever the bytes around it
    edge[doc_starts[lengths > 0]] = True
    edge[len(buf)] = True
    before = np.r_[False, word[:-1]] & ~edge[:-1]
    after = np.r_[word[1:], False] & ~edge[1:]
    starts = np.flatnonzero(word & ~before)
    hashes = _span_hashes(buf, starts, np.flatnonzero(word & ~after))
    return hashes, np.searchsorted(doc_starts, starts, side="right") - 1


def ngram_hashes(hashes: np.ndarray, doc: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of every n consecutive tokens within one document; -> (ngram hash, its document)."""
    m = len(hashes) - n + 1
    if m <= 0:
        return np.empty(0, np.uint64), np.empty(0, np.int64)
    up, down = _Powers.get(len(hashes))
    prefix = np.cumsum(hashes * up, dtype=np.uint64)
    start = np.arange(m)
    below = np.where(start > 0, prefix[start - 1], np.uint64(0))
    g = (prefix[start + n - 1] - below) * down[start] + np.uint64(n)
    same = doc[:m] == doc[n - 1:]
    return ((g * MIX) ^ (g >> np.uint64(31)))[same], doc[:m][same]


def indptr(doc_of_feature: np.ndarray, n_docs: int) -> np.ndarray:
    """CSR row pointers for features grouped by non-decreasing document id."""
    return np.r_[0, np.cumsum(np.bincount(doc_of_feature, minlength=n_docs))].astype(np.int64)


def batches(texts: list[str], max_chars: int | None = None, budget: int = 1 << 20) -> list[tuple[int, int]]:
    """[lo, hi) ranges of about ``budget`` characters (each text counted up to ``max_chars``, the cap its caller
    applies; None: whole): big enough that numpy's per-call overhead vanishes, small enough that a batch's byte
    buffer and hash arrays stay a few tens of MB whatever the corpus."""
    out, lo, size = [], 0, 0
    for i, t in enumerate(texts):
        size += len(t) if max_chars is None else min(len(t), max_chars)
        if size >= budget:
            out.append((lo, i + 1))
            lo, size = i + 1, 0
    if lo < len(texts):
        out.append((lo, len(texts)))
    return out


def stream_batches(texts: Iterable[str], max_chars: int | None = None, budget: int = 1 << 20) -> Iterator[list[str]]:
    """:func:`batches` for a stream: lists of about ``budget`` characters (each text counted up to ``max_chars``),
    so a fit over a whole corpus holds one batch at a time."""
    batch: list[str] = []
    size = 0
    for t in texts:
        batch.append(t)
        size += len(t) if max_chars is None else min(len(t), max_chars)
        if size >= budget:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch

"""Contamination guard: flag records that contain a benchmark solution (word n-gram overlap), at ingest.

A record is contaminated when it covers ≥ ``threshold`` (0.5) of the distinct word 13-grams of some benchmark
solution. Solutions shorter than 13 words count as one n-gram of their own length (a short SQL query is either in
the record or not); solutions under ``min_words`` (8) words are too generic to attribute and are skipped. Words are
the word tokens of `hashing` on lower-cased text, so punctuation and whitespace differences do not hide a copy.
Flagged records stay in the workspace (with ``contaminated = true``) and every selection variant excludes them.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass

import numpy as np

from .benchmarks import load_benchmarks
from .hashing import WORD, batches, ngram_hashes, tokenize_batch


@dataclass
class BenchmarkIndex:
    n: int
    threshold: float
    lengths: list[int]  # the n-gram lengths in use (n, and shorter whole solutions)
    keys: np.ndarray  # sorted unique n-gram hashes of all solutions
    owners: dict[int, list[int]]  # n-gram hash -> solutions containing it
    sizes: np.ndarray  # distinct n-grams per solution
    ids: list[str]

    def flags(self, texts: list[str]) -> list[bool]:
        """One flag per text: does it cover ≥ threshold of some solution's n-grams?

        Texts are hashed about a million characters at a time: the byte-level hashing holds ~50 bytes per byte of
        text, so a whole row group (``ingest.row_group_chars``) in one call would cost ~50x its size.
        """
        out: list[bool] = []
        for lo, hi in batches(texts, max_chars=sys.maxsize):
            out.extend(self._flags(texts[lo:hi]))
        return out

    def _flags(self, texts: list[str]) -> list[bool]:
        out = [False] * len(texts)
        if not len(self.keys) or not texts:
            return out
        words, doc = _words(texts)
        for n in self.lengths:
            grams, gdoc = ngram_hashes(words, doc, n)
            # keys is sorted and unique: a binary search per n-gram, where np.isin would re-sort the ~100k keys on
            # every call (8 ms each: it dominated the small last batch of every ingest unit)
            pos = np.minimum(np.searchsorted(self.keys, grams), len(self.keys) - 1)
            hit = self.keys[pos] == grams
            if not hit.any():
                continue
            seen: dict[tuple[int, int], set[int]] = {}
            for g, d in zip(grams[hit].tolist(), gdoc[hit].tolist()):
                for sol in self.owners.get(g, ()):
                    seen.setdefault((d, sol), set()).add(g)
            for (d, sol), grams_found in seen.items():
                if len(grams_found) >= self.threshold * self.sizes[sol]:
                    out[d] = True
        return out


def _words(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    tb = tokenize_batch(texts, lower=True)
    keep = tb.classes == WORD
    return tb.hashes[keep], tb.doc[keep]


@functools.lru_cache(maxsize=4)
def build_index(spec: str = "bundled", n: int = 13, min_words: int = 8, threshold: float = 0.5) -> BenchmarkIndex:
    items = load_benchmarks(spec)
    solutions = [i.solution for i in items]
    owners: dict[int, list[int]] = {}
    sizes = np.zeros(len(items), np.int64)
    lengths: set[int] = set()
    for k, text in enumerate(solutions):
        words, doc = _words([text])
        if len(words) < min_words:
            continue
        size = min(n, len(words))
        lengths.add(size)
        grams, _ = ngram_hashes(words, doc, size)
        distinct = set(grams.tolist())
        sizes[k] = len(distinct)
        for g in distinct:
            owners.setdefault(g, []).append(k)
    keys = np.array(sorted(owners), dtype=np.uint64)
    return BenchmarkIndex(n, threshold, sorted(lengths), keys, owners, sizes, [i.id for i in items])

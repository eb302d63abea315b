"""Contamination guard: flag records that contain a benchmark solution (word n-gram overlap), in the prefilter pass.

A record is contaminated when it covers ≥ ``threshold`` (0.5) of the distinct word 13-grams of some benchmark
solution. Solutions shorter than 13 words count as one n-gram of their own length (a short SQL query is either in
the record or not); solutions under ``min_words`` (8) words are too generic to attribute and are skipped. Words are
the word tokens of `hashing` on lower-cased text, so punctuation and whitespace differences do not hide a copy.
Flagged records stay in the workspace (the prefilter sidecar's ``contaminated`` column) and every selection variant
excludes them, also those that ignore the prefilter's drops.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .benchmarks import load_benchmarks
from .config import ContaminationConfig
from .hashing import batches, ngram_hashes, word_hashes


@dataclass
class BenchmarkIndex:
    n: int
    threshold: float
    lengths: list[int]  # the n-gram lengths in use (n, and shorter whole solutions)
    keys: np.ndarray  # sorted unique n-gram hashes of all solutions
    owners: dict[int, list[int]]  # n-gram hash -> solutions containing it
    sizes: np.ndarray  # distinct n-grams per solution
    ids: list[str]
    gate: np.ndarray  # sorted unique hashes of every solution's shortest-length n-grams (lengths[0] words)

    @functools.cached_property
    def _key_set(self) -> pa.Array:
        return pa.array(self.keys, pa.uint64())

    @functools.cached_property
    def _gate_set(self) -> pa.Array:
        return pa.array(self.gate, pa.uint64())

    def flags(self, texts: list[str]) -> list[bool]:
        """One flag per text: does it cover ≥ threshold of some solution's n-grams?

        Texts are hashed about a million characters at a time: the byte-level hashing holds ~50 bytes per byte of
        text, so a whole row group (``ingest.row_group_chars``) in one call would cost ~50x its size.
        """
        out: list[bool] = []
        for lo, hi in batches(texts):
            out.extend(self._flags(texts[lo:hi]))
        return out

    def _flags(self, texts: list[str]) -> list[bool]:
        out = [False] * len(texts)
        if not len(self.keys) or not texts:
            return out
        words, doc = _words(texts)
        # A text can hold a solution's n-gram only if it holds that n-gram's first lengths[0] words, which are one
        # of the gate's n-grams: one hashing pass rules out almost every text, and only the others get all lengths.
        grams, gdoc = ngram_hashes(words, doc, self.lengths[0])
        hit = pc.is_in(pa.array(grams), value_set=self._gate_set).to_numpy(zero_copy_only=False)
        if not hit.any():
            return out
        keep = np.isin(doc, np.unique(gdoc[hit]))
        words, doc = words[keep], doc[keep]
        for n in self.lengths:
            grams, gdoc = ngram_hashes(words, doc, n)
            # a hash-set lookup per n-gram (Arrow's is_in): ~7x faster than a binary search in the ~100k sorted keys,
            # and np.isin would re-sort the keys on every call
            hit = pc.is_in(pa.array(grams), value_set=self._key_set).to_numpy(zero_copy_only=False)
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
    return word_hashes(texts, lower=True)


@functools.lru_cache(maxsize=4)
def build_index(spec: str = "bundled", n: int = 13, min_words: int = 8, threshold: float = 0.5) -> BenchmarkIndex:
    """All solutions are tokenized in one batch and hashed in one pass per n-gram length (per solution, the
    ~3,000 bundled ones cost each ingest worker ~3 s at start)."""
    items = load_benchmarks(spec)
    words, doc = _words([i.solution for i in items])
    n_words = np.bincount(doc, minlength=len(items))
    size_of = np.where(n_words >= min_words, np.minimum(n, n_words), 0)  # 0: too short to attribute
    owners: dict[int, list[int]] = {}
    sizes = np.zeros(len(items), np.int64)
    lengths = sorted(set(size_of[size_of > 0].tolist()))
    for size in lengths:
        grams, gdoc = ngram_hashes(words, doc, size)
        mine = size_of[gdoc] == size
        for k, g in sorted({(int(d), int(h)) for d, h in zip(gdoc[mine].tolist(), grams[mine].tolist())}):
            sizes[k] += 1
            owners.setdefault(g, []).append(k)
    keys = np.array(sorted(owners), dtype=np.uint64)
    gate = np.empty(0, np.uint64)
    if lengths:
        grams, gdoc = ngram_hashes(words, doc, lengths[0])
        gate = np.unique(grams[size_of[gdoc] > 0])
    return BenchmarkIndex(n, threshold, lengths, keys, owners, sizes, [i.id for i in items], gate)


def guard(cc: ContaminationConfig) -> Callable[[list[str]], list[bool]]:
    """texts -> flags, over every configured benchmark set; none configured means nothing is flagged."""
    indexes = [build_index(spec, cc.n, cc.min_words, cc.threshold) for spec in cc.benchmarks]

    def flags(texts: list[str]) -> list[bool]:
        out = [False] * len(texts)
        for index in indexes:
            out = [a or b for a, b in zip(out, index.flags(texts))]
        return out

    return flags

"""DSIR (Xie et al., 2023): importance resampling toward a target distribution in a hashed n-gram feature space.

Both the target sample and the raw corpus are modelled as bags of hashed unigrams + bigrams (``buckets`` features,
10k as in the paper) with add-one smoothing; a record's log importance weight is sum_f count_f (log p_target(f) -
log p_raw(f)). Resampling without replacement at a token budget uses the Gumbel top-k trick: rank by log weight +
Gumbel noise (seeded), then keep the best until the budget — so DSIR is stochastic like the original, not a hard
threshold.

The target must be a user-named "high quality" sample (``baselines.reference``), never the benchmarks themselves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from ..hashing import MIX, batches, stream_batches, tokenize_batch
from ..workspace import atomic_path

_STEP = np.uint64(0x100000001B3)


class DSIRWeights:
    def __init__(self, buckets: int = 10_000, max_chars: int = 20_000):
        self.buckets, self.max_chars = buckets, max_chars
        self.target = np.zeros(buckets, np.float64)
        self.raw = np.zeros(buckets, np.float64)

    def _features(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        tb = tokenize_batch(texts, self.max_chars, lower=True)
        h, doc = tb.hashes, tb.doc
        same = doc[1:] == doc[:-1]
        pair = (h[:-1] * _STEP + h[1:])[same]
        feats = np.concatenate([h, pair])
        docs = np.concatenate([doc, doc[1:][same]])
        bucket = (((feats * MIX) >> np.uint64(32)) % np.uint64(self.buckets)).astype(np.int64)
        return bucket, docs

    def _count(self, texts: Iterable[str], into: np.ndarray, budget: int = 1 << 20) -> None:
        """Streams: texts are hashed ~``budget`` characters at a time (each counted up to ``max_chars``), so memory is
        the same whatever the corpus and whatever its record lengths."""
        for batch in stream_batches(texts, self.max_chars, budget):
            bucket, _ = self._features(batch)
            into += np.bincount(bucket, minlength=self.buckets)

    def fit(self, target: Iterable[str], raw: Iterable[str]) -> "DSIRWeights":
        self._count(target, self.target)
        self._count(raw, self.raw)
        return self

    def save(self, path: Path) -> None:
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, target=self.target, raw=self.raw, buckets=self.buckets, max_chars=self.max_chars)

    @classmethod
    def load(cls, path: Path) -> "DSIRWeights":
        z = np.load(path)
        w = cls(int(z["buckets"]), int(z["max_chars"]))
        w.target, w.raw = z["target"], z["raw"]
        return w

    def log_weights(self, texts: list[str]) -> np.ndarray:
        log_ratio = np.log((self.target + 1) / (self.target.sum() + self.buckets)) \
            - np.log((self.raw + 1) / (self.raw.sum() + self.buckets))
        out = np.empty(len(texts), np.float64)
        for lo, hi in batches(texts, self.max_chars):
            bucket, docs = self._features(texts[lo:hi])
            out[lo:hi] = np.bincount(docs, weights=log_ratio[bucket], minlength=hi - lo)
        return out


def gumbel(ids_buckets: np.ndarray) -> np.ndarray:
    """Gumbel noise from per-record uniform numbers (deterministic per id and seed)."""
    u = np.clip(ids_buckets, 1e-12, 1 - 1e-12)
    return -np.log(-np.log(u))

"""Deterministic record buckets by id hash: which records are held out of every selection, and why.

Three kinds of records are never selectable: contaminated ones (flagged by the prefilter pass), the evaluation holdout
(``eval.holdout_share`` of every source: `mira eval` measures capability coverage on it) and the reference sample
of the ppl / DSIR baselines (``baselines.reference``: a "high quality" target they are fitted to, so it must not
also be what they select). Buckets come from a keyed hash of the id, so every stage and every worker agrees without
storing anything, and a record's bucket never changes when the corpus grows.
"""

from __future__ import annotations

import hashlib

import numpy as np

from .config import MiraConfig


def id_buckets(ids: list[str]) -> np.ndarray:
    """A uniform number in [0, 1) per id."""
    out = np.empty(len(ids), np.float64)
    for i, rid in enumerate(ids):
        h = hashlib.blake2b(rid.encode("utf-8", "surrogatepass"), digest_size=8, person=b"mira-hold").digest()
        out[i] = int.from_bytes(h, "little") / 2.0 ** 64
    return out


def holdout_mask(cfg: MiraConfig, buckets: np.ndarray) -> np.ndarray:
    return buckets < cfg.eval.holdout_share


def reference_mask(cfg: MiraConfig, source: str, buckets: np.ndarray) -> np.ndarray:
    ref = cfg.baselines.reference
    if source not in ref.sources:
        return np.zeros(len(buckets), dtype=bool)
    lo = cfg.eval.holdout_share
    return (buckets >= lo) & (buckets < lo + ref.share)

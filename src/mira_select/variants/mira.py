"""MIRA's own variants: the students' aggregated scores (stages/score sidecars), per group / source / corpus, and
the ablations of MIRA-Group (length taken out, temperature sampling, prefilter decisions ignored)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MiraError
from ..io.shards import read_sidecar_column
from ..ledger import Ledger, Ref
from .base import VariantScorer


class MiraScorer(VariantScorer):
    def __init__(self, cfg, ws, sources, unit: str, method: str | None = None, length_residual: bool | None = None,
                 uses_prefilter: bool = True):
        super().__init__(cfg, ws, sources)
        self.unit = unit
        b = cfg.budget
        self.method = method or b.method
        self.length_residual = b.length_residual if length_residual is None else length_residual
        self.uses_prefilter = uses_prefilter

    def adjust(self, unit: str, score: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        key = np.asarray(score, dtype=np.float64)
        if self.length_residual and len(key) > 2:
            # residual of score ~ a + b log(tokens): within the unit, length no longer decides the cut
            x = np.log1p(np.asarray(tokens, dtype=np.float64))
            ok = ~np.isnan(key)
            if ok.sum() > 2 and np.ptp(x[ok]) > 0:
                slope = np.polyfit(x[ok], key[ok], 1)[0]
                key = key - slope * x
        if self.method == "temperature":
            # Gumbel top-k = sampling without replacement with probability ~ exp(score / T); seeded per unit
            seed = int.from_bytes(hashlib.sha256(f"{self.cfg.budget.seed}:{unit}".encode()).digest()[:8], "little")
            key = key / self.cfg.budget.temperature + np.random.default_rng(seed).gumbel(size=len(key))
        return key

    def fingerprint(self) -> str:
        return (f"{self.unit}:{self.method}:{self.cfg.budget.temperature}:{self.cfg.budget.seed}:"
                f"{self.length_residual}:{self.uses_prefilter}")

    def depends(self) -> dict[str, Any]:
        from ..stages.score import STAGE

        return {f"{s}/{p.stem}": Ref(STAGE, f"{s}/{p.stem}") for s in self.sources for p in self.ws.record_shards(s)}

    def scores(self, source: str, shard: Path, ids: list[str]) -> np.ndarray:
        from ..stages.score import STAGE, score_path

        path = score_path(self.ws, source, shard)
        if Ledger(self.ws).fingerprint(STAGE, f"{source}/{shard.stem}") is None or not path.exists():
            raise MiraError(f"source {source!r} shard {shard.name} has no scores; run `mira score` first")
        return read_sidecar_column(path, shard, ids, "score", "mira score").astype(float)

"""Reliability-aware aggregation: which anchors to trust for which source, and one score per record.

A student can learn an anchor well for one source and not at all for another (an anchor about error recovery
means little for a tidy source that never fails). On validation labels the student's agreement with the teacher
is measured per (source, anchor); an anchor counts for a source only where it is close (MAE) and ranks right
(Spearman), on enough records. Sources with too few validation records of their own borrow the group's pooled
figure for that anchor (and say so); a source left with no reliable anchor falls back to all of them and is
flagged, so it is still scored rather than silently dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


def agreement(pred: np.ndarray, truth: np.ndarray) -> dict[str, float | int | None]:
    """n, MAE and Spearman of one anchor's predictions (Spearman None when either side is constant)."""
    from scipy.stats import spearmanr

    n = int(len(truth))
    if n == 0:
        return {"n": 0, "mae": None, "spearman": None}
    mae = float(np.mean(np.abs(pred - truth)))
    rho = None
    if n >= 3 and np.ptp(pred) > 0 and np.ptp(truth) > 0:
        rho = float(spearmanr(pred, truth).statistic)
        rho = None if math.isnan(rho) else rho
    return {"n": n, "mae": mae, "spearman": rho}


def fidelity(pred: np.ndarray, truth: np.ndarray, sources: list[str], anchors: list[str]) -> dict[str, Any]:
    """Per (source, anchor), pooled per anchor, and overall agreement on validation."""
    src = np.asarray(sources)
    per_source = {
        s: {a: agreement(pred[src == s, j], truth[src == s, j]) for j, a in enumerate(anchors)}
        for s in sorted(set(sources))
    }
    pooled = {a: agreement(pred[:, j], truth[:, j]) for j, a in enumerate(anchors)}
    rhos = [m["spearman"] for m in pooled.values() if m["spearman"] is not None]
    overall = agreement(pred.mean(axis=1), truth.mean(axis=1)) if len(truth) else agreement(pred[:0, 0], truth[:0, 0])
    return {"per_source": per_source, "pooled": pooled,
            "overall": {**overall, "mean_anchor_spearman": float(np.mean(rhos)) if rhos else None,
                        "mean_anchor_mae": float(np.mean([m["mae"] for m in pooled.values()])) if len(truth) else None}}


@dataclass(frozen=True)
class Thresholds:
    max_mae: float = 1.5
    min_spearman: float = 0.3
    min_n: int = 20

    def reliable(self, m: dict[str, Any]) -> bool:
        return (m["n"] >= self.min_n and m["mae"] is not None and m["mae"] <= self.max_mae
                and m["spearman"] is not None and m["spearman"] >= self.min_spearman)


def reliability_mask(fid: dict[str, Any], sources: list[str], anchors: list[str], th: Thresholds) -> dict[str, Any]:
    """-> {source: {anchors: [...reliable...], basis: {anchor: source|pooled|none}, fallback: bool}}.

    Every source of the group gets an entry, including sources without validation labels.
    """
    out = {}
    for s in sources:
        basis, keep = {}, []
        for a in anchors:
            own = fid["per_source"].get(s, {}).get(a)
            if own is not None and own["n"] >= th.min_n:
                basis[a], m = "source", own
            elif fid["pooled"][a]["n"] >= th.min_n:
                basis[a], m = "pooled", fid["pooled"][a]
            else:
                basis[a], m = "none", None
            if m is not None and th.reliable(m):
                keep.append(a)
        out[s] = {"anchors": keep or list(anchors), "basis": basis, "fallback": not keep}
    return out


def trimmed_score(y: np.ndarray, columns: list[int], trim: float) -> np.ndarray:
    """Trimmed mean over the chosen anchor columns (drops the `trim` share at each end per record)."""
    from scipy.stats import trim_mean

    sub = y[:, columns]
    if sub.shape[1] == 0:
        return np.full(len(y), np.nan, np.float32)
    return np.asarray(trim_mean(sub, trim, axis=1), dtype=np.float32)

"""Which candidate anchors of a group the student learns: the label stage's choice on the labeled sample.

Discovery writes more candidates than the target count; only the labels show which of them separate records. An
anchor is dropped when its labels barely vary (absolute floor, and relative to the group's median spread, because how
much of the scale a teacher uses depends on the read-out), when it repeats a kept anchor's name, or, if asked
(``label.drop_length_following``), when within its sources it mostly ranks records by their length: such an anchor
is a token counter, not a criterion, and the brief's first complaint about a selection is that it follows length.
Every anchor's statistics go to ``anchors.json`` for the report, whatever is dropped; the report also asks
`label_dimensionality` how many separate judgments the kept anchors' labels carry.
"""

from __future__ import annotations

from difflib import SequenceMatcher
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .teacher.types import Anchor

LOW, HIGH = 1.0, 9.0  # a label at or below LOW / at or above HIGH sits at an end of the 0-10 scale
MIN_SOURCE_RECORDS = 8  # a source's own Spearman(label, tokens) needs this many labeled records to count
# Report flag: labels whose first principal component holds this share of their within-source variance are
# mostly one overall judgment repeated on every anchor (label_dimensionality).
HALO_SHARE = 0.8


def real_labels(table: pa.Table) -> pa.Table:
    """The labeled records themselves, without the corrupted twins: twins train the student, but the teacher's use
    of the scale, and what its labels measure, are read on real records only."""
    if not table.num_rows or "twin" not in table.column_names:
        return table
    return table.filter(pc.equal(table.column("twin"), ""))


def length_rho(scores: np.ndarray, tokens: np.ndarray, sources: list[str]) -> float | None:
    """How far an anchor's labels follow record length *within* sources: the Spearman of label vs. token count in
    each source with enough labeled records, averaged weighted by records. Within, because sources differ in length
    and in quality at once; pooled over the group, an anchor that only tells a good short source from a poor long
    one would look like a token counter. None when no source has enough varied records."""
    from scipy.stats import spearmanr

    by_source: dict[str, list[int]] = {}
    for i, src in enumerate(sources):
        by_source.setdefault(src, []).append(i)
    total, weight = 0.0, 0
    for rows in by_source.values():
        if len(rows) < MIN_SOURCE_RECORDS:
            continue
        s, t = scores[rows], tokens[rows]
        if np.ptp(s) == 0 or np.ptp(t) == 0:
            continue
        total += float(spearmanr(s, t).statistic) * len(rows)
        weight += len(rows)
    return round(total / weight, 3) if weight else None


def label_dimensionality(scores: np.ndarray, sources: list[str]) -> dict[str, Any] | None:
    """How many separate judgments a group's labels carry: the principal components of the anchors' labels after
    each source's mean is removed (records x anchors). Within sources, because a source that is better on every
    anchor at once would otherwise look like one shared judgment. ``pc1_share`` near 1 means the teacher gave each
    record one overall score and repeated it on every anchor (a halo): the rubric then weighs one judgment, however
    many anchors it names. ``effective`` is the participation ratio (sum of variances)^2 / sum of squares, between 1
    (one judgment) and the anchor count (independent anchors). None with fewer than 2 anchors or no spread."""
    if scores.ndim != 2 or scores.shape[1] < 2 or scores.shape[0] < 3:
        return None
    src = np.asarray(sources)
    centred = scores.astype(np.float64).copy()
    for s in np.unique(src):
        rows = src == s
        centred[rows] -= centred[rows].mean(axis=0)
    variances = np.clip(np.linalg.eigvalsh(np.cov(centred, rowvar=False)), 0.0, None)
    total = float(variances.sum())
    if total <= 0:
        return None
    return {"anchors": int(scores.shape[1]), "records": int(scores.shape[0]),
            "pc1_share": round(float(variances[-1]) / total, 3),
            "effective": round(total ** 2 / float((variances ** 2).sum()), 2),
            "halo": float(variances[-1]) / total >= HALO_SHARE}


def anchor_stats(real: pa.Table, anchors: list[Anchor], end_flag: float,
                 length_flag: float) -> dict[str, dict[str, Any]]:
    """Per anchor on the real (non-twin) labeled records: spread, share at each end, length-following."""
    tokens = np.asarray(real.column("n_tokens").to_numpy(zero_copy_only=False), dtype=np.float64) \
        if real.num_rows else np.zeros(0)
    sources = real.column("source").to_pylist() if real.num_rows else []
    stats: dict[str, dict[str, Any]] = {}
    for a in anchors:
        s = np.asarray(real.column(f"score:{a.id}").to_numpy(zero_copy_only=False), dtype=np.float64) \
            if real.num_rows else np.zeros(0)
        n = max(len(s), 1)
        top, bottom = float((s >= HIGH).sum() / n), float((s <= LOW).sum() / n)
        rho = length_rho(s, tokens, sources) if len(s) else None
        stats[a.id] = {"n": int(len(s)), "mean": round(float(s.mean()), 3) if len(s) else None,
                       "std": round(float(s.std()), 3) if len(s) else 0.0, "top_share": round(top, 3),
                       "bottom_share": round(bottom, 3), "end_flag": max(top, bottom) > end_flag,
                       "length_rho": rho, "length_flag": rho is not None and abs(rho) >= length_flag}
    return stats


def choose_anchors(table: pa.Table, anchors: list[Anchor], targets: dict[str, int], min_std: float,
                   end_flag: float, drop: bool = True, min_std_ratio: float = 0.0, length_flag: float = 1.0,
                   drop_length: bool = False) -> dict[str, Any]:
    """Active: per part, the first ``target`` anchors in rubric order whose labels vary by at least ``min_std`` and
    by at least ``min_std_ratio`` × the median spread of the group's anchors, that do not repeat a kept name and
    (``drop_length``) whose within-source |Spearman(label, tokens)| stays under ``length_flag``; the rest are
    dropped or spare. A part where nothing qualifies keeps its most varied anchor."""
    from .stages.discover import name_key

    real = real_labels(table)
    stats = anchor_stats(real, anchors, end_flag, length_flag)
    spreads = [st["std"] for st in stats.values()]
    floor = max(min_std, min_std_ratio * float(np.median(spreads))) if spreads else min_std
    active, dropped = [], {}
    kept_names: dict[str, str] = {}  # name key -> anchor id, over every part (parts may name a criterion twice)
    for part, target in targets.items():
        members = [a for a in anchors if a.part == part]
        taken = 0
        for a in members:
            if not drop:
                active.append(a.id)
                continue
            key, st = name_key(a.name), stats[a.id]
            twin = next((i for k, i in kept_names.items() if SequenceMatcher(None, k, key).ratio() >= 0.9), None)
            if twin is not None:
                dropped[a.id] = f"same name as {twin}"
            elif st["std"] < floor:
                dropped[a.id] = f"does not discriminate: std {st['std']:.2f} < {floor:.2f}"
            elif drop_length and st["length_flag"]:
                dropped[a.id] = f"follows length: within-source Spearman with tokens {st['length_rho']:+.2f}"
            elif taken < target:
                active.append(a.id)
                kept_names[key] = a.id
                taken += 1
            else:
                dropped[a.id] = "spare: the part already has its target count"
        if drop and taken == 0 and members:
            best = max(members, key=lambda a: stats[a.id]["std"])
            active.append(best.id)
            dropped.pop(best.id, None)
    order = {a.id: i for i, a in enumerate(anchors)}
    return {"active": sorted(active, key=order.__getitem__), "dropped": dropped, "stats": stats,
            "min_std": round(floor, 3), "end_flag": end_flag, "length_flag": length_flag,
            "scale_ends": [LOW, HIGH]}

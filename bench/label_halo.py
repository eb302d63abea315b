"""Is the teacher's one-judgment-per-record (the report's "separate judgments" line) made by the prompt or by the model?

`mira label` asks every anchor of a group in one prompt (the rubric in the shared prefix, each score slot read on
its own). If the anchors' labels then carry about one judgment (first principal component of the within-source
labels near 100 %), either the model has one opinion of a record whatever it is asked, or seeing every anchor's
definition at once blurs them. This script tells the two apart: it labels records of a finished workspace again
with one anchor per prompt (same record view, read-out and prompt family; only the rubric block differs) and
compares, on the same records, the dimensionality of both label sets and each anchor's agreement between them.

    python bench/label_halo.py --group qa_think --per-source 10 [-c data/demo/mira.yaml] [--workspace DIR]

Costs records x anchors teacher calls (cached in ``--workspace``: a re-run is free). Calls go anchor by anchor so
the instructions + anchor prefix is reused across records.

Measured (2026-12-07, demo qa_think, 7 active anchors, 12 labeled records per source, 308 calls, 20 min 26 s): all
anchors in one prompt, first component 80 % of the within-source variance, 1.54 effective anchors; one anchor per
prompt 91 %, 1.21. Asked alone, an anchor's score agrees with its joint label at Spearman .73-.86 pooled, .48-.80
within sources (mean label .89 / .79). text, 10 anchors, 8 per source, 400 calls, 24 min 35 s: 87 % / 1.32 joint,
88 % / 1.27 alone; agreement .46-.68 pooled, alone mostly lower (-0.1 to -2.4 points). So the one judgment per
record is the model's: separate prompts (7-10x the calls) make the anchors no more distinct.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from mira_select.anchor_choice import label_dimensionality  # noqa: E402
from teacher_retest import relabel_setup  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def within_source_rho(x: np.ndarray, y: np.ndarray, sources: np.ndarray) -> float:
    """Spearman of x and y after each source's ranks are taken apart: the mean of per-source Spearmans."""
    rhos = [spearmanr(x[sources == s], y[sources == s]).statistic for s in np.unique(sources)]
    rhos = [r for r in rhos if r == r]
    return float(np.mean(rhos)) if rhos else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-c", "--config", default=str(REPO / "data" / "demo" / "mira.yaml"))
    ap.add_argument("--group", required=True)
    ap.add_argument("--per-source", type=int, default=10, help="real labeled records per source")
    ap.add_argument("--workspace", default=None, help="the run's own cache and secret (reuse it: 0 calls)")
    args = ap.parse_args()
    _, anchors, rows, texts, fmt, teacher = relabel_setup(Path(args.config), args.group, 0, args.per_source,
                                                          args.workspace, "halo")
    start = time.monotonic()
    alone = np.full((len(rows), len(anchors)), np.nan)
    try:
        for j, anchor in enumerate(anchors):
            results = teacher.run(lambda i, f, x, a=anchor: teacher.label(i, f, x, [a]),
                                  [(r["id"], fmt, texts[r["id"]]) for r in rows])
            for i, q in enumerate(results):
                if q.data is not None:
                    alone[i, j] = q.data[anchor.id]["score"]
    finally:
        teacher.close()
    ok = ~np.isnan(alone).any(axis=1)
    joint = np.array([[r[f"score:{a.id}"] for a in anchors] for r in rows])[ok]
    alone, sources = alone[ok], np.array([r["source"] for r in rows])[ok]
    print(f"{args.group}: {ok.sum()} of {len(rows)} records, {len(anchors)} anchors asked one per prompt "
          f"({teacher.acct.calls} calls, {teacher.acct.cache_hits} cache hits, {time.monotonic() - start:.0f} s)")
    for name, table in (("all anchors in one prompt (the labels)", joint), ("one anchor per prompt", alone)):
        dim = label_dimensionality(table, list(sources)) or {}
        print(f"  {name:<40} 1st component within sources {dim.get('pc1_share', float('nan')):.0%}, "
              f"effective anchors {dim.get('effective', float('nan')):.2f} of {len(anchors)}")
    print("  per anchor, joint vs alone: Spearman pooled / within sources (mean over sources); "
          "mean shift alone - joint")
    for j, a in enumerate(anchors):
        print(f"    {a.id} {a.name[:32]:<32} {spearmanr(joint[:, j], alone[:, j]).statistic:6.3f} / "
              f"{within_source_rho(joint[:, j], alone[:, j], sources):6.3f}   "
              f"{np.mean(alone[:, j] - joint[:, j]):+.2f}")
    mean_j, mean_a = joint.mean(axis=1), alone.mean(axis=1)
    print(f"  mean label, joint vs alone: Spearman {spearmanr(mean_j, mean_a).statistic:.3f}, within sources "
          f"{within_source_rho(mean_j, mean_a, sources):.3f}")


if __name__ == "__main__":
    main()

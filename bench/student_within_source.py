"""Can a student rank records inside their sources as the teacher does? The figure the reliability mask decides on.

Reads a finished workspace's labels (real records only, no twins) and the records' texts, fits the hashed n-gram +
structure ridge student (the CPU tier the demo's qa_think keeps) out of fold, and counts the (source, anchor) cells
whose within-source Spearman(student, teacher) reaches ``student.min_spearman`` -- MAE is not applied, so this is
an upper bound on the cells the mask keeps. Variants of what the student sees, each on the same folds:

    base      the record's full text (as `mira train`)
    sources   + one indicator column per source (between-source shifts need no n-gram to carry them)
    within    fitted on each source's deviations from its training mean, the means added back
    cut       the text cut as the label prompt cut it (head + tail, ``label.max_record_tokens``)
    minilm    + the full MiniLM sentence embedding, its weight per anchor by leave-one-out (the opt-in
              ``student.params.hashed_linear.embedder: minilm``)

``--curve`` repeats the base variant on 50 / 75 / 100 % of each source's labels, three draws each (the fold draw
alone moves the count; read differences against that spread).

    python bench/student_within_source.py --group qa_think [-c data/demo/mira.yaml] [--curve]

Measured (2026-12-07, demo qa_think, 600 labels, 150 per source): cells >= .3 of 28: base 13, sources 13, within 12,
cut 12 (structure features read from the cut text too); curve 12 / 9 / 12 at 50 %, 8 / 17 / 8 at 75 %, 13 / 14 / 13
at 100 %; think_gsm8k_socratic 0-1 of 7 at every size. The teacher against itself (bench/teacher_retest.py
--per-source 30) clears all 28. minilm 14 (15 and 15 with fold seeds 1 and 2); in `mira train` as an auto
tier, with twins and the stage's folds, it kept 12 (README, `student.kind`), so it stays opt-in.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from scipy import sparse
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from mira_select.anchor_choice import real_labels  # noqa: E402
from mira_select.config import load_config  # noqa: E402
from mira_select.embed import get_embedder  # noqa: E402
from mira_select.students.hashed_linear import EMBED_SCALES, WordHasher  # noqa: E402
from mira_select.students.ridge import fit_ridge, fit_ridge_with_block  # noqa: E402
from mira_select.students.structure import StructureScaler  # noqa: E402
from mira_select.teacher.prompts import truncate_tokens  # noqa: E402
from mira_select.workspace import Workspace  # noqa: E402
from teacher_retest import labeled_texts  # noqa: E402

VARIANTS = ("base", "sources", "within", "cut", "minilm")


def features(texts: list[str]):
    return sparse.hstack([WordHasher(20, True, 20_000).transform(texts),
                          sparse.csr_matrix(StructureScaler(True).fit(texts))]).tocsr()


def out_of_fold(x, y: np.ndarray, src: np.ndarray, fold: np.ndarray, within: bool,
                block: np.ndarray | None = None) -> np.ndarray:
    """Out-of-fold predictions; ``block``: dense columns weighed against ``x`` per anchor
    (ridge.fit_ridge_with_block)."""
    pred = np.zeros_like(y)
    for f in np.unique(fold):
        tr, te = fold != f, fold == f
        target = y[tr].copy()
        means = {s: y[tr & (src == s)].mean(axis=0) for s in np.unique(src)} if within else {}
        if within:
            target -= np.array([means[s] for s in src[tr]])
        used = np.unique(x[tr].indices)
        if block is None:
            coef, intercept, _ = fit_ridge(x[tr][:, used], target)
            pred[te] = x[te][:, used] @ coef.T + intercept
        else:
            coef, intercept, _, _ = fit_ridge_with_block(x[tr][:, used], block[tr], target, EMBED_SCALES)
            pred[te] = sparse.hstack([x[te][:, used], sparse.csr_matrix(block[te])]).tocsr() @ coef.T + intercept
        if within:
            pred[te] += np.array([means[s] for s in src[te]])
    return pred


def passing_cells(pred: np.ndarray, y: np.ndarray, src: np.ndarray, bar: float) -> dict[str, int]:
    out = {}
    for s in sorted(np.unique(src)):
        m = src == s
        rhos = [spearmanr(pred[m, j], y[m, j]).statistic for j in range(y.shape[1])]
        out[str(s)] = int(sum(r >= bar for r in rhos if r == r))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-c", "--config", type=Path, default=Path("data/demo/mira.yaml"))
    ap.add_argument("--group", required=True)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--curve", action="store_true")
    args = ap.parse_args()
    cfg = load_config(args.config)
    ws = Workspace(cfg.workspace_path)
    labels = ws.root / "labels" / args.group
    table = pa.concat_tables([pq.read_table(labels / f"{s}.parquet") for s in ("train", "val")])
    table = real_labels(table)
    active = json.loads((labels / "anchors.json").read_text())["active"]
    rows = table.select(["id", "source"]).to_pylist()
    texts = labeled_texts(ws, rows)
    full = [texts[r["id"]] for r in rows]
    src = np.array([r["source"] for r in rows])
    y = np.column_stack([table.column(f"score:{a}").to_numpy(zero_copy_only=False) for a in active]).astype(float)
    bar = cfg.student.min_spearman
    fold = np.random.default_rng(0).integers(0, args.folds, len(rows))
    x_full = features(full)
    cut = cfg.label.for_group(args.group).max_record_tokens or cfg.teacher.max_record_tokens
    print(f"{args.group}: {len(rows)} labeled records, {len(active)} anchors, cells with within-source rho >= {bar}")
    for variant in VARIANTS:
        x = x_full
        if variant == "sources":
            onehot = (src[:, None] == np.unique(src)[None, :]).astype(np.float32)
            x = sparse.hstack([x_full, sparse.csr_matrix(onehot)]).tocsr()
        elif variant == "cut":
            x = features([truncate_tokens(t, cut, cfg.tokenizer) for t in full])
        block = get_embedder("minilm").encode(full) if variant == "minilm" else None
        pred = out_of_fold(x, y, src, fold, within=variant == "within", block=block)
        cells = passing_cells(pred, y, src, bar)
        overall = spearmanr(pred.mean(axis=1), y.mean(axis=1)).statistic
        print(f"  {variant:<8} {sum(cells.values()):>3}/{len(active) * len(cells)}  overall rho {overall:.3f}  "
              + ", ".join(f"{s} {n}" for s, n in cells.items()))
    if args.curve:
        for share in (0.5, 0.75, 1.0):
            counts, by_source = [], []
            for draw in range(3):
                keep = np.random.default_rng(100 + draw).random(len(rows)) < share if share < 1 \
                    else np.ones(len(rows), bool)
                idx = np.flatnonzero(keep)
                sub_fold = np.random.default_rng(draw).integers(0, args.folds, len(idx))
                pred = out_of_fold(x_full[idx], y[idx], src[idx], sub_fold, within=False)
                cells = passing_cells(pred, y[idx], src[idx], bar)
                counts.append(sum(cells.values()))
                by_source.append(cells)
            mean = {s: np.mean([c[s] for c in by_source]) for s in by_source[0]}
            print(f"  curve {share:.0%} of the labels: {' / '.join(map(str, counts))}  mean per source: "
                  + ", ".join(f"{s} {m:.1f}" for s, m in mean.items()))


if __name__ == "__main__":
    main()

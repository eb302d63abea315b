"""Teacher re-test: how consistent is the teacher with itself? A ceiling for the student's validation rho.

Takes the non-twin validation records of one group's labels, sends the same scores-only label prompts again with
another workspace secret (so only the record block's nonce differs; same rubric, record cut and read-out), and
compares per record the mean label over the group's active anchors: Spearman between the two runs, per-anchor
median Spearman, spread, mean absolute difference. A student far below this figure is limited by itself, not by
the teacher's consistency (nonce-level noise only: it does not measure paraphrase or model-to-model noise).

    python bench/teacher_retest.py --group text [-n 40] [-c data/demo/mira.yaml] [--workspace DIR]
    python bench/teacher_retest.py --group qa_think --per-source 30 --workspace /tmp/retest-qa_think

``--per-source N`` re-labels N real records of every source (train and val labels alike) and adds the ceiling the
reliability mask needs: per (source, anchor), the Spearman of the teacher against itself, and how many of those
cells would clear ``student.min_spearman`` even if the student matched the teacher's first run as well as its
second run does. A cell the teacher cannot rank consistently is one no student can be made reliable on.

Measured (2026-11-30, demo, embedded 1.5B, plain view): text 40 records: mean-label rho 0.891, per-anchor median
0.859 (student val rho 0.41); qa 30 records: 0.939 / 0.906 (student 0.70). 2026-12-07, qa_think (600 labels),
``--per-source 30``: 120 calls, 13 min 36 s; mean-label rho 0.939, per-anchor median 0.909; inside its sources
model_samples 0.864, socratic 0.895, gsm8k_train 0.791, leetcode 0.937, and all 28 (source, anchor) cells at or
above 0.3 (lowest 0.62): the student's 15 masked cells are the student's, not the teacher's inconsistency.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from mira_select.config import load_config  # noqa: E402
from mira_select.rubric import anchors_of, load_rubric  # noqa: E402
from mira_select.stages.label import LabelStage  # noqa: E402
from mira_select.teacher.client import Teacher  # noqa: E402
from mira_select.workspace import Workspace  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def labeled_texts(ws: Workspace, rows: list[dict]) -> dict[str, str]:
    ids, out = {r["id"] for r in rows}, {}
    for source in {r["source"] for r in rows}:
        for shard in ws.record_shards(source):
            table = pq.read_table(shard, columns=["id", "text"])
            out.update((i, t) for i, t in zip(table.column("id").to_pylist(), table.column("text").to_pylist())
                       if i in ids)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-c", "--config", default=str(REPO / "data" / "demo" / "mira.yaml"))
    ap.add_argument("--group", required=True)
    ap.add_argument("-n", type=int, default=40, help="validation records (non-twins) to re-label")
    ap.add_argument("--per-source", type=int, default=0, help="instead of -n: this many real records per source")
    ap.add_argument("--workspace", default=None, help="where the re-test's own cache and secret live (reuse: 0 calls)")
    args = ap.parse_args()
    cfg, anchors, rows, texts, fmt, teacher = relabel_setup(Path(args.config), args.group, args.n,
                                                            args.per_source, args.workspace, "retest")
    try:
        results = teacher.run(lambda i, f, x: teacher.label(i, f, x, anchors),
                              [(r["id"], fmt, texts[r["id"]]) for r in rows])
    finally:
        teacher.close()
    kept = [(r, q.data) for r, q in zip(rows, results) if q.data is not None]
    first = np.array([np.mean([r[f"score:{a.id}"] for a in anchors]) for r, _ in kept])
    again = np.array([np.mean([d[a.id]["score"] for a in anchors]) for _, d in kept])
    per_anchor = [spearmanr([r[f"score:{a.id}"] for r, _ in kept], [d[a.id]["score"] for _, d in kept])[0]
                  for a in anchors]
    print(f"{args.group}: {len(kept)} of {len(rows)} records re-labeled ({teacher.acct.calls} calls, "
          f"{teacher.acct.cache_hits} cache hits); mean-label rho {spearmanr(first, again)[0]:.3f}, per-anchor median "
          f"{float(np.nanmedian(per_anchor)):.3f}; sd of mean labels {first.std():.3f}; mean |diff| "
          f"{float(np.abs(first - again).mean()):.3f}")
    if args.per_source:
        _per_source(kept, anchors, cfg.student.min_spearman)


def relabel_setup(config: Path, group: str, n: int, per_source: int, workspace: str | None, stage: str):
    """-> (config, active anchors, labeled rows, their texts, prompt format, teacher) of a finished workspace's
    group. The teacher works in a workspace of its own (``workspace`` or a fresh one: its own secret, so new nonces,
    and no warm cache) and sees records as `mira label` did (the group's record cut)."""
    cfg = load_config(config)
    ws = Workspace(cfg.workspace_path)
    active = set(json.loads((ws.root / "labels" / group / "anchors.json").read_text())["active"])
    rubric = load_rubric(ws, group)
    anchors = [a for a in anchors_of(rubric) if a.id in active]
    rows = label_rows(ws, group, n, per_source)
    fmt = "qa_think" if rubric.get("with_parts") else rows[0]["format"]
    cut = LabelStage(cfg, ws).record_cut(group)
    tc = cfg.teacher.model_copy(update={"warm_cache": None, "max_record_tokens": cut})
    own = Workspace(Path(workspace or tempfile.mkdtemp(prefix=f"mira-{stage}-")))
    return cfg, anchors, rows, labeled_texts(ws, rows), fmt, Teacher(tc, own, stage=stage, tokenizer=cfg.tokenizer)


def label_rows(ws: Workspace, group: str, n: int, per_source: int) -> list[dict]:
    """The first n real (non-twin) validation labels, or with ``per_source`` that many real labels of every source."""
    labels = ws.root / "labels" / group
    if not per_source:
        return [r for r in pq.read_table(labels / "val.parquet").to_pylist() if not r.get("twin")][:n]
    real = [r for split in ("val", "train") for r in pq.read_table(labels / f"{split}.parquet").to_pylist()
            if not r.get("twin")]
    out: list[dict] = []
    for source in sorted({r["source"] for r in real}):
        out += [r for r in real if r["source"] == source][:per_source]
    return out


def _per_source(kept: list, anchors: list, min_spearman: float) -> None:
    """Per source: the mean label's retest rho and each anchor's; cells at or above the mask's Spearman bar."""
    passing = total = 0
    for source in sorted({r["source"] for r, _ in kept}):
        pairs = [(r, d) for r, d in kept if r["source"] == source]
        first = [np.mean([r[f"score:{a.id}"] for a in anchors]) for r, _ in pairs]
        again = [np.mean([d[a.id]["score"] for a in anchors]) for _, d in pairs]
        cells = []
        for a in anchors:
            x, y = [r[f"score:{a.id}"] for r, _ in pairs], [d[a.id]["score"] for _, d in pairs]
            cells.append(float(spearmanr(x, y)[0]) if np.ptp(x) > 0 and np.ptp(y) > 0 else float("nan"))
        ok = sum(c >= min_spearman for c in cells if c == c)
        passing, total = passing + ok, total + len(cells)
        print(f"  {source:<32} n {len(pairs):>3}  mean-label rho {spearmanr(first, again)[0]:.3f}  sd {np.std(first):.3f}"
              f"  anchors >= {min_spearman}: {ok}/{len(cells)}  " + " ".join(f"{a.id}:{c:.2f}" for a, c in
                                                                           zip(anchors, cells)))
    print(f"  cells the teacher itself ranks at >= {min_spearman}: {passing}/{total} "
          f"({100 * (1 - passing / max(total, 1)):.0f} % would be masked even for a student as good as a re-run)")


if __name__ == "__main__":
    main()

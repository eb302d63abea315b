"""Which student features can learn a group's labels? 5-fold CV on the workspace's own labels, outside `auto`.

Fits the CPU tiers on the same folds (records assigned to folds by a fixed seed; twins with the other labels) and
prints, per student, the Spearman of the out-of-fold mean prediction against the mean label on the non-twin
records. The full MiniLM transformer (`embed_heads` with `embedder: minilm`, ~31 docs/s on 2 cores) is measured
beside the default static distillation (~2,000 docs/s), which is what `auto` uses; the figure tells whether a slower
embedder is worth its scoring time for a group.

    python bench/student_embedders.py --group text [-c data/demo/mira.yaml]

Measured (2026-11-30, demo labels): static -> full MiniLM: text 0.371 -> 0.499, qa_think 0.472 -> 0.509 (0.587 with
structure), code 0.427 -> 0.330 (0.556 with structure), qa 0.696 -> 0.706 (hashed_linear 0.733).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from mira_select.config import load_config  # noqa: E402
from mira_select.students.embed_heads import EmbedHeadsStudent  # noqa: E402
from mira_select.students.hashed_linear import HashedLinearStudent  # noqa: E402
from mira_select.workspace import Workspace  # noqa: E402
from teacher_retest import labeled_texts  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-c", "--config", default=str(REPO / "data" / "demo" / "mira.yaml"))
    ap.add_argument("--group", required=True)
    ap.add_argument("--folds", type=int, default=5)
    args = ap.parse_args()
    ws = Workspace(load_config(Path(args.config)).workspace_path)
    labels = ws.root / "labels" / args.group
    active = json.loads((labels / "anchors.json").read_text())["active"]
    rows = pq.read_table(labels / "train.parquet").to_pylist() + pq.read_table(labels / "val.parquet").to_pylist()
    texts = labeled_texts(ws, rows)
    x = [r["twin_text"] if r.get("twin") else texts[r["id"]] for r in rows]
    y = np.array([[r[f"score:{a}"] for a in active] for r in rows], np.float32)
    sources = [r["source"] for r in rows]
    real = np.array([not r.get("twin") for r in rows])
    fold = np.random.default_rng(0).integers(0, args.folds, len(rows))
    students = {
        "embed_heads (static, default)": lambda: EmbedHeadsStudent(active),
        "embed_heads (full MiniLM)": lambda: EmbedHeadsStudent(active, embedder="minilm"),
        "embed_heads (full MiniLM) + structure": lambda: EmbedHeadsStudent(active, embedder="minilm", structure=True),
        "hashed_linear": lambda: HashedLinearStudent(active),
    }
    for name, make in students.items():
        pred = np.zeros_like(y)
        for k in range(args.folds):
            train, test = fold != k, fold == k
            student = make().fit([t for t, m in zip(x, train) if m], y[train],
                                 [s for s, m in zip(sources, train) if m])
            pred[test] = student.predict([t for t, m in zip(x, test) if m])
        rho = spearmanr(pred[real].mean(1), y[real].mean(1))[0]
        print(f"{args.group:<9} {name:<40} rho {rho:.3f}  ({int(real.sum())} records, {len(rows)} labels)")


if __name__ == "__main__":
    main()

"""Student tiers on a workspace's real teacher labels: the generative GPU tier beside hashed_linear, same split.

    python bench/generative.py export --ws data/demo/ws --out labeled.parquet   # labels joined with record texts
    python bench/generative.py run --data labeled.parquet [--base PATH.gguf] [--json out.json]

`export` makes the labeled set portable (a GPU machine needs neither the corpus nor the workspace); `run` fits both
tiers per group on train, scores val, and prints one table: val Spearman / MAE of the mean anchor score (what
`mira train` reports as overall) and the scoring speed of each tier on that machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def export(ws_path: Path, out: Path) -> None:
    from mira_select.stages.train import load_labeled
    from mira_select.workspace import Workspace, read_json

    ws = Workspace(ws_path)
    rows = []
    for rubric_path in sorted((ws.root / "rubrics").glob("*.json")):
        group = rubric_path.stem
        anchors = [a["id"] for a in read_json(rubric_path)["anchors"]]
        for split in ("train", "val"):
            s = load_labeled(ws, group, split, anchors)
            rows += [{"group": group, "split": split, "source": src, "text": t, "anchors": anchors,
                      "y": [float(v) for v in y]} for src, t, y in zip(s.sources, s.texts, s.y)]
    pq.write_table(pa.Table.from_pylist(rows), out, compression="zstd")
    print(f"exported {len(rows)} labeled records of {len({r['group'] for r in rows})} groups to {out}")


def run(data: Path, base: str | None, params: dict, json_out: Path | None, throughput: int = 0) -> None:
    from mira_select.aggregate import fidelity
    from mira_select.students.registry import make_student

    table = pq.read_table(data).to_pylist()
    results = {}
    for group in sorted({r["group"] for r in table}):
        rows = [r for r in table if r["group"] == group]
        anchors = rows[0]["anchors"]
        split = {k: [r for r in rows if r["split"] == k] for k in ("train", "val")}
        xs = {k: [r["text"] for r in v] for k, v in split.items()}
        ys = {k: np.array([r["y"] for r in v]) for k, v in split.items()}
        srcs = {k: [r["source"] for r in v] for k, v in split.items()}
        for kind, kw in (("hashed_linear", {}), ("generative", {**params, **({"base_model": base} if base else {})})):
            student = make_student(kind, anchors, **kw)
            t0 = time.perf_counter()
            student.fit(xs["train"], ys["train"], srcs["train"])
            fit_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            pred = student.predict(xs["val"])
            pred_s = time.perf_counter() - t0
            o = fidelity(pred, ys["val"], srcs["val"], anchors)["overall"]
            if throughput:  # scoring speed on more records than val holds (val texts repeated)
                many = (xs["val"] * (throughput // max(len(xs["val"]), 1) + 1))[:throughput]
                t0 = time.perf_counter()
                student.predict(many)
                pred_s, n_pred = time.perf_counter() - t0, len(many)
            else:
                n_pred = len(xs["val"])
            results[f"{group}/{kind}"] = {"spearman": o["spearman"], "mae": o["mae"], "n_train": len(xs["train"]),
                                          "n_val": len(xs["val"]), "fit_s": fit_s,
                                          "docs_per_s": n_pred / max(pred_s, 1e-9)}
            print(f"{group:9s} {kind:13s} ρ={o['spearman'] if o['spearman'] is not None else float('nan'):6.3f} "
                  f"MAE={o['mae']:.3f} fit {fit_s:6.1f}s  {n_pred / max(pred_s, 1e-9):8.1f} docs/s",
                  flush=True)
    print("\n| group | tier | val Spearman | val MAE | train / val | fit s | docs/s |\n|---|---|---|---|---|---|---|")
    for key, r in results.items():
        group, kind = key.split("/")
        rho = "-" if r["spearman"] is None else f"{r['spearman']:.3f}"
        print(f"| {group} | {kind} | {rho} | {r['mae']:.3f} | {r['n_train']} / {r['n_val']} | {r['fit_s']:.1f} | "
              f"{r['docs_per_s']:.1f} |")
    if json_out:
        json_out.write_text(json.dumps(results, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export")
    e.add_argument("--ws", type=Path, default=Path("data/demo/ws"))
    e.add_argument("--out", type=Path, required=True)
    r = sub.add_parser("run")
    r.add_argument("--data", type=Path, required=True)
    r.add_argument("--base", help="base model: .gguf file or HF directory (default: the packaged SmolLM2)")
    r.add_argument("--params", default="{}", help="JSON of generative params, e.g. '{\"epochs\": 6}'")
    r.add_argument("--json", type=Path)
    r.add_argument("--throughput", type=int, default=0, help="also time scoring of this many records")
    a = ap.parse_args()
    if a.cmd == "export":
        export(a.ws, a.out)
    else:
        run(a.data, a.base, json.loads(a.params), a.json, a.throughput)


if __name__ == "__main__":
    main()

"""Does the selected-on score measure quality? Figures for issue notes, read from a finished workspace.

    python bench/quality.py [-c data/demo/mira.yaml] [--json out.json]

Per group: the student's validation Spearman of the aggregated score, anchors active / masked, Spearman(score,
tokens) per group and per source beside Spearman(teacher's mean label, tokens) on the labels, kept-token share per
source (group variant), the rubric's name duplicates and end-of-scale shares, and how many separate judgments the
labels carry (first principal component's share of the within-source label variance, effective anchor count). Ground truth the pipeline never
reads: AUC of the score against ``meta.is_correct`` of think_gsm8k_model_samples, read from the corpus file itself
(a measurement script may; the pipeline may not).
"""

from __future__ import annotations

import argparse
import glob
import io
import sys
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from mira_select.anchor_choice import label_dimensionality, real_labels  # noqa: E402
from mira_select.config import load_config, resolve_local  # noqa: E402
from mira_select.stages.discover import name_key  # noqa: E402
from mira_select.workspace import Workspace, read_json  # noqa: E402


def _scores(ws: Workspace, source: str) -> pa.Table:
    shards = sorted(glob.glob(str(ws.root / "scores" / source / "part-*.parquet")))
    return pa.concat_tables([pq.read_table(s, columns=["id", "score", "n_tokens"]) for s in shards])


def _label_figures(ws: Workspace, group: str, anchors: list[str]) -> tuple[float | None, dict | None]:
    """On the group's clean (non-twin) labels: Spearman(teacher's mean label, tokens) -- beside the score's, it
    tells whether the length the selection follows is the teacher's or the student's -- and how many separate
    judgments the anchors' labels carry (anchor_choice.label_dimensionality)."""
    tabs = [pq.read_table(p) for p in (ws.root / "labels" / group / "train.parquet",
                                       ws.root / "labels" / group / "val.parquet") if p.exists()]
    if not tabs:
        return None, None
    t = real_labels(pa.concat_tables(tabs))
    m = np.column_stack([t.column(f"score:{a}").to_numpy(zero_copy_only=False).astype(float) for a in anchors])
    rho = _spearman(m.mean(axis=1), t.column("n_tokens").to_numpy(zero_copy_only=False).astype(float))
    return rho, label_dimensionality(m, t.column("source").to_pylist())


def _fmt(x: float | None, spec: str) -> str:
    return "n/a" if x is None else format(x, spec)


def _spearman(a, b) -> float | None:
    from scipy.stats import spearmanr

    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return float(spearmanr(a, b).statistic)


def _auc(score: np.ndarray, positive: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    if positive.all() or not positive.any():
        return None
    return float(roc_auc_score(positive, score))


def ground_truth_correct(corpus_file: Path) -> dict[str, bool]:
    out = {}
    with open(corpus_file, "rb") as fh:
        for line in io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(fh), encoding="utf-8"):
            r = orjson.loads(line)
            ok = (r.get("meta") or {}).get("meta", {}).get("is_correct")
            if ok is None:
                ok = (r.get("meta") or {}).get("is_correct")
            if ok is not None:
                out[r["id"]] = bool(ok)
    return out


def measure(cfg_path: Path) -> dict:
    cfg = load_config(cfg_path)
    ws = Workspace(cfg.workspace_path)
    groups = read_json(ws.root / "groups.json")["groups"]
    summary = read_json(ws.root / "selection" / "group" / "summary.json")
    out: dict = {"groups": {}, "sources": {}}
    for g, sources in groups.items():
        metrics = read_json(ws.root / "students" / g / "metrics.json")
        mask = read_json(ws.root / "students" / g / "mask.json")
        rubric = read_json(ws.root / "rubrics" / f"{g}.json")
        choice_path = ws.root / "labels" / g / "anchors.json"
        choice = read_json(choice_path) if choice_path.exists() else None
        active = metrics["anchors"]
        masked_share = float(np.mean([1 - len(m["anchors"]) / len(active) if not m["fallback"] else 1.0
                                      for m in mask.values()]))
        # the strict reading (cells) above; an anchor no source may use at all is the loose one, both reported
        used = {a for m in mask.values() if not m["fallback"] for a in m["anchors"]}
        keys = [name_key(a["name"]) for a in rubric["anchors"] if a["id"] in active]
        tabs = [_scores(ws, s) for s in sources]
        sc = np.concatenate([t.column("score").to_numpy(zero_copy_only=False) for t in tabs]).astype(float)
        nt = np.concatenate([t.column("n_tokens").to_numpy(zero_copy_only=False) for t in tabs]).astype(float)
        label_rho, dims = _label_figures(ws, g, active)
        out["groups"][g] = {
            "student": metrics["kind"], "val_spearman": metrics["overall"]["spearman"], "n_train": metrics["n_train"],
            "n_val": metrics["n_val"], "anchors_active": len(active), "anchors_candidates": len(rubric["anchors"]),
            "masked_share": round(masked_share, 3), "anchors_masked_everywhere": len(set(active) - used),
            "duplicate_names": len(keys) - len(set(keys)),
            "end_flagged": sum(bool(choice["stats"][a]["end_flag"]) for a in active) if choice else None,
            "spearman_score_tokens": _spearman(sc, nt),
            "spearman_label_tokens": label_rho,
            "label_pc1_share": dims["pc1_share"] if dims else None,
            "label_effective_anchors": dims["effective"] if dims else None,
        }
        for s, t in zip(sources, tabs):
            ps = summary["per_source"].get(s, {})
            out["sources"][s] = {"group": g, "spearman_score_tokens": _spearman(
                t.column("score").to_numpy(zero_copy_only=False), t.column("n_tokens").to_numpy(zero_copy_only=False)),
                "kept_share": ps.get("kept_tokens", 0) / max(ps.get("tokens", 1), 1)}
    src = "think_gsm8k_model_samples"
    # the source's own file as the config names it (a replayed demo's config names it by absolute path)
    files = [resolve_local(p, cfg.base_dir) for sc in cfg.sources if sc.name == src for p in sc.paths]
    corpus_file = files[0] if len(files) == 1 else None
    if corpus_file is not None and corpus_file.exists():
        truth = ground_truth_correct(corpus_file)
        t = _scores(ws, src)
        ids = t.column("id").to_pylist()
        keep = [i for i, rid in enumerate(ids) if rid in truth]
        score = t.column("score").to_numpy(zero_copy_only=False)[keep].astype(float)
        pos = np.array([truth[ids[i]] for i in keep])
        out["auc_is_correct"] = {"source": src, "n": len(keep), "auc": _auc(score, pos)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-c", "--config", type=Path, default=Path("data/demo/mira.yaml"))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    m = measure(args.config)
    print(f"{'group':<10} {'student':<24} {'val rho':>8} {'train/val':>10} {'active/cand':>12} {'masked':>7} "
          f"{'unused':>6} {'dup names':>9} {'end-flag':>8} {'rho(score,tok)':>15} {'rho(label,tok)':>15} "
          f"{'PC1 within':>10} {'eff. anchors':>12}")
    for g, r in m["groups"].items():
        rho, st, lt = (_fmt(r[k], ".3f") for k in ("val_spearman", "spearman_score_tokens", "spearman_label_tokens"))
        print(f"{g:<10} {r['student']:<24} {rho:>8} {r['n_train']:>4}/{r['n_val']:<5} "
              f"{r['anchors_active']:>5}/{r['anchors_candidates']:<6} {r['masked_share']:>7.0%} "
              f"{r['anchors_masked_everywhere']:>6} {r['duplicate_names']:>9} "
              f"{str(r['end_flagged']):>8} {st:>15} {lt:>15} {_fmt(r['label_pc1_share'], '.0%'):>10} "
              f"{_fmt(r['label_effective_anchors'], '.2f'):>12}")
    print(f"\n{'source':<32} {'group':<9} {'kept':>7} {'rho(score,tok)':>15}")
    for s, r in sorted(m["sources"].items()):
        st = _fmt(r["spearman_score_tokens"], ".3f")
        print(f"{s:<32} {r['group']:<9} {r['kept_share']:>7.1%} {st:>15}")
    if "auc_is_correct" in m:
        a = m["auc_is_correct"]
        print(f"\nAUC(score vs meta.is_correct) on {a['source']}: {a['auc']:.3f} over {a['n']} records")
    if args.json:
        args.json.write_bytes(orjson.dumps(m, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()

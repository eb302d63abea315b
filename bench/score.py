"""Student throughput and fidelity, side by side with fastText on the same records, labels and core.

For every group of a labeled workspace: fit `hashed_linear`, `embed_heads` and a fastText supervised model (trained
on the same teacher labels, binarized at the train median of the mean anchor score), then report
  * Spearman to the teacher on validation (mean anchor score; fastText: P(above median)),
  * docs/s and MB/s scoring every record of the group's sources, one thread each (fastText's predict is
    single-threaded; numpy/BLAS are pinned to one thread here for a like-for-like comparison),
and finally peak RSS of `mira score` (2 workers) on the corpus and on the corpus repeated 10x (shards copied),
which must stay flat: scoring streams shard by shard.

    python bench/score.py [--config data/demo/mira.yaml] [--scale 10]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import yaml  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import run_peak_rss  # noqa: E402

from mira_select.config import load_config  # noqa: E402
from mira_select.rubric import active_anchor_ids  # noqa: E402
from mira_select.stages.group import load_groups  # noqa: E402
from mira_select.stages.train import load_labeled  # noqa: E402
from mira_select.students.registry import make_student  # noqa: E402
from mira_select.workspace import Workspace  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


class FastTextPeer:
    """fastText supervised on binarized teacher labels; its score is P(__label__hi)."""

    def __init__(self, dim: int = 50, epoch: int = 25, word_ngrams: int = 2):
        self.dim, self.epoch, self.word_ngrams = dim, epoch, word_ngrams

    @staticmethod
    def _line(text: str) -> str:
        return " ".join(text.split())

    def fit(self, texts: list[str], y_mean: np.ndarray) -> "FastTextPeer":
        import fasttext

        cut = float(np.median(y_mean))
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
            for t, v in zip(texts, y_mean):
                fh.write(f"__label__{'hi' if v > cut else 'lo'} {self._line(t)}\n")
        self.model = fasttext.train_supervised(fh.name, dim=self.dim, epoch=self.epoch, wordNgrams=self.word_ngrams,
                                               thread=1, verbose=0, seed=0)
        os.unlink(fh.name)
        return self

    def lines(self, texts: list[str]) -> list[str]:
        return [self._line(t) for t in texts]

    def predict_lines(self, lines: list[str]) -> np.ndarray:
        labels, probs = self.model.predict(lines, k=2)
        return np.asarray([dict(zip(lab, p)).get("__label__hi", 0.0) for lab, p in zip(labels, probs)])


def group_texts(ws: Workspace, sources: list[str]) -> list[str]:
    out: list[str] = []
    for s in sources:
        for shard in ws.record_shards(s):
            out += pq.read_table(shard, columns=["text"]).column("text").to_pylist()
    return out


def rho(a: np.ndarray, b: np.ndarray) -> float:
    return float(spearmanr(a, b).statistic) if len(a) > 2 else float("nan")


def fidelity_and_speed(cfg, ws: Workspace) -> list[dict]:
    rows = []
    for group, sources in load_groups(ws)["groups"].items():
        anchors = active_anchor_ids(ws, group)
        train, val = (load_labeled(ws, group, split, anchors) for split in ("train", "val"))
        texts = group_texts(ws, sources)
        mb = sum(len(t.encode("utf-8", "surrogatepass")) for t in texts) / 1e6
        truth = val.y.mean(axis=1)
        for kind in ("hashed_linear", "embed_heads"):
            student = make_student(kind, anchors).fit(train.texts, train.y, train.sources)
            r = rho(student.predict(val.texts).mean(axis=1), truth)
            student.predict(texts[:64])  # warm-up (lazy tables, first-touch pages), as for fastText below
            t0 = time.perf_counter()
            student.predict(texts)
            dt = time.perf_counter() - t0
            rows.append({"group": group, "tier": kind, "n_train": len(train.ids), "n_val": len(val.ids),
                         "spearman": r, "docs": len(texts), "docs_s": len(texts) / dt, "mb_s": mb / dt})
        ft = FastTextPeer().fit(train.texts, train.y.mean(axis=1))
        r = rho(ft.predict_lines(ft.lines(val.texts)), truth)
        lines = ft.lines(texts)  # newline folding is fastText's input format: not charged to its timing
        ft.predict_lines(lines[:64])
        t0 = time.perf_counter()
        ft.predict_lines(lines)
        dt = time.perf_counter() - t0
        rows.append({"group": group, "tier": "fasttext", "n_train": len(train.ids), "n_val": len(val.ids),
                     "spearman": r, "docs": len(texts), "docs_s": len(texts) / dt, "mb_s": mb / dt})
    return rows


def memory(cfg_path: Path, ws: Workspace, scale: int) -> dict[int, dict]:
    """Peak RSS of `mira score` on the workspace's shards and on them repeated ``scale`` times."""
    out = {}
    tmp = Path(tempfile.mkdtemp(prefix="mira-bench-score-"))
    try:
        for k in (1, scale):
            root = tmp / f"x{k}"
            root.mkdir(parents=True)
            for name in ("groups.json", "manifest.json", "mira.yaml"):
                shutil.copy(ws.root / name, root / name)
            for name in ("students", "rubrics"):
                shutil.copytree(ws.root / name, root / name)
            n_shards = 0
            for src_dir in (ws.root / "records").iterdir():
                dst = root / "records" / src_dir.name
                dst.mkdir(parents=True)
                for i, shard in enumerate(p for _ in range(k) for p in sorted(src_dir.glob("part-*.parquet"))):
                    os.link(shard, dst / f"part-{i:05d}.parquet")
                    n_shards += 1
            cfg = yaml.safe_load(cfg_path.read_text())
            cfg["workspace"] = str(root)
            cfg.get("teacher", {}).pop("warm_cache", None)
            (root / "bench.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
            r = run_peak_rss(["score", "-c", str(root / "bench.yaml"), "-w", "2"], env={"OMP_NUM_THREADS": "1"})
            r["records"] = sum(pq.ParquetFile(p).metadata.num_rows for p in (root / "scores").rglob("*.parquet"))
            r["shards"] = n_shards
            out[k] = r
            shutil.rmtree(root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=REPO / "data" / "demo" / "mira.yaml")
    ap.add_argument("--scale", type=int, default=10)
    args = ap.parse_args()
    cfg = load_config(args.config)
    ws = Workspace(cfg.workspace_path)
    if not (ws.root / "labels").exists() or not (ws.root / "students").exists():
        raise SystemExit(f"{ws.root} has no labels/students: run `mira label` and `mira train` first")
    rows = fidelity_and_speed(cfg, ws)
    print("\nstudent tiers vs fastText (1 thread each; Spearman to the teacher's mean anchor score on validation)\n")
    print(f"{'group':<10} {'tier':<14} {'train':>5} {'val':>4} {'Spearman':>8} {'docs':>7} {'docs/s':>8} {'MB/s':>6}")
    for r in rows:
        print(f"{r['group']:<10} {r['tier']:<14} {r['n_train']:>5} {r['n_val']:>4} {r['spearman']:>8.3f} "
              f"{r['docs']:>7,} {r['docs_s']:>8,.0f} {r['mb_s']:>6.1f}")
    print()
    for tier in ("hashed_linear", "embed_heads", "fasttext"):
        sel = [r for r in rows if r["tier"] == tier]
        docs = sum(r["docs"] for r in sel)
        secs = sum(r["docs"] / r["docs_s"] for r in sel)
        mb = sum(r["mb_s"] * r["docs"] / r["docs_s"] for r in sel)
        print(f"{'all':<10} {tier:<14} {'':>5} {'':>4} {np.nanmean([r['spearman'] for r in sel]):>8.3f} "
              f"{docs:>7,} {docs / secs:>8,.0f} {mb / secs:>6.1f}")
    mem = memory(args.config, ws, args.scale)
    print("\n`mira score`, 2 workers, student from the workspace; peak RSS over the process tree\n")
    print(f"{'corpus':>7} {'shards':>7} {'records':>9} {'wall s':>7} {'rec/s':>7} {'peak tree MB':>13} {'peak proc MB':>13}")
    for k, r in mem.items():
        print(f"{str(k) + 'x':>7} {r['shards']:>7} {r['records']:>9,} {r['wall']:>7.1f} {r['records'] / r['wall']:>7,.0f} "
              f"{r['tree'] / 1e6:>13.0f} {r['single'] / 1e6:>13.0f}")
    print(f"\npeak tree RSS {args.scale}x / 1x = {mem[args.scale]['tree'] / mem[1]['tree']:.2f}")


if __name__ == "__main__":
    main()

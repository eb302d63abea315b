"""Scale: does every stage stay flat in memory and linear in time as the corpus grows?

Builds 1x, 10x and 30x copies of the bundled demo corpus (every copy gets new ids and ~10 % of its longer words
rotated, so neither exact nor near dedup collapses the copies), then per scale runs, each as its own `mira`
process on the same workers: ingest -> prefilter -> score -> select (MIRA-Group), and the baselines that read the
whole corpus: ppl, DSIR, and `mira eval` (n-gram proxy on the whole selection + one tiny transformer run). The
students and groups are the demo workspace's (run `make demo` first): a scaled corpus is the same sources, so the
bench times scoring, not re-labeling.

Beside ours, in the same run and on the same files: datatrove's own JsonlReader -> ParquetWriter pipeline (no
tokenization, no normalization) on the same workers: the I/O floor of a well-kept peer.

Per stage and scale: wall seconds, CPU seconds (the process tree's user + system), MB of input JSONL per wall
second and per CPU second ("per core"), peak RSS of the whole process tree (sampled every 100 ms).
Targets (issue 16): peak RSS at 30x <= 1.5x the 1x figure for every stage; seconds per MB at 30x within 20 % of
10x; our ingest MB per CPU second >= 0.5x datatrove's.

    python bench/scale.py [--scales 1,10,30] [--base-share 1.0] [--workers 2] [--out bench/results_scale.json]

``--base-share`` takes that share of every demo source as the 1x corpus (0.1: 1x = 16 MB of JSONL, 30x = 470 MB),
for a machine or a session that cannot spend the full run (1x = 156 MB; the full 30x ingest + prefilter takes
about an hour on 2 cores).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import orjson
import yaml
import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import run_peak_rss  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "data" / "demo"
# what a scaled workspace reuses from the demo workspace: the capability groups and the fitted students
FROM_DEMO = ["groups.json", "students", "_done/group", "_done/train", "rubrics", "_done/discover", "labels",
             "_done/label"]
TINY_EVAL = {"seeds": [0], "train_bytes": 100_000, "context": 64, "layers": 1, "width": 32, "heads": 2,
             "batch": 8, "holdout_share": 0.02, "threads": 1, "variants": ["group"]}


def jitter(text: str, copy: int) -> str:
    """Copy 0 is the record itself; every other copy rotates ~10 % of its alphabetic words of 4+ letters."""
    if copy == 0:
        return text
    rng = random.Random(copy * 1_000_003 + len(text))
    words = text.split(" ")
    for i, w in enumerate(words):
        if len(w) >= 4 and w.isalpha() and rng.random() < 0.1:
            k = rng.randrange(1, len(w))
            words[i] = w[k:] + w[:k]
    return " ".join(words)


def make_corpus(dst: Path, scale: int, share: float) -> tuple[Path, int]:
    """One plain JSONL file per source holding ``scale`` copies of its first ``share`` of records.
    -> (config path, bytes of JSONL written)."""
    dst.mkdir(parents=True)
    cfg = yaml.safe_load((DEMO / "mira.yaml").read_text())
    total = 0
    for src in cfg["sources"]:
        path = DEMO / src["paths"][0]
        with open(path, "rb") as fh:
            lines = io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(fh)).read().splitlines()
        lines = lines[: max(1, round(len(lines) * share))]
        out = dst / f"{src['name']}.jsonl"
        with open(out, "wb") as w:
            for k in range(scale):
                for line in lines:
                    row = orjson.loads(line)
                    if k:
                        row["id"] = f"{row['id']}~r{k}"
                        row["text"] = jitter(row["text"], k)
                    w.write(orjson.dumps(row) + b"\n")
        total += out.stat().st_size
        src["paths"] = [out.name]
    cfg.update(workspace="ws", eval=TINY_EVAL)
    cfg["teacher"] = {**cfg["teacher"], "backend": "replay", "warm_cache": str(DEMO / "cache")}
    (dst / "mira.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return dst / "mira.yaml", total


def seed_workspace(ws: Path, demo_ws: Path) -> None:
    for name in FROM_DEMO:
        src = demo_ws / name
        if src.is_dir():
            shutil.copytree(src, ws / name)
        elif src.exists():
            (ws / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, ws / name)


def datatrove_floor(corpus: Path, workers: int) -> dict:
    """datatrove's JsonlReader -> ParquetWriter on the same files, in a child process (RSS and CPU measured the
    same way as ours)."""
    script = corpus / "datatrove_floor.py"
    script.write_text(
        "import orjson\n"
        "from datatrove.executor import LocalPipelineExecutor\n"
        "from datatrove.pipeline.readers import JsonlReader\n"
        "from datatrove.pipeline.writers import ParquetWriter\n\n\n"
        "def row(self, doc):  # metadata as one JSON string, as our shards keep it (its keys vary per record)\n"
        "    return {'id': doc.id, 'text': doc.text, 'metadata': orjson.dumps(doc.metadata).decode()}\n\n\n"
        "if __name__ == '__main__':  # datatrove's workers are spawned: the pipeline runs in the main process only\n"
        f"    LocalPipelineExecutor(pipeline=[JsonlReader({str(corpus)!r}, glob_pattern='*.jsonl', compression=None),"
        f" ParquetWriter({str(corpus / 'dt_out')!r}, compression='zstd', adapter=row)],"
        f" tasks={len(list(corpus.glob('*.jsonl')))}, workers={workers},"
        f" logging_dir={str(corpus / 'dt_logs')!r}, skip_completed=False).run()\n")
    return run_peak_rss([], argv=[sys.executable, str(script)])


STAGES = [("ingest", ["ingest"]), ("prefilter", ["prefilter"]), ("score", ["score"]),
          ("select", ["select", "--variant", "group"]), ("ppl", ["select", "--variant", "ppl"]),
          ("dsir", ["select", "--variant", "dsir"]), ("eval", ["eval", "--variant", "group", "--max-items", "20"])]


def run_scale(tmp: Path, scale: int, share: float, workers: int, demo_ws: Path, peer: bool,
              stages: list[str]) -> dict:
    cfg, size = make_corpus(tmp / f"x{scale}", scale, share)
    seed_workspace(cfg.parent / "ws", demo_ws)
    rows = {}
    for name, args in STAGES:
        if name not in stages:
            continue
        extra = ["-w", str(workers)] if name in ("ingest", "prefilter", "score") else []
        rows[name] = run_peak_rss([*args, "-c", str(cfg), *extra])
        print(f"  {scale}x {name}: {rows[name]['wall']:.1f} s wall, {rows[name]['tree'] / 1e6:.0f} MB peak",
              flush=True)
    manifest = orjson.loads((cfg.parent / "ws" / "manifest.json").read_bytes())
    if peer:
        rows["datatrove jsonl->parquet"] = datatrove_floor(cfg.parent, workers)
    if peer and "ingest" in stages:
        # per core: one process each (ours in-process with -w 1, datatrove with one worker), so wall = one core's
        # time for both; datatrove's pool children are not reaped, so its CPU column cannot be compared directly
        one = cfg.parent / "one_worker.yaml"
        one.write_text(cfg.read_text().replace("workspace: ws", "workspace: ws_one_worker", 1))
        rows["ingest, 1 worker"] = run_peak_rss(["ingest", "-c", str(one), "-w", "1"])
        for leftover in ("dt_out", "dt_logs"):
            shutil.rmtree(cfg.parent / leftover, ignore_errors=True)
        rows["datatrove, 1 worker"] = datatrove_floor(cfg.parent, 1)
    shutil.rmtree(cfg.parent, ignore_errors=True)
    return {"mb": size / 1e6, "records": manifest["totals"]["records"], "stages": rows}


def table(results: dict, workers: int) -> str:
    lines = [f"| stage | scale | MB JSONL | wall s | CPU s | MB/s wall | MB per CPU s | peak tree MB |",
             "|---|---|---|---|---|---|---|---|"]
    names = list(next(iter(results.values()))["stages"])
    for name in names:
        for scale, res in results.items():
            r = res["stages"][name]
            lines.append(f"| {name} | {scale}x | {res['mb']:.0f} | {r['wall']:.1f} | {r['cpu']:.1f} | "
                         f"{res['mb'] / r['wall']:.2f} | {res['mb'] / max(r['cpu'], 1e-9):.2f} | "
                         f"{r['tree'] / 1e6:.0f} |")
    scales = list(results)
    lo, mid, hi = scales[0], scales[-2] if len(scales) > 2 else scales[0], scales[-1]
    lines.append("")
    for name in names:
        a, m, b = (results[s]["stages"][name] for s in (lo, mid, hi))
        rss = b["tree"] / a["tree"]
        per_mb = (b["wall"] / results[hi]["mb"]) / (m["wall"] / results[mid]["mb"])
        lines.append(f"- {name}: peak RSS {hi}x/{lo}x = {rss:.2f} ({'ok' if rss <= 1.5 else 'OVER 1.5'}); "
                     f"s/MB {hi}x/{mid}x = {per_mb:.2f} ({'ok' if per_mb <= 1.2 else 'OVER 1.2'})")
    if "datatrove jsonl->parquet" in names:
        # by wall time on the same workers: datatrove's pool processes are not reaped by its main process, so
        # their CPU seconds do not reach this process's RUSAGE_CHILDREN (its CPU column is its main process only)
        for s in scales:
            ours = results[s]["mb"] / results[s]["stages"]["ingest"]["wall"]
            peer = results[s]["mb"] / results[s]["stages"]["datatrove jsonl->parquet"]["wall"]
            lines.append(f"- {s}x ingest MB/s, {workers} workers: ours {ours:.2f} vs datatrove {peer:.2f} = "
                         f"{ours / peer:.2f}x (target >= 0.5)")
    if "datatrove, 1 worker" in names:
        for s in scales:
            ours, peer = (results[s]["mb"] / results[s]["stages"][k]["wall"]
                          for k in ("ingest, 1 worker", "datatrove, 1 worker"))
            lines.append(f"- {s}x ingest MB/s per core (1 worker each): ours {ours:.2f} vs datatrove {peer:.2f} = "
                         f"{ours / peer:.2f}x (target >= 0.5)")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", default="1,10,30")
    ap.add_argument("--base-share", type=float, default=1.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--demo-ws", type=Path, default=DEMO / "ws")
    ap.add_argument("--no-peer", action="store_true", help="skip datatrove's reader -> writer")
    ap.add_argument("--stages", default=",".join(name for name, _ in STAGES),
                    help="a subset of the stages, comma-separated (ingest alone also runs the per-core comparison)")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args()
    if not (args.demo_ws / "students").exists():
        raise SystemExit(f"{args.demo_ws} has no students: run `make demo` first")
    tmp = Path(tempfile.mkdtemp(prefix="mira-scale-"))
    results = {}
    start = time.monotonic()
    try:
        for scale in (int(s) for s in args.scales.split(",")):
            results[scale] = run_scale(tmp, scale, args.base_share, args.workers, args.demo_ws, not args.no_peer,
                                       args.stages.split(","))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    text = table(results, args.workers)
    print(f"\n{args.workers} worker(s), base share {args.base_share:g} of the demo, "
          f"{time.monotonic() - start:.0f} s in all, cpu_count {os.cpu_count()}\n\n{text}")
    if args.out:
        args.out.write_text(json.dumps({"base_share": args.base_share, "workers": args.workers,
                                        "results": results, "table": text}, indent=1))


if __name__ == "__main__":
    main()

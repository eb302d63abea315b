"""Ingest memory and throughput: the demo corpus vs. the same corpus repeated 10x (new ids), same workers.

Streaming means peak RSS must not grow with corpus size: the 10x run should stay within 1.5x of the 1x run.
Peak RSS is sampled over the whole process tree (CLI + worker processes) every 100 ms.

    python bench/ingest_memory.py [--scale 10] [--workers 2]
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import tempfile
from pathlib import Path

import orjson
import yaml
import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import run_peak_rss  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "data" / "demo"


def make_corpus(dst: Path, scale: int) -> Path:
    """Each demo source repeated ``scale`` times in one file, ids made unique per repetition."""
    dst.mkdir(parents=True)
    cfg = yaml.safe_load((DEMO / "mira.yaml").read_text())
    for src in cfg["sources"]:
        path = DEMO / src["paths"][0]
        with open(path, "rb") as fh:
            lines = io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(fh)).read().splitlines()
        cctx = zstandard.ZstdCompressor(level=3)
        with open(dst / path.name, "wb") as out, cctx.stream_writer(out) as w:
            for k in range(scale):
                for line in lines:
                    if k == 0:
                        w.write(line + b"\n")
                    else:
                        row = orjson.loads(line)
                        row["id"] = f"{row['id']}~r{k}"
                        w.write(orjson.dumps(row) + b"\n")
    cfg["workspace"] = "ws"
    for src in cfg["sources"]:
        src["paths"] = [Path(src["paths"][0]).name]
    (dst / "mira.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return dst / "mira.yaml"


def run_ingest(config: Path, workers: int) -> dict:
    r = run_peak_rss(["ingest", "-c", str(config), "-w", str(workers), "-q"])
    manifest = orjson.loads((config.parent / "ws" / "manifest.json").read_bytes())
    return {**r, **manifest["totals"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mira-bench-"))
    try:
        rows = {}
        for scale in (1, args.scale):
            cfg = make_corpus(tmp / f"x{scale}", scale)
            rows[scale] = run_ingest(cfg, args.workers)
        print(f"\ningest, {args.workers} worker(s), peak RSS sampled over the process tree\n")
        print(f"{'corpus':>8} {'records':>10} {'tokens':>12} {'MB text':>8} {'wall s':>7} {'MB/s':>6} "
              f"{'peak tree MB':>13} {'peak proc MB':>13}")
        for scale, r in rows.items():
            print(f"{str(scale) + 'x':>8} {r['records']:>10,} {r['tokens']:>12,} {r['bytes'] / 1e6:>8.1f} "
                  f"{r['wall']:>7.1f} {r['bytes'] / 1e6 / r['wall']:>6.2f} {r['tree'] / 1e6:>13.0f} "
                  f"{r['single'] / 1e6:>13.0f}")
        ratio = rows[args.scale]["tree"] / rows[1]["tree"]
        print(f"\npeak tree RSS {args.scale}x / 1x = {ratio:.2f} (target <= 1.5)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

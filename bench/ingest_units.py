"""One big plain JSONL file, ingested on 1 and on 2 workers: the file's units share the workers.

The file is the demo corpus decompressed and repeated (new ids per repetition) up to ``--mb``, with one id repeated
across two units, so the duplicate merge runs too. Reports wall time, unit count and peak RSS per run, and checks
that both runs wrote the same shards byte for byte.

    python bench/ingest_units.py [--mb 100] [--unit-mb 8] [--workers 1,2]

CPU use is the process tree's user + system seconds over wall seconds (2.0 = both cores busy throughout).
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
CORPUS = REPO / "data" / "demo" / "corpus"


def make_file(path: Path, mb: int) -> int:
    lines = []
    for f in sorted(CORPUS.glob("*.jsonl.zst")):
        with open(f, "rb") as fh:
            lines += io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(fh)).read().splitlines()
    size = n = 0
    path.parent.mkdir(parents=True)
    with open(path, "wb") as out:
        k = 0
        while size < mb * 1e6:
            for line in lines:
                row = orjson.loads(line)
                row["id"] = f"{row['id']}~r{k}" if k else row["id"]
                data = orjson.dumps(row) + b"\n"
                out.write(data)
                size, n = size + len(data), n + 1
                if size >= mb * 1e6:
                    break
            k += 1
        out.write(lines[0] + b"\n")  # the first record's id again, in the last unit
    return n + 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=100)
    ap.add_argument("--unit-mb", type=int, default=8)
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts, one run each")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mira-bench-units-"))
    try:
        lines = make_file(tmp / "in" / "big.jsonl", args.mb)
        rows = {}
        counts = [int(w) for w in args.workers.split(",")]
        for workers in counts:
            d = tmp / f"w{workers}"
            d.mkdir()
            cfg = {"workspace": "ws", "sources": [{"name": "big", "paths": [str(tmp / "in" / "big.jsonl")]}],
                   "ingest": {"exclude_fields": ["group", "format", "meta.lowq_kind"],
                              "unit_bytes": f"{args.unit_mb}MiB"}}
            (d / "mira.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
            r = run_peak_rss(["ingest", "-c", str(d / "mira.yaml"), "-w", str(workers), "-q"])
            m = orjson.loads((d / "ws" / "manifest.json").read_bytes())["sources"]["big"]
            rows[workers] = {**r, **m}
        shards = [sorted((tmp / f"w{w}" / "ws" / "records" / "big").glob("*.parquet")) for w in counts]
        same = all([a.name for a in shards[0]] == [b.name for b in other] and
                   all(a.read_bytes() == b.read_bytes() for a, b in zip(shards[0], other)) for other in shards[1:])
        size = (tmp / "in" / "big.jsonl").stat().st_size
        print(f"\none plain JSONL file: {size / 1e6:.1f} MB, {lines:,} lines, unit_bytes {args.unit_mb} MiB\n")
        print(f"{'workers':>7} {'units':>6} {'records':>9} {'quarantined':>11} {'wall s':>7} {'MB/s':>6} "
              f"{'peak tree MB':>13} {'CPU s':>7} {'CPU use':>7}")
        for w, r in rows.items():
            print(f"{w:>7} {r['units']:>6} {r['records']:>9,} {r['quarantined']:>11} {r['wall']:>7.1f} "
                  f"{size / 1e6 / r['wall']:>6.2f} {r['tree'] / 1e6:>13.0f} {r['cpu']:>7.1f} "
                  f"{r['cpu'] / r['wall']:>7.2f}")
        if len(counts) > 1:
            print(f"\nspeed-up {rows[counts[0]]['wall'] / rows[counts[-1]]['wall']:.2f}x; shards byte-identical: "
                  f"{same}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

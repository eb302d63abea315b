"""Copy the demo workspace's teacher cache into the shipped warm cache (data/demo/cache/), safely while a run writes.

The demo replays this cache (make demo: 0 teacher calls). To regenerate it after a prompt or config change:

    rm -rf data/demo/ws                       # or keep it: every finished unit is kept, every answer cached
    .venv/bin/mira run -c data/demo/mira.yaml --until label --no-report   # hours on 2 cores; resumable
    .venv/bin/python scripts/demo_cache.py    # any time, also while the run goes on: ships what is answered so far

"""

from __future__ import annotations

import argparse
import os
import sqlite3
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sync(src: Path, dst: Path) -> int:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(".sqlite.tmp")
    if tmp.exists():
        tmp.unlink()
    a, b = sqlite3.connect(src), sqlite3.connect(tmp)
    try:
        a.backup(b)  # consistent snapshot even while another process writes (WAL)
        b.execute("PRAGMA journal_mode=DELETE")
        b.execute("VACUUM")
        n = b.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    finally:
        a.close()
        b.close()
    os.replace(tmp, dst)
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspace", type=Path, default=ROOT / "data" / "demo" / "ws")
    ap.add_argument("--out", type=Path, default=ROOT / "data" / "demo" / "cache")
    args = ap.parse_args()
    src = args.workspace / "cache" / "teacher.sqlite"
    key_src, key_dst = args.workspace / "cache" / "nonce.key", args.out / "nonce.key"
    if key_dst.exists() and key_src.read_bytes() != key_dst.read_bytes():
        raise SystemExit(f"{key_src} differs from {key_dst}: this workspace was not seeded from the shipped cache")
    n = sync(src, args.out / "teacher.sqlite")
    size = (args.out / "teacher.sqlite").stat().st_size
    print(f"{n} answers, {size / 1e6:.1f} MB -> {args.out / 'teacher.sqlite'}")


if __name__ == "__main__":
    main()

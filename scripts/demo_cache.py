"""Copy the demo workspace's teacher cache into the shipped warm cache (data/demo/cache/), safely while a run writes.

The demo replays this cache (make demo: 0 teacher calls). To regenerate it after a prompt or config change:

    rm -rf data/demo/ws                       # or keep it: every finished unit is kept, every answer cached
    .venv/bin/mira run -c data/demo/mira.yaml --until label --no-report   # hours on 2 cores; resumable
    .venv/bin/python scripts/demo_cache.py    # any time, also while the run goes on: ships what is answered so far

Answers of an earlier rubric stay in the cache until pruned. ``--prune`` replays the whole demo (``mira run`` and
``mira teacher check -n 4``) in a scratch workspace, answering only from this workspace's cache (a miss is an
error: the regeneration is not finished), and ships only the answers and decisions that replay read:

    .venv/bin/python scripts/demo_cache.py --prune

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


def keys_the_demo_reads(config: Path, cache_dir: Path, keep: Path | None = None) -> tuple[set[str], set[str]]:
    """(response keys, decision keys) that a replay of the demo reads from ``cache_dir``: `mira run` and `mira teacher
    check -n 4` in a scratch workspace, every teacher answer from the cache. ``keep``: the scratch directory to use
    and leave behind (its mira.yaml and ws/ are the demo exactly as a fresh `make demo` makes it from these
    answers, so measurements can read it instead of running the pipeline a second time)."""
    import shutil
    import tempfile

    import yaml

    from mira_select.config import load_config
    from mira_select.pipeline import Pipeline
    from mira_select.teacher.cache import ResponseCache
    from mira_select.teacher.check import run_check
    from mira_select.workspace import Workspace

    responses: set[str] = set()
    decisions: set[str] = set()
    get, decide = ResponseCache.get, ResponseCache.decision

    def recording_get(self, key):
        found = get(self, key)
        if found is not None:
            responses.add(key)
        return found

    def recording_decision(self, kind, inputs, compute):
        def missing():
            raise SystemExit(f"the cache has no recorded {kind} decision for the demo: is the regeneration finished?")
        decisions.add(ResponseCache.decision_key(kind, inputs))
        return decide(self, kind, inputs, missing)

    if keep is not None and keep.exists() and any(keep.iterdir()):
        raise SystemExit(f"{keep} is not empty: the replay must start from a bare workspace")
    tmp = str(keep) if keep is not None else tempfile.mkdtemp(prefix="mira-prune-")
    try:
        Path(tmp).mkdir(parents=True, exist_ok=True)
        cfg = yaml.safe_load(config.read_text())
        cfg["workspace"] = str(Path(tmp) / "ws")
        cfg["teacher"].update({"backend": "replay", "replay_as": "local", "warm_cache": str(cache_dir)})
        for source in cfg["sources"]:
            source["paths"] = [str((config.parent / p).resolve()) for p in source["paths"]]
        scratch = Path(tmp) / "mira.yaml"
        scratch.write_text(yaml.safe_dump(cfg, sort_keys=False))
        ResponseCache.get, ResponseCache.decision = recording_get, recording_decision
        try:
            loaded = load_config(scratch)
            Pipeline(loaded).run()
            run_check(loaded, Workspace(loaded.workspace_path), per_format=4)
        finally:
            ResponseCache.get, ResponseCache.decision = get, decide
    finally:
        if keep is None:
            shutil.rmtree(tmp, ignore_errors=True)
    return responses, decisions


def prune(path: Path, responses: set[str], decisions: set[str]) -> int:
    """Delete from the sqlite cache at ``path`` every answer and decision not listed; -> answers left."""
    conn = sqlite3.connect(path)
    try:
        for table, keep in (("responses", responses), ("decisions", decisions)):
            conn.execute(f"CREATE TEMP TABLE keep_{table} (key TEXT PRIMARY KEY)")
            conn.executemany(f"INSERT INTO keep_{table} VALUES (?)", [(k,) for k in keep])
            conn.execute(f"DELETE FROM {table} WHERE key NOT IN (SELECT key FROM keep_{table})")
        conn.commit()
        conn.execute("VACUUM")
        return conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    finally:
        conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspace", type=Path, default=ROOT / "data" / "demo" / "ws")
    ap.add_argument("--out", type=Path, default=ROOT / "data" / "demo" / "cache")
    ap.add_argument("--config", type=Path, default=ROOT / "data" / "demo" / "mira.yaml")
    ap.add_argument("--prune", action="store_true", help="ship only what a replay of the demo reads")
    ap.add_argument("--keep", type=Path, help="with --prune: run the replay in this (empty or new) directory and "
                                              "leave it there (DIR/mira.yaml, DIR/ws) for measurements")
    args = ap.parse_args()
    if args.keep is not None and not args.prune:
        ap.error("--keep names where the --prune replay runs; give --prune too")
    src = args.workspace / "cache" / "teacher.sqlite"
    key_src, key_dst = args.workspace / "cache" / "nonce.key", args.out / "nonce.key"
    if key_dst.exists() and key_src.read_bytes() != key_dst.read_bytes():
        raise SystemExit(f"{key_src} differs from {key_dst}: this workspace was not seeded from the shipped cache")
    n = sync(src, args.out / "teacher.sqlite")
    if args.prune:
        before = n
        responses, decisions = keys_the_demo_reads(args.config, args.workspace / "cache", args.keep)
        n = prune(args.out / "teacher.sqlite", responses, decisions)
        print(f"pruned {before - n} answers the demo no longer reads")
    size = (args.out / "teacher.sqlite").stat().st_size
    print(f"{n} answers, {size / 1e6:.1f} MB -> {args.out / 'teacher.sqlite'}")


if __name__ == "__main__":
    main()

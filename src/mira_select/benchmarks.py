"""Benchmark tasks as (prompt, solution) pairs: the held-out targets of `mira eval` and the contamination guard.

One small loader per benchmark format (MBPP+ jsonl, Spider / BIRD json with their table files). SQL prompts carry
the schema as ``CREATE TABLE`` lines, then the question (and BIRD's evidence), so a model is scored on writing
the gold query *given* what a user would give it. A normalized copy of the three benchmarks ships in the package
(``assets/benchmarks.jsonl.zst``, licences in data/benchmarks/README.md), so neither needs the original files.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Iterator

import orjson
import zstandard

from .errors import MiraError

BUNDLED = "benchmarks.jsonl.zst"


@dataclass(frozen=True)
class BenchItem:
    benchmark: str
    id: str
    domain: str  # python | sql
    prompt: str
    solution: str


def load_mbppplus(path: Path) -> Iterator[BenchItem]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                r = json.loads(line)
                yield BenchItem("mbppplus", r["task_id"], "python", r["prompt"], r["canonical_solution"].strip("\n"))


def _schemas(tables_path: Path) -> dict[str, str]:
    """db_id -> CREATE TABLE lines (Spider/BIRD table files: one entry per table)."""
    tables = json.loads(tables_path.read_text(encoding="utf-8"))
    entries = tables.values() if isinstance(tables, dict) else tables
    out: dict[str, list[str]] = {}
    for t in entries:
        cols = ", ".join(f"{c} {ty}" for c, ty in zip(t["column_names_original"], t["column_types"]))
        out.setdefault(t["db_id"], []).append(f"CREATE TABLE {t['table_name_original']} ({cols});")
    return {db: "\n".join(lines) for db, lines in out.items()}


def _load_sql(name: str, folder: Path) -> Iterator[BenchItem]:
    schemas = _schemas(folder / "dev_tables.json")
    for i, r in enumerate(json.loads((folder / "dev.json").read_text(encoding="utf-8"))):
        sql = r.get("sql") if isinstance(r.get("sql"), str) else r.get("query") or r.get("SQL")
        parts = [f"-- Database {r['db_id']}", schemas.get(r["db_id"], ""), f"-- Question: {r['question']}"]
        if r.get("evidence"):
            parts.append(f"-- Evidence: {r['evidence']}")
        yield BenchItem(name, f"{name}/{r.get('question_id', i)}", "sql", "\n".join(parts) + "\n", sql.strip())


def load_folder(root: Path) -> list[BenchItem]:
    """The benchmarks found under ``root`` (mbppplus/, spider/, bird/ as in data/benchmarks)."""
    items: list[BenchItem] = []
    if (root / "mbppplus" / "MbppPlus.jsonl.gz").exists():
        items += load_mbppplus(root / "mbppplus" / "MbppPlus.jsonl.gz")
    for name in ("spider", "bird"):
        if (root / name / "dev.json").exists():
            items += _load_sql(name, root / name)
    if not items:
        raise MiraError(f"no benchmarks under {root} (expected mbppplus/, spider/ or bird/)")
    return items


@functools.lru_cache(maxsize=4)
def load_benchmarks(spec: str = "bundled") -> tuple[BenchItem, ...]:
    """``bundled`` (the copy inside the package), a folder like data/benchmarks, or a .jsonl(.zst) of BenchItems."""
    if spec == "bundled":
        data = zstandard.ZstdDecompressor().decompress(
            resources.files("mira_select.assets").joinpath(BUNDLED).read_bytes(), max_output_size=1 << 30)
        return tuple(BenchItem(**orjson.loads(line)) for line in data.splitlines() if line)
    path = Path(spec).expanduser()
    if path.is_dir():
        return tuple(load_folder(path))
    if path.is_file():
        raw = path.read_bytes()
        if path.suffix == ".zst":
            raw = zstandard.ZstdDecompressor().decompress(raw, max_output_size=1 << 30)
        return tuple(BenchItem(**orjson.loads(line)) for line in raw.splitlines() if line)
    raise MiraError(f"benchmarks {spec!r}: not 'bundled', a folder or a .jsonl file")


def benchmarks_digest(spec: str) -> str:
    """What a benchmark set's content is, cheaply (its files' bytes, not parsed): part of the fingerprint of
    everything that reads it, so an edited benchmark file redoes the contamination flags."""
    h = hashlib.sha256(spec.encode())
    if spec == "bundled":
        h.update(resources.files("mira_select.assets").joinpath(BUNDLED).read_bytes())
        return h.hexdigest()[:16]
    path = Path(spec).expanduser()
    for f in sorted(path.rglob("*")) if path.is_dir() else [path]:
        if f.is_file():
            h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def bundle(root: Path, out: Path) -> int:
    """Write the normalized copy shipped in the package (run by scripts/bundle_benchmarks.py)."""
    items = load_folder(root)
    data = b"".join(orjson.dumps(asdict(i)) + b"\n" for i in items)
    out.write_bytes(zstandard.ZstdCompressor(level=19).compress(data))
    return len(items)

"""Reading a selection back without holding it: ``selection/<variant>/kept.parquet`` locates every kept record
(its record shard and row), so texts are read shard by shard in one streaming pass, and a seeded random slice of
the selection is drawn from the small columns first and only its texts are decoded.

Every text read through here is checked against the kept id at its position: a workspace re-ingested after the
selection is an error naming the shard, never another record's text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import MiraError
from ..holdout import id_buckets
from ..workspace import Workspace
from .shards import checked_rows

KEPT_SCHEMA = pa.schema([("id", pa.string()), ("source", pa.string()), ("shard", pa.string()),
                         ("row", pa.int32()), ("score", pa.float32()), ("n_tokens", pa.int32()),
                         ("n_bytes", pa.int32())])
BATCH = 65_536
RUN = 2_048  # kept rows read from a record shard at once (the row groups holding them are decoded) ...
RUN_BYTES = 4 << 20  # ... or fewer when they hold this many bytes of text: a row count alone bounds nothing


def kept_path(ws: Workspace, variant: str) -> Path:
    return ws.root / "selection" / variant / "kept.parquet"


def _open(ws: Workspace, variant: str) -> pq.ParquetFile:
    path = kept_path(ws, variant)
    if not path.exists():
        raise MiraError(f"no selection {variant!r} in {ws.root}; run `mira select --variant {variant}` first")
    pf = pq.ParquetFile(path)
    missing = {"shard", "row", "n_bytes"} - set(pf.schema_arrow.names)
    if missing:
        raise MiraError(f"{path} was written by an older mira-select (no record locations or sizes); run "
                        f"`mira select --variant {variant}` again")
    return pf


def _read_rows(ws: Workspace, source: str, shard: str, rows: list[int], ids: list[str],
               columns: list[str]) -> pa.Table:
    path = _existing(ws.records_dir(source) / shard)
    return checked_rows(path, rows, ids, columns, "after the selection was made",
                        "run `mira score` and `mira select` again")


def _existing(path: Path) -> Path:
    """A record shard a selection refers to; gone (the corpus was re-ingested since) is an error naming it."""
    if not path.exists():
        raise MiraError(f"selection refers to {path}, which no longer exists; run `mira select` again")
    return path


def keep_smallest(keys: np.ndarray, sizes: np.ndarray, locs: list,
                  budget: int) -> tuple[np.ndarray, np.ndarray, list]:
    """The candidates with the smallest keys whose sizes add up to ``budget`` (through the one that crosses it; all
    when they fall short), in key order. Called after every batch, it keeps a streamed bottom-k sample in memory
    for the sample only (sizes of 1 and a budget of k: the k smallest keys)."""
    order = np.argsort(keys, kind="stable")
    order = order[: int(np.searchsorted(np.cumsum(sizes[order]), budget)) + 1]
    return keys[order], sizes[order], [locs[i] for i in order]


def texts_at(locations: list[tuple[Path, int, str]], when: str, remedy: str) -> list[str]:
    """The texts at (record shard, row, expected id) locations, in the order given; one read per shard."""
    by_path: dict[Path, list[int]] = {}
    for pos, (path, _, _) in enumerate(locations):
        by_path.setdefault(path, []).append(pos)
    texts: list[str | None] = [None] * len(locations)
    for path, positions in by_path.items():
        table = checked_rows(path, [locations[p][1] for p in positions], [locations[p][2] for p in positions],
                             ["text"], when, remedy)
        for p, text in zip(positions, table.column("text").to_pylist()):
            texts[p] = text
    return texts  # type: ignore[return-value]


def iter_kept_records(ws: Workspace, variant: str, columns: list[str]) -> Iterator[pa.Table]:
    """The kept records' ``columns`` (record-shard columns), in selection order, at most ``RUN`` rows and about
    ``RUN_BYTES`` of text of one record shard at a time: memory holds one batch of locations plus those rows,
    whatever the size of the selection and the length of its records."""
    pf = _open(ws, variant)
    run_key: tuple[str, str] | None = None
    rows: list[int] = []
    ids: list[str] = []
    size = 0
    for batch in pf.iter_batches(batch_size=BATCH, columns=["id", "source", "shard", "row", "n_bytes"]):
        d = batch.to_pydict()
        for rid, source, shard, row, n_bytes in zip(d["id"], d["source"], d["shard"], d["row"], d["n_bytes"]):
            if (source, shard) != run_key or len(rows) >= RUN or size >= RUN_BYTES:  # long runs are read in pieces
                if rows:
                    yield _read_rows(ws, run_key[0], run_key[1], rows, ids, columns)
                run_key, rows, ids, size = (source, shard), [], [], 0
            rows.append(row)
            ids.append(rid)
            size += n_bytes
    if rows:
        yield _read_rows(ws, run_key[0], run_key[1], rows, ids, columns)


def iter_kept_texts(ws: Workspace, variant: str) -> Iterator[str]:
    for table in iter_kept_records(ws, variant, ["text"]):
        yield from table.column("text").to_pylist()


def kept_sample(ws: Workspace, variant: str, n_bytes: int, seed: int) -> list[str]:
    """Texts of a seeded random slice of the selection holding at least ``n_bytes`` (all of it when smaller), in
    the slice's random order.

    Each kept record gets a uniform key from (seed, id); the slice is the records with the smallest keys up to the
    byte budget — a uniform sample without replacement, drawn in one pass over the small columns with memory for
    the slice only (candidates are cut back to the budget after every batch)."""
    pf = _open(ws, variant)
    keys = np.zeros(0, np.float64)
    sizes = np.zeros(0, np.int64)
    locs: list[tuple[Path, int, str]] = []
    for batch in pf.iter_batches(batch_size=BATCH, columns=["id", "source", "shard", "row", "n_bytes"]):
        d = batch.to_pydict()
        keys = np.concatenate([keys, id_buckets([f"sample{seed}:{i}" for i in d["id"]])])
        sizes = np.concatenate([sizes, np.asarray(d["n_bytes"], np.int64) + 1])  # + the separator
        locs += [(ws.records_dir(src) / shard, row, rid)
                 for rid, src, shard, row in zip(d["id"], d["source"], d["shard"], d["row"])]
        keys, sizes, locs = keep_smallest(keys, sizes, locs, n_bytes)
    for path in dict.fromkeys(loc[0] for loc in locs):
        _existing(path)
    return texts_at(locs, "after the selection was made", "run `mira score` and `mira select` again")

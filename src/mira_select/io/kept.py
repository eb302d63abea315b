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
from .shards import rows_at

KEPT_SCHEMA = pa.schema([("id", pa.string()), ("source", pa.string()), ("shard", pa.string()),
                         ("row", pa.int32()), ("score", pa.float32()), ("n_tokens", pa.int32()),
                         ("n_bytes", pa.int32())])
BATCH = 65_536
RUN = 2_048  # kept rows read from a record shard at once (the row groups holding them are decoded)


def kept_path(ws: Workspace, variant: str) -> Path:
    return ws.root / "selection" / variant / "kept.parquet"


def _open(ws: Workspace, variant: str) -> pq.ParquetFile:
    path = kept_path(ws, variant)
    if not path.exists():
        raise MiraError(f"no selection {variant!r} in {ws.root}; run `mira select --variant {variant}` first")
    pf = pq.ParquetFile(path)
    missing = {"shard", "row"} - set(pf.schema_arrow.names)
    if missing:
        raise MiraError(f"{path} was written by an older mira-select (no record locations); run "
                        f"`mira select --variant {variant}` again")
    return pf


def _read_rows(ws: Workspace, source: str, shard: str, rows: list[int], ids: list[str],
               columns: list[str]) -> pa.Table:
    path = ws.records_dir(source) / shard
    if not path.exists():
        raise MiraError(f"selection refers to {path}, which no longer exists; run `mira select` again")
    table = rows_at(path, rows, ["id", *[c for c in columns if c != "id"]])
    if table.column("id").to_pylist() != ids:
        raise MiraError(f"{path} changed after the selection was made (ids differ at the kept rows); run "
                        "`mira score` and `mira select` again")
    return table


def iter_kept_records(ws: Workspace, variant: str, columns: list[str]) -> Iterator[pa.Table]:
    """The kept records' ``columns`` (record-shard columns), in selection order, at most ``RUN`` rows of one record
    shard at a time: memory holds one batch of locations plus those rows, whatever the size of the selection."""
    pf = _open(ws, variant)
    run_key: tuple[str, str] | None = None
    rows: list[int] = []
    ids: list[str] = []
    for batch in pf.iter_batches(batch_size=BATCH, columns=["id", "source", "shard", "row"]):
        d = batch.to_pydict()
        for rid, source, shard, row in zip(d["id"], d["source"], d["shard"], d["row"]):
            if (source, shard) != run_key or len(rows) >= RUN:  # a long run is read in pieces: memory is per piece
                if rows:
                    yield _read_rows(ws, run_key[0], run_key[1], rows, ids, columns)
                run_key, rows, ids = (source, shard), [], []
            rows.append(row)
            ids.append(rid)
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
    locs: list[tuple[str, str, int, str]] = []
    for batch in pf.iter_batches(batch_size=BATCH, columns=["id", "source", "shard", "row", "n_bytes"]):
        d = batch.to_pydict()
        keys = np.concatenate([keys, id_buckets([f"sample{seed}:{i}" for i in d["id"]])])
        sizes = np.concatenate([sizes, np.asarray(d["n_bytes"], np.int64) + 1])  # + the separator
        locs += list(zip(d["source"], d["shard"], d["row"], d["id"]))
        order = np.argsort(keys, kind="stable")
        keep = int(np.searchsorted(np.cumsum(sizes[order]), n_bytes)) + 1  # through the record that crosses it
        order = order[:keep]
        keys, sizes, locs = keys[order], sizes[order], [locs[i] for i in order]
    by_shard: dict[tuple[str, str], list[int]] = {}
    for pos, (source, shard, _, _) in enumerate(locs):
        by_shard.setdefault((source, shard), []).append(pos)
    texts: list[str | None] = [None] * len(locs)
    for (source, shard), positions in by_shard.items():
        table = _read_rows(ws, source, shard, [locs[p][2] for p in positions], [locs[p][3] for p in positions],
                           ["text"])
        for p, text in zip(positions, table.column("text").to_pylist()):
            texts[p] = text
    return texts  # type: ignore[return-value]

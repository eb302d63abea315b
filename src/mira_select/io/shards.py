"""Parquet shard writing: zstd-compressed, streamed in row groups, atomically renamed into place when closed.

Every stage that writes row data (records, scores, labels) uses this one writer, so they share compression,
row-group sizing and the guarantee that a shard on disk is always complete.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import pyarrow.parquet as pq

from ..workspace import atomic_path

COMPRESSION = "zstd"


@contextlib.contextmanager
def shard_writer(path: Path, schema: pa.Schema, file_metadata: dict[str, str] | None = None
                 ) -> Iterator["ShardWriter"]:
    """Open a shard for streaming writes; it appears at ``path`` only if the block finishes without error.

    ``file_metadata`` goes into the Parquet footer (not the Arrow schema, so tables read from shards with and
    without it still concatenate): a state that must change together with the rows, in the same atomic rename.
    """
    with atomic_path(path) as tmp:
        writer = pq.ParquetWriter(tmp, schema, compression=COMPRESSION, compression_level=3)
        try:
            yield ShardWriter(writer, schema)
            if file_metadata:
                writer.add_key_value_metadata(file_metadata)
        finally:
            writer.close()


def footer_value(path: Path, key: str) -> str | None:
    """A value written with ``shard_writer(..., file_metadata=...)`` (reads only the footer)."""
    value = (pq.ParquetFile(path).metadata.metadata or {}).get(key.encode())
    return None if value is None else value.decode()


class ShardWriter:
    def __init__(self, writer: pq.ParquetWriter, schema: pa.Schema):
        self._writer = writer
        self.schema = schema
        self.rows = 0

    def write_rows(self, columns: dict[str, list[Any]]) -> None:
        table = pa.Table.from_pydict(columns, schema=self.schema)
        if table.num_rows:
            self._writer.write_table(table)
            self.rows += table.num_rows

    def write_table(self, table: pa.Table) -> None:
        if table.num_rows:
            self._writer.write_table(table.cast(self.schema))
            self.rows += table.num_rows


def write_table(path: Path, table: pa.Table) -> None:
    """Write a whole (small) table as one shard."""
    with shard_writer(path, table.schema) as w:
        w.write_table(table)


TEXT_BATCH_CHARS = 1 << 20
_READ_ROWS = 64


def text_batches(path: Path, columns: list[str], max_chars: int = TEXT_BATCH_CHARS) -> Iterator[pa.Table]:
    """A record shard's ``columns`` in order, as tables of about ``max_chars`` characters of ``text`` each.

    Batches are cut by characters, not rows: a 2,048-row batch of agent trajectories holds 30x the text of one of
    tldr pages, so a row count bounds nothing; with a character budget the memory of every text reader is the same
    on a small corpus and a large one. Rows are read 64 at a time (one longer record ends a batch early)."""
    pending: list[pa.RecordBatch] = []
    size = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=_READ_ROWS, columns=columns):
        pending.append(batch)
        size += int(pa.compute.sum(pa.compute.utf8_length(batch.column("text"))).as_py() or 0)
        if size >= max_chars:
            yield pa.Table.from_batches(pending)
            pending, size = [], 0
    if pending:
        yield pa.Table.from_batches(pending)


def read_columns(path: Path, columns: list[str]) -> pa.Table:
    return pq.read_table(path, columns=columns)


def rows_at(path: Path, rows: list[int], columns: list[str]) -> pa.Table:
    """The rows at these positions (in the order given), decoding only the row groups that hold one: a sample or
    a labeled set reads a few texts out of a shard without decoding the rest."""
    pf = pq.ParquetFile(path)
    starts = [0]
    for g in range(pf.num_row_groups):
        starts.append(starts[-1] + pf.metadata.row_group(g).num_rows)
    wanted = sorted(set(rows))
    parts, order = [], {}
    for g in range(pf.num_row_groups):
        inside = [r for r in wanted if starts[g] <= r < starts[g + 1]]
        if inside:
            parts.append(pf.read_row_group(g, columns=columns).take([r - starts[g] for r in inside]))
            order.update((r, len(order)) for r in inside)
    if not parts:
        return pf.schema_arrow.empty_table().select(columns)
    table = pa.concat_tables(parts)
    return table.take([order[r] for r in rows])


def checked_rows(path: Path, rows: list[int], ids: list[str], columns: list[str], when: str, remedy: str) -> pa.Table:
    """:func:`rows_at` (with ``id``), checked against the ids expected there: a shard rewritten since the rows were
    located is an error naming it (``when``: since what; ``remedy``: what to run), never another record's values."""
    from ..errors import MiraError

    table = rows_at(path, rows, ["id", *[c for c in columns if c != "id"]])
    if table.column("id").to_pylist() != ids:
        raise MiraError(f"{path} changed {when} (ids differ at the rows read); {remedy}")
    return table


def rows_with_ids(path: Path, ids: pa.Array, columns: list[str]) -> pa.Table:
    """The rows whose id is in ``ids`` (one pass over the id column, then :func:`rows_at`)."""
    import numpy as np
    import pyarrow.compute as pc

    hit = pc.is_in(pq.read_table(path, columns=["id"]).column("id"), value_set=ids)
    return rows_at(path, np.flatnonzero(hit.to_numpy(zero_copy_only=False)).tolist(), columns)


def read_sidecar_column(path: Path, shard: Path, ids: list[str], column: str, remedy: str):
    """One column of a sidecar (scores, prefilter decisions), checked row by row against its record shard's ids:
    a sidecar written for another version of the shard is an error naming it, never a wrong value."""
    return read_sidecar_columns(path, shard, ids, [column], remedy)[column]


def read_sidecar_columns(path: Path, shard: Path, ids: list[str], columns: list[str], remedy: str) -> dict:
    """Several columns of a sidecar in one read, checked like `read_sidecar_column`."""
    from ..errors import MiraError

    names = pq.read_schema(path).names
    for column in columns:
        if column not in names:
            raise MiraError(f"{path} has no column {column!r} (written by an older version): run `{remedy}` again")
    t = pq.read_table(path, columns=["id", *columns])
    if t.column("id").to_pylist() != ids:
        raise MiraError(f"{path} does not match its record shard {shard} (ids differ; the records changed after "
                        f"it was written): run `{remedy}` again")
    return {c: t.column(c).to_numpy(zero_copy_only=False) for c in columns}

"""Repeated ids within a source, found by merging small sorted runs instead of remembering every id.

Each ingest unit writes beside its shard a *run*: ``(hash, line, row, id)`` of every valid record, sorted by a 64-bit
hash of the id (:class:`RunWriter`). Finalize (:func:`find_repeats`) reads only the hash column of every run of the
source (8 bytes a record, fixed width — no Python object per id), sorts their concatenation once (n log n) to find the
hash values that occur more than once, and then reads id, line and row of just those entries. Equal hashes are only
candidates: entries are grouped by their real id string, so two different ids that share a hash stay apart.

:func:`decide` turns the repeats into per-shard :class:`Decision` s that reproduce one sequential pass over the source
in (file, line) order, as ingest did before units existed:
- ``quarantine``: the first occurrence in the source is kept. A repeat inside the same file is quarantined as
  ``duplicate id 'x' (first at line N)`` (N: its first line in *that* file), the first occurrence in a later file as
  ``duplicate id 'x' (first in <file>)``.
- ``rename``: a repeat inside a file becomes ``x#line<n>``; then the first occurrence of an id (as renamed so far)
  that an earlier file already has becomes ``x#<file>:<line>``. One difference from the old sequential pass, for
  inputs that contain generated-looking ids: an input id that equals another record's generated name (e.g. a
  literal ``x#line2``) is not compared with generated names.

Only the runs are re-read when a file changes; a shard is rewritten only when its decision changes
(:func:`apply`), and the decision's digest travels in the shard's footer, in the same atomic rename as its rows.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from ..io.shards import footer_value, shard_writer, write_table

FOOTER_KEY = "mira.ingest.dedup"  # digest of the Decision applied to a shard; absent: the shard is as its unit wrote it
RUN_SCHEMA = pa.schema([("hash", pa.uint64()), ("line", pa.int64()), ("row", pa.int64()), ("id", pa.string())])


def id_hashes(ids: list[str]) -> np.ndarray:
    def h(x: str) -> int:
        return int.from_bytes(hashlib.blake2b(x.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")

    return np.fromiter((h(x) for x in ids), dtype=np.uint64, count=len(ids))


class RunWriter:
    """Collects a unit's (hash, line, id) per written batch — numpy and Arrow arrays, not Python objects — and
    writes them sorted by hash; ``row`` is the record's position in the unit's shard."""

    def __init__(self):
        self.hashes: list[np.ndarray] = []
        self.lines: list[np.ndarray] = []
        self.ids: list[pa.Array] = []

    def add(self, ids: list[str], lines: list[int]) -> None:
        self.hashes.append(id_hashes(ids))
        self.lines.append(np.asarray(lines, dtype=np.int64))
        self.ids.append(pa.array(ids, pa.string()))

    def write(self, path: Path) -> None:
        h = np.concatenate(self.hashes) if self.hashes else np.empty(0, np.uint64)
        order = np.argsort(h, kind="stable")
        table = pa.table({
            "hash": h[order],
            "line": (np.concatenate(self.lines) if self.lines else np.empty(0, np.int64))[order],
            "row": order.astype(np.int64),
            "id": pa.concat_arrays(self.ids).take(order) if self.ids else pa.array([], pa.string()),
        }, schema=RUN_SCHEMA)
        write_table(path, table)


@dataclass(frozen=True)
class RunRef:
    file_index: int
    file_name: str
    stem: str
    path: Path


@dataclass(frozen=True)
class Entry:
    file_index: int
    line: int
    stem: str
    row: int
    id: str


def find_repeats(runs: list[RunRef]) -> list[Entry]:
    """Every entry whose id hash occurs more than once in the runs (memory: two uint64 arrays of the source)."""
    hashes = [pq.read_table(r.path, columns=["hash"]).column(0).to_numpy() for r in runs]
    if not hashes:
        return []
    every = np.sort(np.concatenate(hashes))
    repeated = np.unique(every[1:][every[1:] == every[:-1]])
    del every
    out: list[Entry] = []
    if not len(repeated):
        return out
    for run, h in zip(runs, hashes):
        rows = np.flatnonzero(np.isin(h, repeated))
        if len(rows):
            t = pq.read_table(run.path, columns=["line", "row", "id"]).take(rows)
            out.extend(Entry(run.file_index, line, run.stem, row, rid) for line, row, rid in
                       zip(*(t.column(c).to_pylist() for c in ("line", "row", "id"))))
    return out


@dataclass
class Decision:
    """What finalize does to one shard: rows that leave as duplicates, rows that get a new id."""

    drops: dict[int, tuple[int, str, bool]] = field(default_factory=dict)  # row -> (line, reason, of an earlier file)
    renames: dict[int, str] = field(default_factory=dict)  # row -> new id

    def digest(self) -> str:
        data = orjson.dumps([sorted(self.drops.items()), sorted(self.renames.items())])
        return hashlib.sha256(data).hexdigest()[:16]

    def quarantine_rows(self, file_name: str, raws: dict[int, str]) -> tuple[list[bytes], list[bytes]]:
        """(repeats of an earlier line of the file, repeats of an earlier file), each in line order, as the quarantine
        rows the sequential pass wrote (same keys in the same order; ``raws``: line -> raw of the former)."""
        within, across = [], []
        for line, reason, earlier_file in sorted(self.drops.values()):
            if earlier_file:
                across.append(orjson.dumps({"file": file_name, "line": line, "raw": "", "reason": reason}))
            else:
                within.append(orjson.dumps({"file": file_name, "line": line, "reason": reason,
                                            "raw": raws.get(line, "")}))
        return within, across

    @property
    def within_lines(self) -> set[int]:
        return {line for line, _, earlier_file in self.drops.values() if not earlier_file}


def decide(entries: list[Entry], file_names: dict[int, str], policy: str) -> dict[str, Decision]:
    """Per shard stem, the decision of one sequential pass in (file, line) order (see the module docstring)."""
    groups: dict[str, list[Entry]] = {}
    for e in entries:
        groups.setdefault(e.id, []).append(e)
    out: dict[str, Decision] = {}

    def at(e: Entry) -> Decision:
        return out.setdefault(e.stem, Decision())

    renamed: dict[Entry, str] = {}
    for rid, group in groups.items():
        if len(group) < 2:
            continue  # a hash collision of two different ids
        group.sort(key=lambda e: (e.file_index, e.line))
        first_line: dict[int, int] = {}
        for e in group:
            first = first_line.setdefault(e.file_index, e.line)
            if first != e.line:  # repeats an earlier line of its own file
                if policy == "quarantine":
                    at(e).drops[e.row] = (e.line, f"duplicate id {rid!r} (first at line {first})", False)
                else:
                    renamed[e] = f"{rid}#line{e.line}"
            elif e.file_index != group[0].file_index and policy == "quarantine":
                at(e).drops[e.row] = (e.line, f"duplicate id {rid!r} (first in {file_names[group[0].file_index]})",
                                      True)
    if policy == "rename":  # across files, on the ids as renamed within each file
        by_name: dict[str, list[Entry]] = {}
        for e in (e for g in groups.values() if len(g) > 1 for e in g):
            by_name.setdefault(renamed.get(e, e.id), []).append(e)
        for name, group in by_name.items():
            first_file = min(e.file_index for e in group)
            for e in group:
                final = f"{name}#{file_names[e.file_index]}:{e.line}" if e.file_index != first_file else name
                if final != e.id:
                    at(e).renames[e.row] = final
    return out


def applied(shard: Path) -> str | None:
    """Digest of the decision already applied to this shard (None: as its unit wrote it)."""
    return footer_value(shard, FOOTER_KEY)


def apply(shard: Path, decision: Decision) -> None:
    """Rewrite the shard without the dropped rows / with the new ids, one row group at a time, atomically."""
    pf = pq.ParquetFile(shard)
    schema = pf.schema_arrow
    id_col = schema.get_field_index("id")
    keep = np.ones(pf.metadata.num_rows, dtype=bool)
    keep[np.fromiter(decision.drops, dtype=np.int64, count=len(decision.drops))] = False
    with shard_writer(shard, schema, {FOOTER_KEY: decision.digest()}) as w:
        offset = 0
        for g in range(pf.num_row_groups):
            batch = pf.read_row_group(g)
            end = offset + batch.num_rows
            here = {r - offset: new for r, new in decision.renames.items() if offset <= r < end}
            if here:
                ids = batch.column(id_col).to_pylist()
                for r, new in here.items():
                    ids[r] = new
                batch = batch.set_column(id_col, "id", pa.array(ids, pa.string()))
            w.write_table(batch.filter(pa.array(keep[offset:end])))
            offset = end

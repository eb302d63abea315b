"""Units smaller than files: where a large input may be cut so several workers ingest it at once.

A record id made from its position (``<source>/<file>/<line>``) and every quarantine row use the line number within
the *whole* file, so a unit that starts mid-file must know how many lines come before it. That number comes from the
same single streaming pass that hashes the file for freshness (:func:`scan`), so a split costs no extra read.

What splits, and why:
- uncompressed JSONL: line-aligned byte ranges of about ``unit_bytes`` (a cut always follows a ``\\n``, so a range
  starts on a line of its own; the line count before each cut is counted in the digest pass);
- Parquet: whole row groups, several per unit up to ``unit_bytes`` of compressed column data (the footer says where
  they are; row numbers before a unit are the sum of the earlier groups' rows);
- everything else stays whole: JSON-array files (one JSON value cannot be cut), Arrow files, remote files (a digest
  pass would download them), and compressed JSONL. Compressed files stay whole on purpose: a zstd file made of
  several frames can be cut at a frame start without decompressing (frame and block headers carry their sizes),
  but the line number at that cut is only known after decompressing every earlier frame — a second full
  decompression in the planning pass — and the common multi-frame writers (``zstd -T``, ``pzstd``) end frames
  mid-line, where no unit could start. gzip, bz2 and xz have no cheap entry points at all.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

from .compression import codec_of

CHUNK = 8 << 20  # bytes read per step of the digest pass
DEFAULT_UNIT_BYTES = 256 << 20


@dataclass(frozen=True)
class Split:
    """One unit's share of an input file. The default is the whole file."""

    first_line: int = 0  # lines (JSONL) or rows (Parquet) of the file before this unit: its first is first_line + 1
    start: int = 0  # JSONL range: first byte
    end: int | None = None  # JSONL range: one past the last byte; None = to the end of the file
    row_groups: tuple[int, ...] | None = None  # Parquet: this unit's row groups; None = all
    size: int = 0  # input bytes this unit covers (progress and scheduling only)

    @property
    def whole(self) -> bool:
        return self.start == 0 and self.end is None and self.row_groups is None

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "Split":
        rg = d.get("row_groups")
        return cls(**{**d, "row_groups": tuple(rg) if rg is not None else None})


def unit_stem(file_index: int, unit_index: int, n_units: int) -> str:
    """Shard name of a unit: ``part-NNNNN`` for an unsplit file (as before units existed), ``part-NNNNN-UUUUU``
    for the units of a split one. Both sort in (file, unit) order, so reading shards by name keeps file order."""
    return f"part-{file_index:05d}" if n_units == 1 else f"part-{file_index:05d}-{unit_index:05d}"


def splittable(kind: str, url: str) -> bool:
    """Whether :func:`scan` may cut this file (local plain JSONL or local Parquet)."""
    local = "://" not in url or url.startswith("file://")
    return local and ((kind == "jsonl" and codec_of(url) is None) or kind == "parquet")


def scan(path: Path, kind: str, unit_bytes: int) -> tuple[str, list[Split]]:
    """One read of a local file -> (content digest, equal to ``workspace.file_digest``; its units in order)."""
    size = path.stat().st_size
    if kind == "jsonl" and codec_of(str(path)) is None:
        with open(path, "rb") as fh:
            return _scan_jsonl(fh, size, unit_bytes)
    with open(path, "rb") as fh:
        digest = _sha(fh)
    if kind == "parquet" and size > unit_bytes:
        return digest, parquet_splits(path, unit_bytes)
    return digest, [Split(size=size)]


def _sha(fh: BinaryIO) -> str:
    h = hashlib.sha256()
    for chunk in iter(lambda: fh.read(CHUNK), b""):
        h.update(chunk)
    return h.hexdigest()[:16]


def _scan_jsonl(fh: BinaryIO, size: int, unit_bytes: int) -> tuple[str, list[Split]]:
    """Digest + cuts: a cut follows the first ``\\n`` at or after ``unit_bytes`` past the previous cut.

    Newlines are counted with ``bytes.count`` (C speed) only up to each cut and once per chunk, so the pass costs
    about what hashing alone does. A file whose first byte is ``[`` is a JSON array (read whole by the reader).
    """
    h = hashlib.sha256()
    cuts: list[tuple[int, int]] = []  # (byte offset, lines before it)
    offset = lines = 0
    target = unit_bytes
    first = b""
    while True:
        chunk = fh.read(CHUNK)
        if not chunk:
            break
        h.update(chunk)
        if offset == 0:
            first = chunk[:1]
        counted = 0  # newlines of this chunk before `counted` are in `lines`
        while size > unit_bytes and first != b"[" and target - 1 - offset < len(chunk):
            nl = chunk.find(b"\n", max(target - 1 - offset, 0))
            if nl < 0:
                break
            lines += chunk.count(b"\n", counted, nl + 1)
            counted = nl + 1
            if offset + counted >= size:
                break  # a cut at the end of the file would make an empty unit
            cuts.append((offset + counted, lines))
            target = offset + counted + unit_bytes
        lines += chunk.count(b"\n", counted) if size > unit_bytes else 0
        offset += len(chunk)
    digest = h.hexdigest()[:16]
    if not cuts:
        return digest, [Split(size=size)]
    bounds = [(0, 0), *cuts, (size, None)]
    return digest, [Split(first_line=bounds[i][1], start=bounds[i][0], end=bounds[i + 1][0],
                          size=bounds[i + 1][0] - bounds[i][0]) for i in range(len(bounds) - 1)]


def parquet_splits(path: Path, unit_bytes: int) -> list[Split]:
    """Consecutive row groups up to ``unit_bytes`` of compressed data per unit (a group is never cut). A file whose
    footer cannot be read stays whole: reading it then reports the error with the file name."""
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path).metadata
    except Exception:  # pyarrow raises ArrowInvalid / OSError for non-Parquet bytes
        return [Split(size=path.stat().st_size)]
    units: list[Split] = []
    groups: list[int] = []
    rows = before = nbytes = 0
    for g in range(meta.num_row_groups):
        rg = meta.row_group(g)
        size = sum(rg.column(c).total_compressed_size for c in range(rg.num_columns))
        if groups and nbytes + size > unit_bytes:
            units.append(Split(first_line=before, row_groups=tuple(groups), size=nbytes))
            groups, before, nbytes = [], rows, 0
        groups.append(g)
        rows += rg.num_rows
        nbytes += size
    if len(units) == 0:
        return [Split(size=path.stat().st_size)]
    units.append(Split(first_line=before, row_groups=tuple(groups), size=nbytes))
    return units


class RangeReader(io.RawIOBase):
    """``length`` bytes of a seekable file from its current position, then EOF: a JSONL unit reads its range with
    the same line reader as a whole file, and cannot run into the next unit's lines."""

    def __init__(self, fh: BinaryIO, length: int):
        self._fh = fh
        self._left = length

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:  # type: ignore[override]
        if self._left <= 0:
            return 0
        data = self._fh.read(min(len(buf), self._left))
        n = len(data)
        buf[:n] = data
        self._left -= n
        return n

"""Streaming readers: every input file becomes an iterator of :class:`RawItem`, one per line or row.

Readers never decide what is a good record; they only report what they could parse. A line that is not JSON,
not UTF-8, not an object, or too large comes back as a ``RawItem`` with ``error`` set, so the ingest stage can
quarantine it with its file and line. Memory stays flat: lines are read with a size limit, Parquet and Arrow in
record batches.
"""

from __future__ import annotations

import io
import posixpath
from dataclasses import dataclass
from typing import Any, Iterator

import fsspec
import orjson

from ..errors import MiraError
from .compression import decompression_errors, open_decompressed
from .splits import RangeReader, Split

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
COMPRESSION_SUFFIXES = ("", ".gz", ".zst", ".zstd", ".bz2", ".xz")
PARQUET_SUFFIXES = (".parquet", ".pq")
GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class InputFile:
    url: str  # what fsspec opens (local path or URL)
    name: str  # short, stable name used in ids and quarantine rows (relative to the source's common root)
    kind: str  # jsonl | parquet | hf
    size: int


@dataclass(slots=True)
class RawItem:
    line: int  # 1-based line (JSONL) or row (Parquet/Arrow) number
    row: dict[str, Any] | None
    raw: bytes | None = None  # the undecoded line, kept only when it must be quarantined
    error: str | None = None
    blank: bool = False


def kind_of(path: str) -> str | None:
    lower = path.lower()
    for comp in COMPRESSION_SUFFIXES:
        if any(lower.endswith(s + comp) for s in JSONL_SUFFIXES):
            return "jsonl"
    if lower.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if lower.endswith(".arrow"):
        return "hf"
    return None


def expand_paths(patterns: list[str], base_dir: str, reader: str = "auto") -> list[InputFile]:
    """Resolve globs, directories and URLs to a sorted, de-duplicated list of input files.

    A directory written by ``datasets.save_to_disk`` (it holds ``state.json``) is read as its Arrow files; any
    other directory is searched recursively for files with a known suffix.
    """
    found: dict[str, InputFile] = {}
    for pattern in patterns:
        url = pattern if "://" in pattern else _local(pattern, base_dir)
        fs, path = fsspec.core.url_to_fs(url)
        has_glob = bool(GLOB_CHARS & set(path))
        matches = sorted(fs.glob(path)) if has_glob else ([path] if fs.exists(path) else [])
        if not matches:
            raise MiraError(f"input path {pattern!r} matches no file (resolved to {url})")
        # Names are relative to what the user wrote (the directory, or the glob's fixed prefix), so ids built
        # from them stay the same when other files are added to the source.
        if has_glob:
            root = posixpath.dirname(path[: min(path.index(c) for c in GLOB_CHARS if c in path)])
        else:
            root = path if fs.isdir(path) else posixpath.dirname(path)
        for m in matches:
            for f, kind in _files_under(fs, m, reader):
                info = fs.info(f)
                found[f] = InputFile(url=fs.unstrip_protocol(f) if "://" in url else f,
                                     name=posixpath.relpath(f, root) if root else f,
                                     kind=kind, size=int(info.get("size") or 0))
    if not found:
        raise MiraError(f"input paths {patterns} contain no readable files (.jsonl[.gz|.zst], .parquet, HF dataset dir)")
    return [found[p] for p in sorted(found)]


def _local(pattern: str, base_dir: str) -> str:
    import os

    p = os.path.expanduser(pattern)
    return p if os.path.isabs(p) else os.path.normpath(os.path.join(base_dir, p))


def _files_under(fs, path: str, reader: str) -> list[tuple[str, str]]:
    if not fs.isdir(path):
        kind = reader if reader != "auto" else kind_of(path)
        if kind is None:
            raise MiraError(f"{path}: unknown file type; name it .jsonl/.jsonl.gz/.jsonl.zst/.parquet or set `reader:`")
        return [(path, kind)]
    if fs.exists(posixpath.join(path, "state.json")):  # datasets.save_to_disk output
        state = orjson.loads(fs.cat_file(posixpath.join(path, "state.json")))
        return [(posixpath.join(path, d["filename"]), "hf") for d in state.get("_data_files", [])]
    out = []
    for f in sorted(fs.find(path)):
        kind = reader if reader != "auto" else kind_of(f)
        if kind is not None and not posixpath.basename(f).startswith("."):
            out.append((f, kind))
    return out


def read_items(f: InputFile, max_line_bytes: int, split: Split | None = None) -> Iterator[RawItem]:
    """The items of a file, or of one unit of it (``split``): numbers are always the line/row within the whole file."""
    split = split or Split()
    if f.kind == "jsonl":
        yield from _read_jsonl(f, max_line_bytes, split)
    elif f.kind == "parquet":
        yield from _read_parquet(f, split)
    elif f.kind == "hf":
        yield from _read_arrow_stream(f)
    else:  # pragma: no cover - kinds come from kind_of / config literal
        raise MiraError(f"{f.url}: unsupported reader {f.kind!r}")


def _read_jsonl(f: InputFile, max_line_bytes: int, split: Split) -> Iterator[RawItem]:
    with fsspec.open(f.url, "rb") as raw:
        if split.whole:
            fh = open_decompressed(raw, f.url)
        else:  # a line-aligned byte range of a plain file (io/splits.py)
            raw.seek(split.start)
            fh = io.BufferedReader(RangeReader(raw, split.end - split.start), buffer_size=1 << 20)
        try:
            yield from _jsonl_lines(fh, max_line_bytes, split.first_line, array_ok=split.start == 0)
        except decompression_errors() as exc:
            # Everything from here to the end of the file is unreadable: one quarantine row says so.
            yield RawItem(line=-1, row=None, error=f"unreadable rest of file: {exc}")


def _jsonl_lines(fh, max_line_bytes: int, line_no: int = 0, array_ok: bool = True) -> Iterator[RawItem]:
    first = fh.peek(1)[:1]
    if first == b"[" and array_ok:  # a JSON array file (not JSONL): not streamable, read whole
        data = fh.read()
        try:
            rows = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            yield RawItem(line=1, row=None, raw=data[:4096], error=f"invalid JSON array: {exc}")
            return
        for i, row in enumerate(rows, 1):
            if isinstance(row, dict):
                yield RawItem(line=i, row=row)
            else:
                yield RawItem(line=i, row=None, raw=orjson.dumps(row)[:4096], error=f"array item is a {type(row).__name__}, not an object")
        return
    limit = max_line_bytes + 1
    while True:
        line = fh.readline(limit)
        if not line:
            return
        line_no += 1
        if len(line) >= limit and not line.endswith(b"\n"):
            total, head = len(line), line[:4096]
            while True:  # skip the rest of the oversized line without holding it
                more = fh.readline(limit)
                total += len(more)
                if not more or more.endswith(b"\n"):
                    break
            yield RawItem(line=line_no, row=None, raw=head, error=f"line too large ({total:,} bytes > {max_line_bytes:,})")
            continue
        stripped = line.strip()
        if not stripped:
            yield RawItem(line=line_no, row=None, blank=True)
            continue
        try:
            stripped.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield RawItem(line=line_no, row=None, raw=line, error=f"invalid UTF-8 at byte {exc.start}")
            continue
        try:
            row = orjson.loads(stripped)
        except orjson.JSONDecodeError as exc:
            yield RawItem(line=line_no, row=None, raw=line, error=f"invalid JSON: {exc}")
            continue
        if not isinstance(row, dict):
            yield RawItem(line=line_no, row=None, raw=line, error=f"line is a JSON {type(row).__name__}, not an object")
            continue
        yield RawItem(line=line_no, row=row)


def _read_parquet(f: InputFile, split: Split, batch_size: int = 1024) -> Iterator[RawItem]:
    import pyarrow.parquet as pq

    with fsspec.open(f.url, "rb") as fh:
        try:
            pf = pq.ParquetFile(fh)
        except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for non-parquet bytes
            yield RawItem(line=-1, row=None, error=f"not a readable Parquet file: {exc}")
            return
        groups = list(split.row_groups) if split.row_groups is not None else None
        yield from _rows(pf.iter_batches(batch_size=batch_size, row_groups=groups), split.first_line)


def _read_arrow_stream(f: InputFile) -> Iterator[RawItem]:
    import pyarrow as pa

    with fsspec.open(f.url, "rb") as fh:
        try:
            reader = pa.ipc.open_stream(fh)
        except pa.ArrowInvalid:
            fh.seek(0)
            reader = pa.ipc.open_file(fh)
            batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
        else:
            batches = iter(reader)
        yield from _rows(batches)


def _rows(batches, n: int = 0) -> Iterator[RawItem]:
    try:
        for batch in batches:
            for row in batch.to_pylist():
                n += 1
                yield RawItem(line=n, row=row)
    except (OSError, ValueError) as exc:  # a cut Parquet/Arrow file fails mid-way
        yield RawItem(line=-1, row=None, error=f"unreadable rest of file after row {n}: {exc}")

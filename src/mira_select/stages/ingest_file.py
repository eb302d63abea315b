"""Ingest one unit — a whole input file or a part of one (io/splits.py) — into one record shard, in any process.

Per line: parse → drop excluded fields → find the text (or render it from structure) → id (given or
``<source>/<file>/<line>``, the line within the whole file) → format → buffer; every full buffer is tokenized in one
batch and written as a row group. Rejected lines go to a per-unit quarantine part with their line and reason; nothing
is silently dropped: blank lines are the only "dropped" input, and they are counted.

A unit does not look for repeated ids: it cannot see the other units of its file or source, and a dict of every id
it has seen would grow with the input. It writes every valid record, and beside the shard a *run* of its ids sorted
by hash (stages/ingest_dedup.py); the source's finalize pass merges the runs and removes duplicates exactly as one
sequential pass over the source would.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ..config import IngestConfig, SourceConfig
from ..io.readers import InputFile, RawItem, read_items
from ..io.shards import shard_writer
from ..io.splits import Split
from ..ledger import Ledger, Unit
from ..records import RECORD_SCHEMA, detect_format, drop_path, get_path, render_text
from ..tokens import get_counter
from ..workspace import Counts, Workspace, atomic_path
from .ingest_dedup import RunWriter

STAGE = "ingest"


@dataclass(frozen=True)
class UnitTask:
    """Everything a worker needs, picklable: no open handles, no config object graph beyond pydantic models."""

    ws_root: str
    source: SourceConfig
    ingest: IngestConfig
    tokenizer: str
    file: InputFile
    file_index: int
    split: Split
    stem: str  # shard name: part-NNNNN (whole file) or part-NNNNN-UUUUU (unit UUUUU of a split file)
    unit: Unit  # named inputs: the source and ingest config, the tokenizer, the file's content, the split

    @property
    def key(self) -> str:
        return f"{self.source.name}/{self.stem}"

    def shard(self, ws: Workspace) -> Path:
        return ws.records_dir(self.source.name) / f"{self.stem}.parquet"

    def part(self, ws: Workspace, kind: str) -> Path:
        """A scratch file of this unit: quarantine.jsonl, ids.parquet (its run), dups.jsonl / xdups.jsonl (the
        duplicates finalize removed from its shard: of an earlier line of the same file / of an earlier file)."""
        return ws.work_dir(STAGE, self.source.name, f"{self.stem}.{kind}")


@dataclass
class UnitResult:
    key: str
    counts: Counts
    skipped: bool = False
    info: dict[str, Any] = field(default_factory=dict)


class _Quarantine:
    def __init__(self, file_name: str, raw_chars: int):
        self.rows: list[bytes] = []
        self.reasons: collections.Counter[str] = collections.Counter()
        self._file = file_name
        self._raw_chars = raw_chars

    def add(self, line: int, reason: str, raw: bytes | str | None) -> None:
        if isinstance(raw, bytes):
            raw = raw[: self._raw_chars * 4].decode("utf-8", errors="replace")
        raw = (raw or "")[: self._raw_chars]
        self.rows.append(orjson.dumps({"file": self._file, "line": line, "reason": reason, "raw": raw}))
        self.reasons[reason.split(" (")[0].split(":")[0]] += 1


class _Buffer:
    """Records waiting to be tokenized and written as one row group."""

    def __init__(self):
        self.cols: dict[str, list[Any]] = {name: [] for name in RECORD_SCHEMA.names}
        self.chars = 0

    def __len__(self) -> int:
        return len(self.cols["id"])

    def flush(self, writer, counter, run: RunWriter) -> tuple[int, int]:
        if not len(self):
            return 0, 0
        self.cols["n_tokens"] = counter.count(self.cols["text"])
        writer.write_rows(self.cols)
        run.add(self.cols["id"], self.cols["line"])
        tokens, nbytes = sum(self.cols["n_tokens"]), sum(self.cols["n_bytes"])
        self.cols = {name: [] for name in RECORD_SCHEMA.names}
        self.chars = 0
        return tokens, nbytes


def ingest_unit(task: UnitTask, force: bool = False) -> UnitResult:
    """Run one unit (skipped when its marker is current, unless ``force``): shard, quarantine part, run, marker."""
    ws = Workspace(task.ws_root)
    ledger = Ledger(ws)
    src, cfg = task.source, task.ingest
    if not force and ledger.is_current(task.unit):
        marker = ledger.info(STAGE, task.key)
        return UnitResult(task.key, Counts.from_dict(marker["counts"]), skipped=True, info=marker)

    counter = get_counter(task.tokenizer)
    excluded = list(cfg.exclude_fields) + list(src.exclude_fields)
    counts = Counts()
    dropped: collections.Counter[str] = collections.Counter()
    formats: collections.Counter[str] = collections.Counter()
    quarantine = _Quarantine(task.file.name, cfg.quarantine_raw_chars)
    run = RunWriter()
    ids_assigned = tokens = nbytes = 0
    buf = _Buffer()

    shard = task.shard(ws)
    with shard_writer(shard, RECORD_SCHEMA) as writer:
        for item in read_items(task.file, max_line_bytes(cfg), task.split):
            counts.n_in += 1
            if item.blank:
                counts.dropped += 1
                dropped["blank line"] += 1
                continue
            rec = _to_record(item, task, excluded, quarantine)
            if rec is None:
                counts.quarantined += 1
                continue
            ids_assigned += rec.pop("_assigned")
            formats[rec["format"]] += 1
            for name, value in rec.items():
                buf.cols[name].append(value)
            buf.chars += len(rec["text"]) + len(rec["meta"])
            counts.kept += 1
            if len(buf) >= cfg.row_group_records or buf.chars >= cfg.row_group_chars:
                t, b = buf.flush(writer, counter, run)
                tokens, nbytes = tokens + t, nbytes + b
        t, b = buf.flush(writer, counter, run)
        tokens, nbytes = tokens + t, nbytes + b
    for kind in ("dups.jsonl", "xdups.jsonl"):  # what finalize removed from the shard just replaced (not before:
        task.part(ws, kind).unlink(missing_ok=True)  # a kill in between would leave that shard without them)

    with atomic_path(task.part(ws, "quarantine.jsonl")) as tmp:
        tmp.write_bytes(b"".join(r + b"\n" for r in quarantine.rows))
    run.write(task.part(ws, "ids.parquet"))
    info = {
        "file": task.file.name,
        "url": task.file.url,
        "split": task.split.to_json(),
        "tokens": tokens,
        "bytes": nbytes,
        "formats": dict(formats),
        "dropped_reasons": dict(dropped),
        "quarantine_reasons": dict(quarantine.reasons),
        "ids_assigned": ids_assigned,
    }
    ledger.record(task.unit, counts, **info)
    return UnitResult(task.key, counts, info={"counts": counts.to_dict(), **info})


def max_line_bytes(cfg: IngestConfig) -> int:
    """A line can be up to ~4 bytes per char of text plus its other fields: read generously, judge the text later."""
    return cfg.max_record_chars * 4 + 1_000_000


def raw_rows(task: UnitTask, lines: set[int]) -> dict[int, str]:
    """The quarantine ``raw`` of some valid lines of this unit, read again from the input.

    Only finalize knows that a record repeats an id of an earlier line in another unit; by then the unit is done
    and its rows are gone. Reading them again costs one pass over just the units that hold such a duplicate (no
    tokenizing), and keeps each quarantine row exactly what a single sequential pass would have written.
    """
    excluded = list(task.ingest.exclude_fields) + list(task.source.exclude_fields)
    out: dict[int, str] = {}
    for item in read_items(task.file, max_line_bytes(task.ingest), task.split):
        if item.line in lines and item.row is not None:
            for path in excluded:
                drop_path(item.row, path)
            out[item.line] = _raw(item.row)[: task.ingest.quarantine_raw_chars]
            if len(out) == len(lines):
                break
    return out


def _to_record(item: RawItem, task: UnitTask, excluded: list[str], q: _Quarantine) -> dict[str, Any] | None:
    """Normalize one parsed line, or quarantine it (returns None) with the reason."""
    src, cfg = task.source, task.ingest
    if item.error is not None or item.row is None:
        q.add(item.line, item.error or "no data", item.raw)
        return None
    row = item.row
    for path in excluded:
        drop_path(row, path)
    text = get_path(row, src.fields.text)
    if text is None:
        text = render_text(row)
        if text is None:
            q.add(item.line, f"missing text field {src.fields.text!r} and no messages/prompt+response to render",
                  _raw(row))
            return None
    if not isinstance(text, str):
        q.add(item.line, f"text field {src.fields.text!r} is a {type(text).__name__}, not a string", _raw(row))
        return None
    if not text.strip():
        q.add(item.line, f"empty text in field {src.fields.text!r}", _raw(row))
        return None
    if len(text) > cfg.max_record_chars:
        q.add(item.line, f"text too long ({len(text):,} chars > max_record_chars {cfg.max_record_chars:,})", text)
        return None
    if "\x00" in text:
        text = text.replace("\x00", "")  # NULs break downstream tokenizers and C string APIs; nothing else changes

    raw_id = get_path(row, src.fields.id) if src.fields.id else None
    assigned = 0
    if isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool) and str(raw_id).strip():
        rid = str(raw_id)
    else:
        rid, assigned = f"{src.name}/{task.file.name}/{item.line}", 1

    fmt = src.format if src.format != "auto" else detect_format(row, text)
    meta = {k: v for k, v in row.items() if k not in (src.fields.text, src.fields.id)}
    return {
        "id": rid,
        "source": src.name,
        "format": fmt,
        "text": text,
        "n_tokens": 0,  # filled per batch
        "n_bytes": len(text.encode("utf-8", errors="surrogatepass")),
        "file": task.file.name,
        "line": item.line,
        "meta": orjson.dumps(meta, option=orjson.OPT_NON_STR_KEYS, default=str).decode(),
        "_assigned": assigned,
    }


def _raw(row: dict[str, Any]) -> str:
    return orjson.dumps(row, option=orjson.OPT_NON_STR_KEYS, default=str).decode(errors="replace")

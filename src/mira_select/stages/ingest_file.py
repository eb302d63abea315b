"""Ingest one input file into one record shard: the unit of work the executor runs, in any process.

Per line: parse → drop excluded fields → find the text (or render it from structure) → id (given or
``<source>/<file>/<line>``) → format → buffer; every full buffer is tokenized in one batch and written as a row
group. Rejected lines go to a per-shard quarantine part with their line and reason; nothing is silently dropped:
blank lines are the only "dropped" input, and they are counted.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ..config import ContaminationConfig, IngestConfig, SourceConfig
from ..io.readers import InputFile, RawItem, read_items
from ..io.shards import shard_writer
from ..ledger import Ledger, Unit
from ..records import RECORD_SCHEMA, detect_format, drop_path, get_path, render_text
from ..tokens import get_counter
from ..workspace import Counts, Workspace, atomic_path

STAGE = "ingest"
ROW_GROUP_CHARS = 32 << 20  # a row group also ends at ~32 MB of text + meta, whatever the record count


@dataclass(frozen=True)
class FileTask:
    """Everything a worker needs, picklable: no open handles, no config object graph beyond pydantic models."""

    ws_root: str
    source: SourceConfig
    ingest: IngestConfig
    tokenizer: str
    file: InputFile
    index: int
    unit: Unit  # named inputs: the source and ingest config, the tokenizer, the file's content

    @property
    def key(self) -> str:
        return f"{self.source.name}/part-{self.index:05d}"


@dataclass
class FileResult:
    key: str
    counts: Counts
    skipped: bool = False
    info: dict[str, Any] = field(default_factory=dict)


def quarantine_part(ws: Workspace, source: str, index: int) -> Path:
    return ws.work_dir(STAGE, source, f"part-{index:05d}.quarantine.jsonl")


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
        self.contaminated = 0

    def __len__(self) -> int:
        return len(self.cols["id"])

    def flush(self, writer, counter, guard) -> tuple[int, int]:
        if not len(self):
            return 0, 0
        self.cols["n_tokens"] = counter.count(self.cols["text"])
        self.cols["contaminated"] = guard(self.cols["text"])
        self.contaminated += sum(self.cols["contaminated"])
        writer.write_rows(self.cols)
        tokens, nbytes = sum(self.cols["n_tokens"]), sum(self.cols["n_bytes"])
        self.cols = {name: [] for name in RECORD_SCHEMA.names}
        self.chars = 0
        return tokens, nbytes


def ingest_file(task: FileTask) -> FileResult:
    ws = Workspace(task.ws_root)
    ledger = Ledger(ws)
    src, cfg = task.source, task.ingest
    if ledger.is_current(task.unit):
        marker = ledger.info(STAGE, task.key)
        return FileResult(task.key, Counts.from_dict(marker["counts"]), skipped=True, info=marker)

    counter = get_counter(task.tokenizer)
    guard = contamination_guard(cfg.contamination)
    excluded = list(cfg.exclude_fields) + list(src.exclude_fields)
    counts = Counts()
    dropped: collections.Counter[str] = collections.Counter()
    formats: collections.Counter[str] = collections.Counter()
    quarantine = _Quarantine(task.file.name, cfg.quarantine_raw_chars)
    seen_ids: dict[str, int] = {}
    ids_assigned = tokens = nbytes = 0
    buf = _Buffer()
    # A line can be up to ~4 bytes per char of text plus its other fields: read generously, judge the text later.
    max_line_bytes = cfg.max_record_chars * 4 + 1_000_000

    with shard_writer(ws.record_shard(src.name, task.index), RECORD_SCHEMA) as writer:
        for item in read_items(task.file, max_line_bytes):
            counts.n_in += 1
            if item.blank:
                counts.dropped += 1
                dropped["blank line"] += 1
                continue
            rec = _to_record(item, task, excluded, seen_ids, quarantine)
            if rec is None:
                counts.quarantined += 1
                continue
            ids_assigned += rec.pop("_assigned")
            formats[rec["format"]] += 1
            for name, value in rec.items():
                buf.cols[name].append(value)
            buf.chars += len(rec["text"]) + len(rec["meta"])
            counts.kept += 1
            if len(buf) >= cfg.row_group_records or buf.chars >= ROW_GROUP_CHARS:
                t, b = buf.flush(writer, counter, guard)
                tokens, nbytes = tokens + t, nbytes + b
        t, b = buf.flush(writer, counter, guard)
        tokens, nbytes = tokens + t, nbytes + b

    with atomic_path(quarantine_part(ws, src.name, task.index)) as tmp:
        tmp.write_bytes(b"".join(r + b"\n" for r in quarantine.rows))
    info = {
        "file": task.file.name,
        "url": task.file.url,
        "tokens": tokens,
        "bytes": nbytes,
        "formats": dict(formats),
        "dropped_reasons": dict(dropped),
        "quarantine_reasons": dict(quarantine.reasons),
        "ids_assigned": ids_assigned,
        "contaminated": buf.contaminated,
    }
    ledger.record(task.unit, counts, **info)
    return FileResult(task.key, counts, info={"counts": counts.to_dict(), **info})


def contamination_guard(cc: ContaminationConfig):
    """texts -> flags; no benchmarks configured means nothing is flagged."""
    if not cc.benchmarks:
        return lambda texts: [False] * len(texts)
    from ..contamination import build_index

    indexes = [build_index(spec, cc.n, cc.min_words, cc.threshold) for spec in cc.benchmarks]

    def flags(texts: list[str]) -> list[bool]:
        out = [False] * len(texts)
        for index in indexes:
            out = [a or b for a, b in zip(out, index.flags(texts))]
        return out

    return flags


def _to_record(
    item: RawItem, task: FileTask, excluded: list[str], seen_ids: dict[str, int], q: _Quarantine
) -> dict[str, Any] | None:
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
    if rid in seen_ids:
        if cfg.on_duplicate_id == "quarantine":
            q.add(item.line, f"duplicate id {rid!r} (first at line {seen_ids[rid]})", _raw(row))
            return None
        rid = f"{rid}#line{item.line}"
    seen_ids[rid] = item.line

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
        "contaminated": False,  # filled per batch
        "_assigned": assigned,
    }


def _raw(row: dict[str, Any]) -> str:
    return orjson.dumps(row, option=orjson.OPT_NON_STR_KEYS, default=str).decode(errors="replace")

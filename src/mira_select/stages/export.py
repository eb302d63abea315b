"""`mira export`: materialize a selection as ``export/<variant>/<source>.jsonl.zst``, one JSON record per line.

Streams the kept records shard by shard (`io.kept`: the selection locates each record, and every read row is
checked against its kept id) and writes each source's file atomically: a killed export leaves either the previous
file or the new one, never half of one. Memory holds one shard's kept rows, whatever the size of the selection.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import orjson
import zstandard

from ..config import MiraConfig
from ..errors import MiraError
from ..io.kept import iter_kept_records
from ..workspace import Workspace, atomic_path

COLUMNS = ["id", "source", "format", "text", "n_tokens", "n_bytes", "file", "line", "meta"]


@dataclass
class ExportResult:
    files: dict[str, int]  # source -> records written


def export_selection(cfg: MiraConfig, variant: str, ws: Workspace | None = None) -> ExportResult:
    ws = ws or Workspace(cfg.workspace_path)
    files: dict[str, int] = {}
    with contextlib.ExitStack() as stack:
        source, writer = None, None
        for table in iter_kept_records(ws, variant, COLUMNS):
            current = table.column("source")[0].as_py()
            if current != source:
                if current in files:
                    raise MiraError(f"selection {variant!r} lists source {current!r} in two places; run "
                                    f"`mira select --variant {variant}` again")
                stack.close()
                source, writer = current, _open(stack, ws, variant, current)
                files[source] = 0
            for row in table.to_pylist():
                row["meta"] = orjson.loads(row["meta"]) if row.get("meta") else {}
                writer.write(orjson.dumps(row) + b"\n")
                files[source] += 1
    for name in cfg.source_names:  # a source with records but nothing kept: an empty file, not a missing one
        if name not in files and ws.record_shards(name):
            with contextlib.ExitStack() as stack:
                _open(stack, ws, variant, name)
            files[name] = 0
    return ExportResult({name: files[name] for name in cfg.source_names if name in files})


def _open(stack: contextlib.ExitStack, ws: Workspace, variant: str, source: str):
    tmp = stack.enter_context(atomic_path(ws.root / "export" / variant / f"{source}.jsonl.zst"))
    raw = stack.enter_context(open(tmp, "wb"))
    return stack.enter_context(zstandard.ZstdCompressor(level=6).stream_writer(raw))


__all__ = ["export_selection", "ExportResult"]

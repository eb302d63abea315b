"""`mira export`: materialize a selection as ``export/<variant>/<source>.jsonl.zst``, one JSON record per line.

Streams record shards beside their score sidecars (row-aligned, so the keep mask needs no id join) and writes each
source's file atomically: a killed export leaves either the previous file or the new one, never half of one.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
import pyarrow.compute as pc
import pyarrow.parquet as pq
import zstandard

from ..config import MiraConfig
from ..errors import MiraError
from ..workspace import Workspace, atomic_path


@dataclass
class ExportResult:
    files: dict[str, int]  # source -> records written


def export_selection(cfg: MiraConfig, variant: str, ws: Workspace | None = None) -> ExportResult:
    ws = ws or Workspace(cfg.workspace_path)
    kept_path = ws.root / "selection" / variant / "kept.parquet"
    if not kept_path.exists():
        raise MiraError(f"no selection {variant!r} in {ws.root}; run `mira select --variant {variant}` first")
    kept = pq.read_table(kept_path, columns=["id", "source"])
    files = {}
    for source in cfg.source_names:
        ids = kept.filter(pc.equal(kept.column("source"), source)).column("id")
        if not ws.record_shards(source):
            continue
        out = ws.root / "export" / variant / f"{source}.jsonl.zst"
        n = 0
        with atomic_path(out) as tmp, open(tmp, "wb") as raw:
            with zstandard.ZstdCompressor(level=6).stream_writer(raw) as zw:
                for shard in ws.record_shards(source):
                    table = pq.read_table(shard)
                    table = table.filter(pc.is_in(table.column("id"), value_set=ids))
                    for row in table.to_pylist():
                        row["meta"] = orjson.loads(row["meta"]) if row.get("meta") else {}
                        zw.write(orjson.dumps(row) + b"\n")
                        n += 1
        if n != len(ids):
            raise MiraError(f"export {variant}/{source}: {len(ids)} ids selected but {n} records found; "
                            "records/ changed after selection — re-run `mira score` and `mira select`")
        files[source] = n
    return ExportResult(files)


__all__ = ["export_selection", "ExportResult"]

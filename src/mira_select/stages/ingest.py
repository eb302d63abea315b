"""`mira ingest`: every configured source → normalized record shards, a quarantine file and the manifest.

One input file = one shard = one work unit with its own completion marker, so a killed run redoes only the files
it had not finished. After all files of a source are done, a per-source pass removes ids repeated *across* files
(the first occurrence in file order wins, as in a single sequential pass), merges the quarantine parts, and the
manifest is rebuilt from the shards themselves so its numbers always describe what is on disk.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..config import MiraConfig
from ..errors import MiraError
from ..executor import Executor, make_executor
from ..io.readers import expand_paths
from ..io.shards import shard_writer
from ..progress import Reporter
from ..tokens import get_counter
from ..workspace import Counts, Workspace, atomic_path, write_json
from .ingest_file import STAGE, FileTask, ingest_file, quarantine_part


@dataclass
class IngestResult:
    manifest: dict[str, Any]
    files_done: int = 0
    files_skipped: int = 0
    seconds: float = 0.0
    sources_finalized: int = 0

    @property
    def did_work(self) -> bool:
        return self.files_done > 0 or self.sources_finalized > 0


def _hash(obj: Any) -> str:
    return hashlib.sha256(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()[:16]


class IngestStage:
    def __init__(self, cfg: MiraConfig, ws: Workspace | None = None, executor: Executor | None = None,
                 reporter: Reporter | None = None):
        self.cfg = cfg
        self.ws = ws or Workspace(cfg.workspace_path)
        self.executor = executor or make_executor(cfg.executor)
        self.reporter = reporter or Reporter()

    def plan(self) -> dict[str, list[FileTask]]:
        """Resolve every source's inputs before anything is written: a bad path fails the run up front."""
        tok = get_counter(self.cfg.tokenizer).info
        plan: dict[str, list[FileTask]] = {}
        for src in self.cfg.sources:
            try:
                files = expand_paths(src.paths, str(self.cfg.base_dir), src.reader)
            except MiraError as exc:
                raise MiraError(f"source {src.name!r}: {exc}") from None
            common = {"source": src.model_dump(mode="json"), "ingest": self.cfg.ingest.model_dump(mode="json"),
                      "tokenizer": tok.sha256}
            plan[src.name] = [
                FileTask(str(self.ws.root), src, self.cfg.ingest, self.cfg.tokenizer, f, i,
                         _hash({**common, "url": f.url, "size": f.size, "name": f.name}))
                for i, f in enumerate(files)
            ]
        return plan

    def run(self, force: bool = False) -> IngestResult:
        start = time.monotonic()
        plan = self.plan()
        if force:
            self.ws.clear_stage(STAGE)
        self.ws.root.mkdir(parents=True, exist_ok=True)
        self.ws.write_config(self.cfg.resolved_dump())
        for name in plan:  # temporary files a killed run left behind
            for d in (self.ws.records_dir(name), self.ws.work_dir(STAGE, name)):
                for tmp in d.glob(".tmp-*") if d.exists() else ():
                    tmp.unlink(missing_ok=True)

        tasks = [t for ts in plan.values() for t in ts]
        todo = [t for t in tasks if not self._file_done(t)]
        result = IngestResult(manifest={}, files_skipped=len(tasks) - len(todo))
        if todo:
            total = sum(max(t.file.size, 1) for t in todo)
            with self.reporter.task(f"ingest {len(todo)} file(s)", total=total) as bar:
                for task, _ in self.executor.map_unordered(ingest_file, todo):
                    result.files_done += 1
                    bar.advance(max(task.file.size, 1))

        sources: dict[str, Any] = {}
        for name, ts in plan.items():
            fp = _hash([t.fingerprint for t in ts])
            key = f"{name}/_source"
            if self.ws.is_done(STAGE, key) and self.ws.read_marker(STAGE, key).get("fingerprint") == fp:
                sources[name] = self.ws.read_marker(STAGE, key)["summary"]
                continue
            result.sources_finalized += 1
            summary = self._finalize_source(name, ts)
            counts = Counts(summary["input_lines"], summary["records"], summary["dropped"], summary["quarantined"])
            self.ws.mark_done(STAGE, key, counts, fingerprint=fp, summary=summary)
            sources[name] = summary

        tok = get_counter(self.cfg.tokenizer).info
        manifest = {
            "tokenizer": {"name": tok.name, "sha256": tok.sha256, "vocab_size": tok.vocab_size},
            "sources": sources,
            "totals": {k: sum(s[k] for s in sources.values())
                       for k in ("input_lines", "records", "tokens", "bytes", "quarantined", "dropped",
                                 "contaminated")},
        }
        if result.did_work or not self.ws.manifest_path.exists():
            write_json(self.ws.manifest_path, manifest)
        result.manifest = manifest
        result.seconds = time.monotonic() - start
        return result

    def _file_done(self, t: FileTask) -> bool:
        return self.ws.is_done(STAGE, t.key) and self.ws.read_marker(STAGE, t.key).get("fingerprint") == t.fingerprint

    # ---- per-source finalize ------------------------------------------------------------------------------------
    def _finalize_source(self, name: str, tasks: list[FileTask]) -> dict[str, Any]:
        self._remove_stale_shards(name, len(tasks))
        self._dedupe_across_files(name, len(tasks))
        markers = [self.ws.read_marker(STAGE, t.key) for t in tasks]
        formats: dict[str, int] = {}
        records = tokens = nbytes = contaminated = 0
        for i in range(len(tasks)):
            t = pq.read_table(self.ws.record_shard(name, i), columns=["format", "n_tokens", "n_bytes", "contaminated"])
            records += t.num_rows
            contaminated += int(pc.sum(t.column("contaminated")).as_py() or 0)
            tokens += int(pc.sum(t.column("n_tokens")).as_py() or 0)
            nbytes += int(pc.sum(t.column("n_bytes")).as_py() or 0)
            for fmt, n in zip(*_value_counts(t.column("format"))):
                formats[fmt] = formats.get(fmt, 0) + n
        quarantined, reasons = self._merge_quarantine(name, len(tasks))
        dropped_reasons: dict[str, int] = {}
        for m in markers:
            for k, v in m["dropped_reasons"].items():
                dropped_reasons[k] = dropped_reasons.get(k, 0) + v
        summary = {
            "files": [t.file.name for t in tasks],
            "input_lines": sum(m["counts"]["n_in"] for m in markers),
            "records": records,
            "tokens": tokens,
            "bytes": nbytes,
            "formats": dict(sorted(formats.items())),
            "format": max(formats, key=formats.__getitem__) if formats else None,
            "format_override": self.cfg.source(name).format != "auto",
            "quarantined": quarantined,
            "quarantine_reasons": reasons,
            "dropped": sum(m["counts"]["dropped"] for m in markers),
            "dropped_reasons": dropped_reasons,
            "ids_assigned": sum(m["ids_assigned"] for m in markers),
            "contaminated": contaminated,
        }
        if summary["input_lines"] != records + summary["dropped"] + quarantined:
            raise AssertionError(f"ingest {name}: input {summary['input_lines']} != kept {records} + dropped "
                                 f"{summary['dropped']} + quarantined {quarantined}")
        return summary

    def _remove_stale_shards(self, name: str, n_files: int) -> None:
        """Shards left from an earlier run whose source had more files than now."""
        for path in self.ws.record_shards(name):
            index = int(path.stem.split("-")[1])
            if index >= n_files:
                path.unlink()
                self.ws.marker_path(STAGE, f"{name}/{path.stem}").unlink(missing_ok=True)
                for part in self.ws.work_dir(STAGE, name).glob(f"{path.stem}.*"):
                    part.unlink()

    def _dups_part(self, name: str, index: int):
        return self.ws.work_dir(STAGE, name, f"part-{index:05d}.dups.jsonl")

    def _dedupe_across_files(self, name: str, n_files: int) -> None:
        """Quarantine (or rename) ids already seen in an earlier file of the source.

        Crash-safe order: the dups part is written before the shard is rewritten, and both are idempotent, so a
        kill between them is repaired by the next run. Memory: 8 bytes per id (a sorted uint64 hash array).
        """
        policy = self.cfg.ingest.on_duplicate_id
        seen = np.empty(0, dtype=np.uint64)
        earlier: list[tuple[str, np.ndarray]] = []  # (file, sorted hashes) to name where a duplicate came from
        for i in range(n_files):
            path = self.ws.record_shard(name, i)
            keys = pq.read_table(path, columns=["id", "file", "line"])  # not the text: memory stays small
            if not keys.num_rows:
                continue
            file_name = keys.column("file")[0].as_py()
            ids = keys.column("id").to_pylist()
            hashes = _id_hashes(ids)
            dup_mask = np.isin(hashes, seen)
            if dup_mask.any():
                lines = keys.column("line").to_pylist()
                dup_rows = np.flatnonzero(dup_mask)
                if policy == "quarantine":
                    rows = [{"file": file_name, "line": lines[j], "raw": "",
                             "reason": f"duplicate id {ids[j]!r} (first in {_first_file(earlier, hashes[j])})"}
                            for j in dup_rows]
                    with atomic_path(self._dups_part(name, i)) as tmp:
                        tmp.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
                    hashes = hashes[~dup_mask]
                else:
                    for j in dup_rows:
                        ids[j] = f"{ids[j]}#{file_name}:{lines[j]}"
                    hashes = _id_hashes(ids)
                _rewrite_shard(path, dup_mask, new_ids=ids if policy == "rename" else None)
            hashes = np.sort(hashes)
            earlier.append((file_name, hashes))
            seen = np.union1d(seen, hashes)

    def _merge_quarantine(self, name: str, n_files: int) -> tuple[int, dict[str, int]]:
        n = 0
        reasons: dict[str, int] = {}
        with atomic_path(self.ws.quarantine_path(name)) as tmp, open(tmp, "wb") as out:
            for i in range(n_files):
                for part in (quarantine_part(self.ws, name, i), self._dups_part(name, i)):
                    if not part.exists():
                        continue
                    with open(part, "rb") as fh:
                        for line in fh:
                            n += 1
                            reason = orjson.loads(line)["reason"].split(" (")[0].split(":")[0]
                            reasons[reason] = reasons.get(reason, 0) + 1
                            out.write(line)
        return n, dict(sorted(reasons.items()))


def _rewrite_shard(path, dup_mask: np.ndarray, new_ids: list[str] | None) -> None:
    """Stream a shard into a new one without the masked rows (or with new ids), one row group at a time."""
    pf = pq.ParquetFile(path)
    with shard_writer(path, pf.schema_arrow) as w:
        offset = 0
        for rg in range(pf.num_row_groups):
            batch = pf.read_row_group(rg)
            n = batch.num_rows
            if new_ids is not None:
                w.write_table(batch.set_column(0, "id", [new_ids[offset:offset + n]]))
            else:
                w.write_table(batch.filter(pa.array(~dup_mask[offset:offset + n])))
            offset += n


def _id_hashes(ids: list[str]) -> np.ndarray:
    def h(x: str) -> int:
        return int.from_bytes(hashlib.blake2b(x.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")

    return np.fromiter((h(x) for x in ids), dtype=np.uint64, count=len(ids))


def _first_file(earlier: list[tuple[str, np.ndarray]], h: np.uint64) -> str:
    for file_name, hashes in earlier:
        pos = np.searchsorted(hashes, h)
        if pos < len(hashes) and hashes[pos] == h:
            return file_name
    return "an earlier file"


def _value_counts(col) -> tuple[list[str], list[int]]:
    vc = pc.value_counts(col)
    return vc.field("values").to_pylist(), vc.field("counts").to_pylist()


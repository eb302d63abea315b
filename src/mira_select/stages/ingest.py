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
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..config import MiraConfig
from ..errors import MiraError
from ..executor import Executor, make_executor
from ..io.readers import InputFile, expand_paths
from ..io.shards import shard_writer
from ..progress import Reporter
from ..tokens import get_counter
from ..ledger import Ledger, Unit, digest
from ..workspace import Counts, Workspace, atomic_path, file_digest, read_json, remove_temp_files, write_json
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


class InputDigests:
    """Content digests of input files, remembered by (url, size, mtime) so a re-run does not re-read the corpus.

    Local files are hashed (sha256 of the bytes) once per change of size or mtime; a remote file's version is what
    its filesystem reports (ETag / checksum / mtime) with its size — never only its name, so replacing a file with
    new content of the same size is a change.
    """

    def __init__(self, path: Path):
        self.path = path
        self.known: dict[str, list] = read_json(path) if path.exists() else {}
        self.dirty = False

    def get(self, f: InputFile) -> str:
        import fsspec

        fs, p = fsspec.core.url_to_fs(f.url)
        info = fs.info(p)
        if "://" in f.url and not f.url.startswith("file://"):
            version = [info.get(k) for k in ("ETag", "etag", "checksum", "md5", "mtime", "LastModified")]
            return digest({"size": f.size, "version": version})
        stamp = [f.size, Path(p).stat().st_mtime_ns]
        hit = self.known.get(f.url)
        if hit and hit[:2] == stamp:
            return hit[2]
        value = file_digest(Path(p))
        self.known[f.url] = [*stamp, value]
        self.dirty = True
        return value

    def save(self) -> None:
        if self.dirty:
            write_json(self.path, self.known)
            self.dirty = False


class IngestStage:
    def __init__(self, cfg: MiraConfig, ws: Workspace | None = None, executor: Executor | None = None,
                 reporter: Reporter | None = None):
        self.cfg = cfg
        self.ws = ws or Workspace(cfg.workspace_path)
        self._executor = executor
        self.reporter = reporter or Reporter()
        self.ledger = Ledger(self.ws)
        self.digests = InputDigests(self.ws.work_dir(STAGE) / "input_digests.json")

    @property
    def executor(self) -> Executor:
        if self._executor is None:
            self._executor = make_executor(self.cfg.executor)
        return self._executor

    def plan(self) -> dict[str, list[FileTask]]:
        """Resolve every source's inputs before anything is written: a bad path fails the run up front."""
        tok = get_counter(self.cfg.tokenizer).info
        plan: dict[str, list[FileTask]] = {}
        for src in self.cfg.sources:
            try:
                files = expand_paths(src.paths, str(self.cfg.base_dir), src.reader)
            except MiraError as exc:
                raise MiraError(f"source {src.name!r}: {exc}") from None
            common = {f"config.sources.{src.name}": src.model_dump(mode="json"),
                      "config.ingest": self.cfg.ingest.model_dump(mode="json"), "tokenizer": tok.sha256}
            plan[src.name] = [
                FileTask(str(self.ws.root), src, self.cfg.ingest, self.cfg.tokenizer, f, i,
                         Unit.of(STAGE, f"{src.name}/part-{i:05d}",
                                 {**common, "file": {"name": f.name, "content": self.digests.get(f)}},
                                 [self.ws.record_shard(src.name, i)]))
                for i, f in enumerate(files)
            ]
        self.digests.save()
        return plan

    def source_unit(self, name: str, tasks: list[FileTask]) -> Unit:
        return Unit.of(STAGE, f"{name}/_source", {"files": [t.unit.fingerprint for t in tasks]},
                       [self.ws.record_shard(name, t.index) for t in tasks])

    def units(self) -> list[Unit]:
        return [u for name, ts in self.plan().items() for u in (*(t.unit for t in ts), self.source_unit(name, ts))]

    def run(self, force: bool = False) -> IngestResult:
        start = time.monotonic()
        plan = self.plan()
        if force:
            self.ws.clear_stage(STAGE)
        self.ws.root.mkdir(parents=True, exist_ok=True)
        self.ws.write_config(self.cfg.resolved_dump())
        # temporary files a killed run (or a killed worker whose unit was re-run) left behind
        scratch = [d for name in plan for d in (self.ws.records_dir(name), self.ws.work_dir(STAGE, name))]
        remove_temp_files(scratch)

        tasks = [t for ts in plan.values() for t in ts]
        todo = [t for t in tasks if not self._file_done(t)]
        result = IngestResult(manifest={}, files_skipped=len(tasks) - len(todo))
        if todo:
            total = sum(max(t.file.size, 1) for t in todo)
            self.executor.prepare(self.ws.root, [t.file.url for t in todo])  # made only when there is work
            with self.reporter.task(f"ingest {len(todo)} file(s)", total=total) as bar:
                for task, _ in self.executor.map_unordered(ingest_file, todo):
                    result.files_done += 1
                    bar.advance(max(task.file.size, 1))
            remove_temp_files(scratch)

        sources: dict[str, Any] = {}
        self.ledger = Ledger(self.ws)  # the workers recorded their units: forget what was read before
        for name, ts in plan.items():
            unit = self.source_unit(name, ts)
            if self.ledger.is_current(unit):
                sources[name] = self.ledger.info(STAGE, unit.key)["summary"]
                continue
            result.sources_finalized += 1
            summary = self._finalize_source(name, ts)
            counts = Counts(summary["input_lines"], summary["records"], summary["dropped"], summary["quarantined"])
            self.ledger.record(unit, counts, summary=summary)
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
        return self.ledger.is_current(t.unit)

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


"""`mira ingest`: every configured source → normalized record shards, a quarantine file and the manifest.

A work unit is a whole input file or, for a large one, a part of it (io/splits.py): each unit has its own shard and
completion marker, so a killed run redoes only the units it had not finished, and the parts of one big file run on
all workers at once. After all units of a source are done, a per-source pass removes repeated ids by merging the
units' sorted id runs (the first occurrence in file and line order wins, as in one sequential pass;
stages/ingest_dedup.py), merges the quarantine parts, and the manifest is rebuilt from the shards themselves so its
numbers always describe what is on disk.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..config import MiraConfig
from ..errors import MiraError
from ..executor import Executor, make_executor
from ..io.readers import InputFile, expand_paths
from ..io.splits import Split, scan, splittable, unit_stem
from ..progress import Reporter
from ..records import RECORD_SCHEMA
from ..tokens import tokenizer_info
from ..ledger import Ledger, Unit, digest
from ..workspace import Counts, Workspace, atomic_path, read_json, remove_temp_files, write_json
from . import ingest_dedup as dedup
from .ingest_file import STAGE, UnitTask, ingest_unit, raw_rows


@dataclass
class IngestResult:
    manifest: dict[str, Any]
    files_done: int = 0  # files with at least one unit run now
    files_skipped: int = 0  # files whose units were all current
    units_done: int = 0
    units_skipped: int = 0
    seconds: float = 0.0
    sources_finalized: int = 0

    @property
    def did_work(self) -> bool:
        return self.units_done > 0 or self.sources_finalized > 0


class InputDigests:
    """Content digests and units of input files, remembered by (url, size, mtime) so a re-run does not re-read the
    corpus.

    Local files are read once per change of size or mtime: that one pass hashes them (sha256 of the bytes) and, for
    a file that can be cut, finds its cut points and the line count before each (io/splits.py), so splitting costs
    no extra read. A remote file's version is what its filesystem reports (ETag / checksum / mtime) with its size —
    never only its name, so replacing a file with new content of the same size is a change; remote files stay whole.
    """

    def __init__(self, path: Path):
        self.path = path
        self.known: dict[str, list] = read_json(path) if path.exists() else {}
        self.dirty = False

    def get(self, f: InputFile, unit_bytes: int) -> tuple[str, list[Split]]:
        import fsspec

        fs, p = fsspec.core.url_to_fs(f.url)
        info = fs.info(p)
        if "://" in f.url and not f.url.startswith("file://"):
            version = [info.get(k) for k in ("ETag", "etag", "checksum", "md5", "mtime", "LastModified")]
            return digest({"size": f.size, "version": version}), [Split(size=f.size)]
        stamp = [f.size, Path(p).stat().st_mtime_ns]
        cut = unit_bytes if splittable(f.kind, f.url) else None  # the units of other files do not depend on it
        hit = self.known.get(f.url)
        if hit and hit[:2] == stamp and len(hit) == 5 and hit[3] == cut:
            return hit[2], [Split.from_json(s) for s in hit[4]]
        value, splits = scan(Path(p), f.kind, unit_bytes)
        self.known[f.url] = [*stamp, value, cut, [s.to_json() for s in splits]]
        self.dirty = True
        return value, splits

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

    def plan(self) -> dict[str, list[UnitTask]]:
        """Resolve every source's inputs and units before anything is written: a bad path fails the run up front."""
        tok = tokenizer_info(self.cfg.tokenizer)
        unit_bytes = self.cfg.ingest.unit_bytes
        # Left out of what every unit reads: unit_bytes (each unit names its own split, so a new unit size redoes
        # only the files whose cuts move) and on_duplicate_id (applied by the source's finalize, which names it)
        ingest_conf = self.cfg.ingest.model_dump(mode="json", exclude={"unit_bytes", "on_duplicate_id"})
        plan: dict[str, list[UnitTask]] = {}
        for src in self.cfg.sources:
            try:
                files = expand_paths(src.paths, str(self.cfg.base_dir), src.reader)
            except MiraError as exc:
                raise MiraError(f"source {src.name!r}: {exc}") from None
            # Not the configured paths: each file is named (relative to the source's root) and content-hashed
            # below, so a corpus moved or re-globbed to the same files stays current; a new or changed file does not.
            common = {f"config.sources.{src.name}": src.model_dump(mode="json", exclude={"paths"}),
                      "config.ingest": ingest_conf, "tokenizer": tok.sha256, "schema": RECORD_SCHEMA.to_string()}
            tasks: list[UnitTask] = []
            for i, f in enumerate(files):
                content, splits = self.digests.get(f, unit_bytes)
                for j, split in enumerate(splits):
                    stem = unit_stem(i, j, len(splits))
                    key = f"{src.name}/{stem}"
                    outputs = [self.ws.records_dir(src.name) / f"{stem}.parquet",
                               self.ws.work_dir(STAGE, src.name, f"{stem}.ids.parquet")]
                    inputs = {**common, "file": {"name": f.name, "content": content}, "split": split.to_json()}
                    tasks.append(UnitTask(str(self.ws.root), src, self.cfg.ingest, self.cfg.tokenizer, f, i, split,
                                          stem, Unit.of(STAGE, key, inputs, outputs)))
            plan[src.name] = tasks
        self.digests.save()
        return plan

    def source_unit(self, name: str, tasks: list[UnitTask]) -> Unit:
        return Unit.of(STAGE, f"{name}/_source", {"units": [t.unit.fingerprint for t in tasks],
                                                   "config.ingest.on_duplicate_id": self.cfg.ingest.on_duplicate_id},
                       [t.shard(self.ws) for t in tasks])

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
        todo = [t for t in tasks if not self.ledger.is_current(t.unit)]
        files = {(t.source.name, t.file_index) for t in tasks}
        touched = {(t.source.name, t.file_index) for t in todo}
        result = IngestResult(manifest={}, files_done=len(touched), files_skipped=len(files - touched),
                              units_skipped=len(tasks) - len(todo))
        if todo:
            total = sum(max(t.split.size, 1) for t in todo)
            self.executor.prepare(self.ws.root, list(dict.fromkeys(t.file.url for t in todo)))
            with self.reporter.task(f"ingest {len(todo)} unit(s) of {len(touched)} file(s)", total=total) as bar:
                for task, _ in self.executor.map_unordered(ingest_unit, todo):  # made only when there is work
                    result.units_done += 1
                    bar.advance(max(task.split.size, 1))
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

        tok = tokenizer_info(self.cfg.tokenizer)
        manifest = {
            "tokenizer": {"name": tok.name, "sha256": tok.sha256, "vocab_size": tok.vocab_size},
            "sources": sources,
            "totals": {k: sum(s[k] for s in sources.values())
                       for k in ("input_lines", "records", "tokens", "bytes", "quarantined", "dropped")},
        }
        if result.did_work or not self.ws.manifest_path.exists():
            write_json(self.ws.manifest_path, manifest)
        result.manifest = manifest
        result.seconds = time.monotonic() - start
        return result

    # ---- per-source finalize ------------------------------------------------------------------------------------
    def _finalize_source(self, name: str, tasks: list[UnitTask]) -> dict[str, Any]:
        self._remove_stale_units(name, {t.stem for t in tasks})
        self._dedupe(name, tasks)
        markers = [self.ws.read_marker(STAGE, t.key) for t in tasks]
        formats: dict[str, int] = {}
        records = tokens = nbytes = 0
        for task in tasks:
            t = pq.read_table(task.shard(self.ws), columns=["format", "n_tokens", "n_bytes"])
            records += t.num_rows
            tokens += int(pc.sum(t.column("n_tokens")).as_py() or 0)
            nbytes += int(pc.sum(t.column("n_bytes")).as_py() or 0)
            for fmt, n in zip(*_value_counts(t.column("format"))):
                formats[fmt] = formats.get(fmt, 0) + n
        quarantined, reasons = self._merge_quarantine(name, tasks)
        dropped_reasons: dict[str, int] = {}
        for m in markers:
            for k, v in m["dropped_reasons"].items():
                dropped_reasons[k] = dropped_reasons.get(k, 0) + v
        summary = {
            "files": list(dict.fromkeys(t.file.name for t in tasks)),
            "units": len(tasks),
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
        }
        if summary["input_lines"] != records + summary["dropped"] + quarantined:
            raise AssertionError(f"ingest {name}: input {summary['input_lines']} != kept {records} + dropped "
                                 f"{summary['dropped']} + quarantined {quarantined}")
        return summary

    def _remove_stale_units(self, name: str, stems: set[str]) -> None:
        """Shards, markers and scratch parts of units an earlier run had and this plan has not (a file removed, or
        cut differently)."""
        stale = [p for p in self.ws.record_shards(name) if p.stem not in stems]
        markers = self.ws.marker_path(STAGE, f"{name}/_source").parent
        stale += [p for p in markers.glob("part-*.json") if p.stem not in stems]
        work = self.ws.work_dir(STAGE, name)
        stale += [p for p in work.glob("part-*") if p.name.split(".")[0] not in stems]
        for path in stale:
            path.unlink(missing_ok=True)

    def _dedupe(self, name: str, tasks: list[UnitTask]) -> None:
        """Remove (or rename) repeated ids: merge the units' runs, then bring each shard to its decision.

        A shard is rewritten only when its decision changed. One that carries another decision already (an earlier
        file changed which of its ids repeat) lost the rows that decision dropped, so its unit runs again first.
        Crash-safe order: the duplicate quarantine parts are written before the shard, whose footer names the
        decision it holds, so a kill between them is repaired by the next run.
        """
        runs = [dedup.RunRef(t.file_index, t.file.name, t.stem, t.part(self.ws, "ids.parquet")) for t in tasks]
        names = {t.file_index: t.file.name for t in tasks}
        decisions = dedup.decide(dedup.find_repeats(runs), names, self.cfg.ingest.on_duplicate_id)
        for task in tasks:
            decision = decisions.get(task.stem)
            shard = task.shard(self.ws)
            have, want = dedup.applied(shard), decision.digest() if decision else None
            if decision is None:
                for kind in ("dups.jsonl", "xdups.jsonl"):
                    task.part(self.ws, kind).unlink(missing_ok=True)
            if have == want:
                continue
            if have is not None:
                ingest_unit(task, force=True)
            if decision is None:
                continue
            within_lines = decision.within_lines
            within, across = decision.quarantine_rows(task.file.name,
                                                      raw_rows(task, within_lines) if within_lines else {})
            for kind, rows in (("dups.jsonl", within), ("xdups.jsonl", across)):
                if rows:
                    with atomic_path(task.part(self.ws, kind)) as tmp:
                        tmp.write_bytes(b"".join(r + b"\n" for r in rows))
                else:
                    task.part(self.ws, kind).unlink(missing_ok=True)
            dedup.apply(shard, decision)

    def _merge_quarantine(self, name: str, tasks: list[UnitTask]) -> tuple[int, dict[str, int]]:
        """Per file, in file order: its units' rows with the repeats of its own earlier lines merged in by line
        (the order one sequential pass writes), then the repeats of earlier files."""
        n = 0
        reasons: dict[str, int] = {}
        with atomic_path(self.ws.quarantine_path(name)) as tmp, open(tmp, "wb") as out:
            for _, group in itertools.groupby(tasks, key=lambda t: t.file_index):
                units = list(group)
                rows = heapq.merge(_lines(units, "quarantine.jsonl", self.ws), _lines(units, "dups.jsonl", self.ws),
                                   key=_line_order)
                for line in itertools.chain(rows, _lines(units, "xdups.jsonl", self.ws)):
                    n += 1
                    reason = orjson.loads(line)["reason"].split(" (")[0].split(":")[0]
                    reasons[reason] = reasons.get(reason, 0) + 1
                    out.write(line)
        return n, dict(sorted(reasons.items()))


def _lines(units: list[UnitTask], kind: str, ws: Workspace):
    for task in units:
        part = task.part(ws, kind)
        if part.exists():
            with open(part, "rb") as fh:
                yield from fh


def _line_order(row: bytes) -> float:
    """A row's place within its file: its line; -1 (the unreadable rest of a file) comes last."""
    line = orjson.loads(row)["line"]
    return math.inf if line < 0 else line


def _value_counts(col) -> tuple[list[str], list[int]]:
    vc = pc.value_counts(col)
    return vc.field("values").to_pylist(), vc.field("counts").to_pylist()


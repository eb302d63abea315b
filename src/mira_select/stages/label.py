"""`mira label`: the teacher scores a stratified sample of each group on every anchor of the group's rubric.

One call per record (all anchors at once), checkpointed in chunks: a chunk's rows are written and marked before the
next starts, and the teacher cache answers anything already asked, so ``kill -9`` costs at most one chunk of
calls and never duplicates a row. Each source's labeled records are split train/validation by a hash of the id
(validation ≥ val_share and ≥ min_val records per source when the source has them).
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..io.shards import write_table
from .teacher_stage import TeacherStage
from ..teacher.types import Anchor
from ..workspace import Counts, atomic_write_bytes
from .discover import group_members, load_rubric, stratified_sample

STAGE = "label"


@dataclass
class LabelResult:
    counts: dict[str, dict[str, int]]
    seconds: float
    skipped: list[str]  # groups that were already labeled with the current rubric and config


def anchors_of(rubric: dict[str, Any]) -> list[Anchor]:
    return [Anchor(a["id"], a["name"], a["definition"], a["part"]) for a in rubric["anchors"]]


def split_of(record_id: str, source_rank: int, n_source: int, val_share: float, min_val: int) -> str:
    """Deterministic per-source split: the records with the lowest id hashes form validation."""
    n_val = min(max(math.ceil(val_share * n_source), min_val), n_source // 2) if n_source > 1 else 0
    return "val" if source_rank < n_val else "train"


def _id_rank_key(record_id: str) -> str:
    return hashlib.sha256(record_id.encode("utf-8", "surrogatepass")).hexdigest()


class LabelStage(TeacherStage):
    """Labels every group on its discovered rubric. Subclasses relabel with another rubric (the DataMan baseline)
    by overriding ``stage``, ``groups``, ``rubric``, ``labels_dir`` and ``prompt_format``."""

    stage = STAGE

    def groups(self) -> dict[str, list[str]]:
        return group_members(self.ws, self.cfg)

    def rubric(self, group: str) -> dict[str, Any]:
        return load_rubric(self.ws, group)

    def labels_dir(self, group: str):
        return self.ws.root / "labels" / group

    def records_per_group(self) -> int:
        return self.cfg.label.records_per_group

    def prompt_format(self, rubric: dict[str, Any]) -> str | None:
        """One prompt family for every record (None: each record's own format)."""
        return "qa_think" if rubric["with_parts"] else None

    def run(self, force: bool = False) -> LabelResult:
        start = time.monotonic()
        if force:
            self.ws.clear_stage(self.stage)
        counts, skipped = {}, []
        for group, sources in self.groups().items():
            counts[group], current = self._label_group(group, sources)
            if current:
                skipped.append(group)
        if self._teacher is not None:
            self._teacher.save_accounting()
        return LabelResult(counts, time.monotonic() - start, skipped)

    def _fingerprint(self, group: str, rubric: dict[str, Any]) -> str:
        return hashlib.sha256(orjson.dumps({"label": self.cfg.label.model_dump(mode="json"),
                                            "anchors": rubric["anchors"], "teacher": self.cfg.teacher.model,
                                            "n": self.records_per_group(),
                                            "cut": self.teacher_config().max_record_tokens},
                                           option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]

    def _label_group(self, group: str, sources: list[str]) -> tuple[dict[str, int], bool]:
        """-> (counts, whether the group was already labeled with this rubric and config)."""
        lc = self.cfg.label
        rubric = self.rubric(group)
        anchors = anchors_of(rubric)
        fp = self._fingerprint(group, rubric)
        final_key = f"{group}/_final"
        if self.ws.is_done(self.stage, final_key):
            marker = self.ws.read_marker(self.stage, final_key)
            if marker.get("fingerprint") == fp:
                return marker["summary"], True
        records = stratified_sample(self.ws, sources, self.records_per_group(), seed=lc.seed)
        fmt_for_all = self.prompt_format(rubric)
        chunks = [records[i:i + lc.chunk] for i in range(0, len(records), lc.chunk)]
        work = self.ws.work_dir(self.stage, group)
        with self.reporter.task(f"{self.stage} {group}: {len(records)} records x {len(anchors)} anchors",
                                total=len(records)) as bar:
            for ci, chunk in enumerate(chunks):
                key = f"{group}/chunk-{ci:05d}"
                if self.ws.is_done(self.stage, key) and self.ws.read_marker(self.stage, key).get("fingerprint") == fp:
                    bar.advance(len(chunk))
                    continue
                teacher = self.teacher()
                items = [(r.id, fmt_for_all or r.format, r.text) for r in chunk]
                results = teacher.run(lambda i, f, t: teacher.score(i, f, t, anchors), items,
                                      on_result=lambda r: bar.advance())
                rows, dead = [], []
                for rec, res in zip(chunk, results):
                    if res.data is None:
                        dead.append({"id": rec.id, "source": rec.source, "error": res.error})
                        continue
                    row = {"id": rec.id, "source": rec.source, "format": rec.format, "n_tokens": rec.n_tokens,
                           "readout": res.readout, "model": res.model, "prompt_hash": res.prompt_hash}
                    for a in anchors:
                        row[f"score:{a.id}"] = float(res.data[a.id]["score"])
                        row[f"greedy:{a.id}"] = int(res.data[a.id]["greedy"])
                        row[f"rationale:{a.id}"] = res.data[a.id]["rationale"]
                    rows.append(row)
                write_table(work / f"chunk-{ci:05d}.parquet", label_table(rows, anchors))
                atomic_write_bytes(work / f"chunk-{ci:05d}.dead.jsonl",
                                   b"".join(orjson.dumps(d) + b"\n" for d in dead))
                self.ws.mark_done(self.stage, key, Counts(len(chunk), len(rows), 0, len(dead)), fingerprint=fp)
        summary = self._finalize(group, len(chunks), anchors)
        summary["requested"] = self.records_per_group()
        summary["sampled"] = len(records)
        self.ws.mark_done(self.stage, final_key, Counts(len(records), summary["labeled"], 0, summary["dead"]),
                          fingerprint=fp, summary=summary)
        return summary, False

    def _finalize(self, group: str, n_chunks: int, anchors: list[Anchor]) -> dict[str, int]:
        lc = self.cfg.label
        work = self.ws.work_dir(self.stage, group)
        tables = [pq.read_table(work / f"chunk-{i:05d}.parquet") for i in range(n_chunks)]
        table = pa.concat_tables(tables) if tables else label_table([], anchors)
        out = self.labels_dir(group)
        split = write_splits(out, table, lc.val_share, lc.min_val)
        dead = b"".join((work / f"chunk-{i:05d}.dead.jsonl").read_bytes() for i in range(n_chunks))
        atomic_write_bytes(out / "dead_letter.jsonl", dead)
        n_dead = dead.count(b"\n")
        return {"labeled": table.num_rows, "dead": n_dead,
                "train": sum(v == "train" for v in split.values()), "val": sum(v == "val" for v in split.values())}


def write_splits(out: Path, table: pa.Table, val_share: float, min_val: int) -> dict[str, str]:
    """Split labeled rows train/val per source (lowest id hashes → val) and write ``out``/{train,val}.parquet."""
    ids, srcs = table.column("id").to_pylist(), table.column("source").to_pylist()
    by_source: dict[str, list[str]] = {}
    for rid, src in zip(ids, srcs):
        by_source.setdefault(src, []).append(rid)
    split = {}
    for src, members in by_source.items():
        for rank, rid in enumerate(sorted(members, key=_id_rank_key)):
            split[rid] = split_of(rid, rank, len(members), val_share, min_val)
    table = table.append_column("split", pa.array([split[i] for i in ids], pa.string()))
    for name in ("train", "val"):
        write_table(out / f"{name}.parquet", table.filter(pc.equal(table.column("split"), name)))
    return split


def label_table(rows: list[dict[str, Any]], anchors: list[Anchor]) -> pa.Table:
    fields = [pa.field("id", pa.string()), pa.field("source", pa.string()), pa.field("format", pa.string()),
              pa.field("n_tokens", pa.int32()), pa.field("readout", pa.string()), pa.field("model", pa.string()),
              pa.field("prompt_hash", pa.string())]
    for a in anchors:
        fields += [pa.field(f"score:{a.id}", pa.float32()), pa.field(f"greedy:{a.id}", pa.int8()),
                   pa.field(f"rationale:{a.id}", pa.string())]
    schema = pa.schema(fields)
    return pa.Table.from_pylist(rows, schema=schema)

"""`mira score`: every record of every source gets its group student's anchor scores and one aggregated score.

Output is a sidecar per record shard, ``scores/<source>/part-NNNNN.parquet``, row-aligned with ``records/`` (same
ids, same order), so selection and export never join on ids. Work units are shards; they run on the configured
executor (local process pool or Ray) and each worker loads its group's student once. A unit writes its shard
atomically and the parent marks it done, so a killed run redoes only unfinished shards. A group whose student
scores on a GPU (the generative tier) says so per unit, and the executor reserves one for it (Ray).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..aggregate import anchored_score
from ..executor import Needs
from ..io.shards import shard_writer
from ..ledger import Ref, Unit
from ..workspace import Counts, Workspace
from .group import group_members
from .shard_stage import ShardStage
from ..students.registry import saved_student_needs_gpu
from .train import load_student_bundle, student_dir

STAGE = "score"


@dataclass(frozen=True)
class ScoreUnit:
    root: str
    source: str
    group: str
    shard: str
    out: str
    trim: float
    batch: int
    student: str  # the train unit's fingerprint (as an input digest): keys the per-process model cache
    unit: Unit


@dataclass
class ScoreResult:
    shards_done: int
    shards_skipped: int
    records: int
    seconds: float


def score_path(ws: Workspace, source: str, shard: Path) -> Path:
    return ws.root / "scores" / source / shard.name


def score_schema(anchors: list[str]) -> pa.Schema:
    return pa.schema([pa.field("id", pa.string()), pa.field("n_tokens", pa.int32()), pa.field("score", pa.float32())]
                     + [pa.field(f"anchor:{a}", pa.float32()) for a in anchors])


@functools.lru_cache(maxsize=8)
def _bundle(root: str, group: str, fingerprint: str):
    """Per worker process: the group's student and mask, loaded once (fingerprint keys out stale copies)."""
    return load_student_bundle(Workspace(root), group)


def score_shard(unit: ScoreUnit) -> Counts:
    student, mask = _bundle(unit.root, unit.group, unit.student)
    anchors = student.anchors
    columns = [anchors.index(a) for a in mask[unit.source]["anchors"]]
    fill = list(mask[unit.source].get("fill", {}).values())
    pf = pq.ParquetFile(unit.shard)
    n = 0
    with shard_writer(Path(unit.out), score_schema(anchors)) as w:
        for batch in pf.iter_batches(batch_size=unit.batch, columns=["id", "text", "n_tokens"]):
            texts = batch.column("text").to_pylist()
            y = student.predict(texts)
            cols: dict[str, Any] = {"id": batch.column("id"), "n_tokens": batch.column("n_tokens"),
                                    "score": anchored_score(y, columns, fill, unit.trim)}
            for j, a in enumerate(anchors):
                cols[f"anchor:{a}"] = y[:, j]
            w.write_table(pa.table(cols))
            n += len(texts)
    return Counts(n, n, 0, 0)


class ScoreStage(ShardStage):
    stage = STAGE

    def plan(self) -> list[ScoreUnit]:
        sc = self.cfg.student
        units = []
        for group, sources in group_members(self.ws, self.cfg).items():
            for source in sources:
                for shard in self.ws.record_shards(source):
                    # current only for this student AND this content of the record shard
                    out = score_path(self.ws, source, shard)
                    key = self.key(source, shard)
                    unit = self.ledger.unit(STAGE, key, {"student": Ref("train", group), "records": shard,
                                                         "ingested": Ref("ingest", key)}, [out])
                    units.append(ScoreUnit(str(self.ws.root), source, group, str(shard), str(out), sc.trim,
                                           sc.batch, unit.inputs["student"], unit))
        return units

    def units(self) -> list[Unit]:
        return [item.unit for item in self.plan()]

    def run(self, force: bool = False) -> ScoreResult:
        start = time.monotonic()
        units = self.plan()
        todo = [u for u in units if force or not self.current(u)]
        gpu = {g: saved_student_needs_gpu(student_dir(self.ws, g)) for g in {u.group for u in todo}}
        records = self.run_units(score_shard, todo, f"score {len(todo)} shard(s)", lambda u: {"group": u.group},
                                 needs=lambda u: Needs(gpu=gpu[u.group]))
        return ScoreResult(len(todo), len(units) - len(todo), records, time.monotonic() - start)

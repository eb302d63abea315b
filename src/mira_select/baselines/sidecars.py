"""Baseline scores as sidecars, like MIRA's: one parquet per record shard (id, score), written through the executor.

Why not compute them inside `select`: a baseline's score is a property of a record, not of a selection, so it is
computed once per shard, in parallel, resumably, and read back id-checked like every other sidecar (a stale or
misaligned sidecar is an error naming it, never a wrong score). The model a baseline needs (ppl's n-gram LM, DSIR's
two feature distributions) is fitted once per change of its inputs, saved, and loaded by each worker; memory does
not grow with the corpus (the fit streams, each worker holds one shard).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ..config import MiraConfig
from ..holdout import id_buckets
from ..io.shards import shard_writer, text_batches
from ..ledger import Ref, Unit
from ..progress import Reporter
from ..stages.shard_stage import ShardStage
from ..workspace import Counts, Workspace

SCHEMA = pa.schema([pa.field("id", pa.string()), pa.field("score", pa.float64())])


def stage_name(variant: str) -> str:
    return f"baseline-{variant}"


def sidecar_path(ws: Workspace, variant: str, source: str, shard: Path) -> Path:
    return ws.root / "baselines" / variant / "scores" / source / Path(shard).name


def model_path(ws: Workspace, variant: str) -> Path:
    return ws.root / "baselines" / variant / "model.npz"


@dataclass(frozen=True)
class BaselineUnit:
    """One record shard scored by one baseline (picklable: paths and numbers only)."""

    variant: str
    root: str
    source: str
    shard: str
    out: str
    model: str  # digest of the model file: keys the per-process model cache
    seed: int
    prefix_tokens: int
    unit: Unit


@functools.lru_cache(maxsize=4)
def _model(variant: str, root: str, digest: str):
    ws = Workspace(root)
    if variant == "ppl":
        from .ngram_lm import HashedNgramLM

        lm = HashedNgramLM.load(model_path(ws, variant))
        return lambda texts, ids, u: -lm.doc_perplexity(texts, u.prefix_tokens)
    if variant == "dsir":
        from .dsir import DSIRWeights, gumbel

        w = DSIRWeights.load(model_path(ws, variant))
        return lambda texts, ids, u: w.log_weights(texts) + gumbel(id_buckets([f"dsir{u.seed}:{i}" for i in ids]))
    if variant == "dataman":
        from .dataman import load_dataman_scorer

        student = load_dataman_scorer(ws)
        return lambda texts, ids, u: student(texts)
    raise ValueError(f"no sidecar scorer for {variant!r}")


def score_shard(unit: BaselineUnit) -> Counts:
    fn = _model(unit.variant, unit.root, unit.model)
    n = 0
    with shard_writer(Path(unit.out), SCHEMA) as w:
        for batch in text_batches(Path(unit.shard), ["id", "text"]):
            ids, texts = batch.column("id").to_pylist(), batch.column("text").to_pylist()
            w.write_table(pa.table({"id": ids, "score": np.asarray(fn(texts, ids, unit), np.float64)}, schema=SCHEMA))
            n += len(ids)
    return Counts(n, n, 0, 0)


class BaselineScoreStage(ShardStage):
    """Score every shard of ``sources`` for one baseline whose model (if any) is already fitted."""

    def __init__(self, cfg: MiraConfig, ws: Workspace, variant: str, sources: list[str], model: dict[str, Any],
                 reporter: Reporter | None = None):
        super().__init__(cfg, ws, reporter=reporter)
        self.variant, self.sources, self.model = variant, sources, model
        self.stage = stage_name(variant)

    def plan(self) -> list[BaselineUnit]:
        b = self.cfg.baselines
        items = []
        for source in self.sources:
            for shard in self.ws.record_shards(source):
                key = self.key(source, shard)
                out = sidecar_path(self.ws, self.variant, source, shard)
                unit = self.ledger.unit(self.stage, key, {"model": self.model, "records": shard,
                                                          "ingested": Ref("ingest", key)}, [out])
                items.append(BaselineUnit(self.variant, str(self.ws.root), source, str(shard), str(out),
                                          unit.inputs["model"], b.seed, b.ppl_prefix_tokens, unit))
        return items

    def run(self, force: bool = False) -> int:
        items = self.plan()
        todo = [i for i in items if force or not self.current(i)]
        self.run_units(score_shard, todo, f"{self.variant}: score {len(todo)} shard(s)")
        return len(todo)

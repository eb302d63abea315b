"""The baselines' scorers: random (source-preserving), perplexity, DSIR, DataMan, full (see `variants`)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from ..config import MiraConfig
from ..errors import MiraError
from ..holdout import id_buckets, reference_mask
from ..variants.base import VariantScorer
from ..workspace import Workspace


class RandomScorer(VariantScorer):
    unit = "source"

    def fingerprint(self) -> str:
        return f"seed={self.cfg.baselines.seed}"

    def scores(self, source: str, shard: Path, ids: list[str]) -> np.ndarray:
        return id_buckets([f"{self.cfg.baselines.seed}:{i}" for i in ids])


def reference_texts(cfg: MiraConfig, ws: Workspace) -> list[str]:
    ref = cfg.baselines.reference
    if not ref.sources:
        raise MiraError("the ppl and dsir baselines need a target sample: set baselines.reference.sources "
                        "(sources you consider high quality; a held-out share of them becomes the target)")
    out: list[str] = []
    for source in ref.sources:
        for shard in ws.record_shards(source):
            t = pq.read_table(shard, columns=["id", "text"])
            mask = reference_mask(cfg, source, id_buckets(t.column("id").to_pylist()))
            out += [x for x, m in zip(t.column("text").to_pylist(), mask) if m]
    if not out:
        raise MiraError(f"the reference sample of {', '.join(ref.sources)} is empty; raise baselines.reference.share")
    return out


def _texts(shard: Path) -> list[str]:
    return pq.read_table(shard, columns=["text"]).column("text").to_pylist()


class PplScorer(VariantScorer):
    def prepare(self) -> None:
        from .ngram_lm import HashedNgramLM

        self.lm = HashedNgramLM(order=4, bits=22).fit(reference_texts(self.cfg, self.ws))

    def fingerprint(self) -> str:
        b = self.cfg.baselines
        return f"ppl:{b.reference.model_dump_json()}:{b.ppl_prefix_tokens}:{self.cfg.eval.holdout_share}"

    def scores(self, source: str, shard: Path, ids: list[str]) -> np.ndarray:
        return -self.lm.doc_perplexity(_texts(shard), self.cfg.baselines.ppl_prefix_tokens)


class DsirScorer(VariantScorer):
    def prepare(self) -> None:
        from .dsir import DSIRWeights

        def raw():
            for source in self.sources:
                for shard in self.ws.record_shards(source):
                    yield from _texts(shard)

        self.weights = DSIRWeights(self.cfg.baselines.dsir_buckets).fit(reference_texts(self.cfg, self.ws), raw())

    def fingerprint(self) -> str:
        b = self.cfg.baselines
        return f"dsir:{b.reference.model_dump_json()}:{b.dsir_buckets}:{b.seed}:{self.cfg.eval.holdout_share}"

    def scores(self, source: str, shard: Path, ids: list[str]) -> np.ndarray:
        from .dsir import gumbel

        noise = gumbel(id_buckets([f"dsir{self.cfg.baselines.seed}:{i}" for i in ids]))
        return self.weights.log_weights(_texts(shard)) + noise


class DatamanScorer(VariantScorer):
    def prepare(self) -> None:
        from .dataman import load_dataman_scorer

        self.student = load_dataman_scorer(self.ws)

    def fingerprint(self) -> str:
        p = self.ws.root / "baselines" / "dataman" / "student" / "weights.npz"
        return hashlib.sha256(p.read_bytes()).hexdigest()[:16] if p.exists() else "missing"

    def depends(self) -> dict[str, Any]:
        from ..ledger import Ref

        return {"student": Ref("dataman-train", "student")}

    def scores(self, source: str, shard: Path, ids: list[str]) -> np.ndarray:
        return self.student(_texts(shard))


class FullScorer(VariantScorer):
    def scores(self, source: str, shard: Path, ids: list[str]) -> np.ndarray:
        return np.zeros(len(ids))

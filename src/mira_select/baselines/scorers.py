"""The baselines' scorers: random (source-preserving), perplexity, DSIR, DataMan, full (see `variants`)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from ..config import MiraConfig
from ..errors import MiraError
from ..holdout import id_buckets, reference_mask
from ..io.shards import read_sidecar_column, text_batches
from ..variants.base import VariantScorer
from ..workspace import Counts, Workspace


class RandomScorer(VariantScorer):
    unit = "source"

    def fingerprint(self) -> str:
        return f"seed={self.cfg.baselines.seed}"

    def scores(self, source: str, shard: Path, ids: list[str]) -> np.ndarray:
        return id_buckets([f"{self.cfg.baselines.seed}:{i}" for i in ids])


def reference_texts(cfg: MiraConfig, ws: Workspace) -> Iterator[str]:
    """The reference sample's texts, streamed batch by batch (it is a share of whole sources: it grows with the
    corpus, so it is never held in a list); an empty sample is an error once the stream ends."""
    ref = cfg.baselines.reference
    if not ref.sources:
        raise MiraError("the ppl and dsir baselines need a target sample: set baselines.reference.sources "
                        "(sources you consider high quality; a held-out share of them becomes the target)")
    n = 0
    for source in ref.sources:
        for shard in ws.record_shards(source):
            for batch in text_batches(shard, ["id", "text"]):
                mask = reference_mask(cfg, source, id_buckets(batch.column("id").to_pylist()))
                texts = [x for x, m in zip(batch.column("text").to_pylist(), mask) if m]
                n += len(texts)
                yield from texts
    if not n:
        raise MiraError(f"the reference sample of {', '.join(ref.sources)} is empty; raise baselines.reference.share")


class SidecarScorer(VariantScorer):
    """A baseline whose scores are sidecars (baselines/sidecars.py): fitted and scored in ``prepare``, read back
    id-checked in ``scores``."""

    variant = ""

    def model(self) -> dict[str, Any]:
        """What the sidecars depend on besides each record shard (a fitted model file, or an upstream unit)."""
        return {}

    def prepare(self) -> None:
        from .sidecars import BaselineScoreStage

        BaselineScoreStage(self.cfg, self.ws, self.variant, self.sources, self.model()).run()

    def scores(self, source: str, shard: Path, ids: list[str]) -> np.ndarray:
        from .sidecars import sidecar_path

        path = sidecar_path(self.ws, self.variant, source, shard)
        return read_sidecar_column(path, shard, ids, "score", f"mira select --variant {self.variant}").astype(float)

    def fit_model(self, inputs: dict[str, Any], fit: Callable[[], Any]) -> dict[str, Any]:
        """Fit and save the variant's model unless its recorded inputs are unchanged; -> the model file as input."""
        from ..ledger import Ledger
        from .sidecars import model_path, stage_name

        path = model_path(self.ws, self.variant)
        ledger = Ledger(self.ws)
        unit = ledger.unit(stage_name(self.variant), "_model", inputs, [path])
        if not ledger.is_current(unit):
            fit().save(path)
            ledger.record(unit, Counts(1, 1, 0, 0))
        return {"model": path}

    def reference_inputs(self) -> dict[str, Any]:
        from ..ledger import Ref

        ref = self.cfg.baselines.reference
        return {"reference": ref.model_dump(mode="json"), "holdout_share": self.cfg.eval.holdout_share,
                "reference_records": {s: Ref("ingest", f"{s}/_source") for s in ref.sources}}


class PplScorer(SidecarScorer):
    variant = "ppl"

    def model(self) -> dict[str, Any]:
        from .ngram_lm import HashedNgramLM

        return self.fit_model({**self.reference_inputs(), "order": 4, "bits": 22},
                              lambda: HashedNgramLM(order=4, bits=22).fit(reference_texts(self.cfg, self.ws)))

    def fingerprint(self) -> str:
        b = self.cfg.baselines
        return f"ppl:{b.reference.model_dump_json()}:{b.ppl_prefix_tokens}:{self.cfg.eval.holdout_share}"


class DsirScorer(SidecarScorer):
    variant = "dsir"

    def model(self) -> dict[str, Any]:
        from ..ledger import Ref
        from .dsir import DSIRWeights

        def raw():
            for source in self.sources:
                for shard in self.ws.record_shards(source):
                    for batch in text_batches(shard, ["text"]):
                        yield from batch.column("text").to_pylist()

        b = self.cfg.baselines
        inputs = {**self.reference_inputs(), "buckets": b.dsir_buckets,
                  "raw_records": {s: Ref("ingest", f"{s}/_source") for s in self.sources}}
        return {**self.fit_model(inputs, lambda: DSIRWeights(b.dsir_buckets).fit(reference_texts(self.cfg, self.ws),
                                                                                  raw())), "seed": b.seed}

    def fingerprint(self) -> str:
        b = self.cfg.baselines
        return f"dsir:{b.reference.model_dump_json()}:{b.dsir_buckets}:{b.seed}:{self.cfg.eval.holdout_share}"


class DatamanScorer(SidecarScorer):
    variant = "dataman"

    def model(self) -> dict[str, Any]:
        from ..ledger import Ref

        return {"student": Ref("dataman-train", "student")}

    def fingerprint(self) -> str:
        p = self.ws.root / "baselines" / "dataman" / "student" / "weights.npz"
        return hashlib.sha256(p.read_bytes()).hexdigest()[:16] if p.exists() else "missing"

    def depends(self) -> dict[str, Any]:
        return self.model()


class FullScorer(VariantScorer):
    def scores(self, source: str, shard: Path, ids: list[str]) -> np.ndarray:
        return np.zeros(len(ids))

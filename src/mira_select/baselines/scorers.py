"""What each selection variant ranks by. MIRA's variants read the student scores; the baselines compute theirs.

Every scorer gives one number per record of a record shard (higher = keep first) and names its budget unit:
``group`` / ``source`` / ``global``. The budget machinery in `stages/select` is shared, so every variant keeps the
same share of tokens with the same exactness and the same exclusions (contamination, eval holdout, reference).

- ``group`` / ``source`` / ``global``: MIRA score (trimmed mean of reliable anchors), per group / source / corpus.
- ``random``: a seeded uniform number per id, budget per source (source-preserving).
- ``ppl``: minus the perplexity of a record's first ``ppl_prefix_tokens`` tokens under a count-based n-gram LM fit
  on the reference sample (CCNet-style; a neural LM over every token is hours on 2 cores), global.
- ``dsir``: DSIR log importance weight toward the reference sample + Gumbel noise, global.
- ``dataman``: the student of the fixed DataMan-style rubric (its ``overall`` anchor), global threshold.
- ``full``: everything (the budget is forced to 1.0).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from ..config import MiraConfig
from ..errors import MiraError
from ..holdout import id_buckets, reference_mask
from ..io.shards import read_sidecar_column
from ..workspace import Workspace

MIRA_VARIANTS = ("group", "source", "global")
# MIRA-Group with one selection setting changed, for the eval table: length taken out, temperature sampling, and
# the prefilter's drop decisions ignored
MIRA_ABLATIONS = ("group-len", "group-temp", "group-noprefilter")
BASELINES = ("random", "ppl", "dsir", "dataman", "full")
VARIANTS = MIRA_VARIANTS + MIRA_ABLATIONS + BASELINES


class VariantScorer:
    unit = "global"

    def __init__(self, cfg: MiraConfig, ws: Workspace, sources: list[str]):
        self.cfg, self.ws, self.sources = cfg, ws, sources

    def prepare(self) -> None:
        """Fit whatever the variant needs (once per selection)."""

    def fingerprint(self) -> str:
        """The variant's own settings (its part of the selection's inputs)."""
        return ""

    def depends(self) -> dict[str, Any]:
        """Upstream units whose outputs the variant's scores come from (``Ref`` values), beside its settings."""
        return {}

    def scores(self, source: str, shard: Path, ids: list[str]) -> np.ndarray:
        raise NotImplementedError

    def adjust(self, unit: str, score: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """The ranking key inside one budget unit (default: the score itself)."""
        return score

    uses_prefilter = True  # whether the prefilter's drop decisions exclude records


class MiraScorer(VariantScorer):
    def __init__(self, cfg, ws, sources, unit: str, method: str | None = None, length_residual: bool | None = None,
                 uses_prefilter: bool = True):
        super().__init__(cfg, ws, sources)
        self.unit = unit
        b = cfg.budget
        self.method = method or b.method
        self.length_residual = b.length_residual if length_residual is None else length_residual
        self.uses_prefilter = uses_prefilter

    def adjust(self, unit: str, score: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        key = np.asarray(score, dtype=np.float64)
        if self.length_residual and len(key) > 2:
            # residual of score ~ a + b log(tokens): within the unit, length no longer decides the cut
            x = np.log1p(np.asarray(tokens, dtype=np.float64))
            ok = ~np.isnan(key)
            if ok.sum() > 2 and np.ptp(x[ok]) > 0:
                slope = np.polyfit(x[ok], key[ok], 1)[0]
                key = key - slope * x
        if self.method == "temperature":
            # Gumbel top-k = sampling without replacement with probability ~ exp(score / T); seeded per unit
            seed = int.from_bytes(hashlib.sha256(f"{self.cfg.budget.seed}:{unit}".encode()).digest()[:8], "little")
            key = key / self.cfg.budget.temperature + np.random.default_rng(seed).gumbel(size=len(key))
        return key

    def fingerprint(self) -> str:
        return (f"{self.unit}:{self.method}:{self.cfg.budget.temperature}:{self.cfg.budget.seed}:"
                f"{self.length_residual}:{self.uses_prefilter}")

    def depends(self) -> dict[str, Any]:
        from ..ledger import Ref
        from ..stages.score import STAGE

        return {f"{s}/{p.stem}": Ref(STAGE, f"{s}/{p.stem}") for s in self.sources for p in self.ws.record_shards(s)}

    def scores(self, source: str, shard: Path, ids: list[str]) -> np.ndarray:
        from ..stages.score import STAGE, score_path

        path = score_path(self.ws, source, shard)
        if not self.ws.is_done(STAGE, f"{source}/{shard.stem}") or not path.exists():
            raise MiraError(f"source {source!r} shard {shard.name} has no scores; run `mira score` first")
        return read_sidecar_column(path, shard, ids, "score", "mira score").astype(float)


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


def make_scorer(variant: str, cfg: MiraConfig, ws: Workspace, sources: list[str]) -> VariantScorer:
    if variant in MIRA_VARIANTS:
        return MiraScorer(cfg, ws, sources, variant)
    if variant == "group-len":
        return MiraScorer(cfg, ws, sources, "group", length_residual=True)
    if variant == "group-temp":
        return MiraScorer(cfg, ws, sources, "group", method="temperature")
    if variant == "group-noprefilter":
        return MiraScorer(cfg, ws, sources, "group", uses_prefilter=False)
    table = {"random": RandomScorer, "ppl": PplScorer, "dsir": DsirScorer, "dataman": DatamanScorer,
             "full": FullScorer}
    if variant not in table:
        raise MiraError(f"unknown selection variant {variant!r}; choose {', '.join(VARIANTS)}")
    return table[variant](cfg, ws, sources)

"""Selection variants: what each one ranks by. MIRA's variants read the student scores; the baselines compute theirs.

Every scorer gives one number per record of a record shard (higher = keep first) and names its budget unit:
``group`` / ``source`` / ``global``. The budget machinery in `stages/select` is shared, so every variant keeps the
same share of tokens with the same exactness and the same exclusions (contamination, eval holdout, reference).

- ``group`` / ``source`` / ``global``: MIRA score (aggregate.anchored_score), per group / source / corpus.
- ``random``: a seeded uniform number per id, budget per source (source-preserving).
- ``ppl``: minus the perplexity of a record's first ``ppl_prefix_tokens`` tokens under a count-based n-gram LM fit
  on the reference sample (CCNet-style; a neural LM over every token is hours on 2 cores), global.
- ``dsir``: DSIR log importance weight toward the reference sample + Gumbel noise, global.
- ``dataman``: the student of the fixed DataMan-style rubric (its ``overall`` anchor), global threshold.
- ``full``: everything (the budget is forced to 1.0).
"""

from __future__ import annotations

from ..config import MiraConfig
from ..errors import MiraError
from ..workspace import Workspace
from .base import VariantScorer

MIRA_VARIANTS = ("group", "source", "global")
# MIRA-Group with one selection setting changed, for the eval table: length taken out, temperature sampling, and
# the prefilter's drop decisions ignored
MIRA_ABLATIONS = ("group-len", "group-temp", "group-noprefilter")
BASELINES = ("random", "ppl", "dsir", "dataman", "full")
VARIANTS = MIRA_VARIANTS + MIRA_ABLATIONS + BASELINES


def make_scorer(variant: str, cfg: MiraConfig, ws: Workspace, sources: list[str]) -> VariantScorer:
    from ..baselines.scorers import DatamanScorer, DsirScorer, FullScorer, PplScorer, RandomScorer
    from .mira import MiraScorer

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

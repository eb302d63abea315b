"""`mira select`: keep a token budget of the best-scored records, per group (MIRA-Group), per source or globally.

Token-weighted and exact: within each unit (a group, a source, or the whole corpus) records are ranked by score
(ties: corpus order) and kept while the tokens kept *before* a record are below ``fraction × unit tokens``, so a
unit's kept tokens land in [target, target + one record). Per-group budgets are the point of MIRA-Group: a global
cut lets a group whose teacher happens to score generously (or a format the student over-rates) crowd out whole
capabilities, which per-group budgets make impossible by construction.

The same machinery serves the baselines (`variants/` says what each variant ranks by and its unit), and
every variant leaves out the same records: contaminated ones, those the prefilter dropped, the eval holdout and the
baselines' reference sample.
MIRA variants read only score sidecars and record ids (a few bytes per record): memory is a few arrays of corpus
length, never the texts. Writes ``selection/<variant>/summary.json`` and ``kept.parquet`` (kept ids in corpus order, each
with its record shard and row, so the selection's texts can be streamed back: `io.kept`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..variants import VARIANTS, make_scorer
from ..variants.base import VariantScorer
from ..config import MiraConfig
from ..errors import MiraError
from ..holdout import holdout_mask, id_buckets, reference_mask
from ..io.kept import KEPT_SCHEMA, kept_path
from ..io.shards import shard_writer
from ..ledger import Ledger, Ref, Unit
from ..workspace import Counts, Workspace, write_json
from .group import group_members
from .prefilter import excluded_mask

STAGE = "select"
LOGIC_VERSION = 3  # bumped when a selection's outputs change (2: the crossing record kept only when nearer;
#                   3: kept.parquet locates each record: shard, row, n_bytes)
__all__ = ["VARIANTS", "SelectStage", "budget_mask", "select_units"]


@dataclass
class ScoreShard:
    source: str
    path: Path  # the record shard (ids are read from it when writing kept.parquet)
    score: np.ndarray
    tokens: np.ndarray
    excluded: np.ndarray  # never selectable (contaminated, dropped, held out): out of the unit's token total too


@dataclass
class SelectResult:
    variant: str
    summary: dict[str, Any]
    skipped: bool
    seconds: float


def budget_mask(score: np.ndarray, tokens: np.ndarray, fraction: float) -> np.ndarray:
    """Which records of one unit to keep: best first (NaN last, ties in given order) until the budget is reached.

    The record that crosses the budget is kept only if that lands at least as near the budget as stopping before it
    (its midpoint is inside), so a unit misses its budget by at most half a record either way: keeping every crossing
    record overshot small units with long records by up to a whole record, which variants with more units (per
    source) paid more often than one-unit variants, making "equal budgets" unequal."""
    n = len(score)
    keyed = np.where(np.isnan(score), -np.inf, score)
    order = np.lexsort((np.arange(n), -keyed))
    t = tokens[order].astype(np.int64)
    before = np.cumsum(t) - t
    keep = np.zeros(n, dtype=bool)
    keep[order] = before + t / 2 <= fraction * int(tokens.sum())  # a tie keeps it: the budget is met
    return keep


def select_units(shards: list[ScoreShard], unit_of: Callable[[str], str], fraction: float,
                 adjust: Callable[[str, np.ndarray, np.ndarray], np.ndarray] = lambda u, s, t: s
                 ) -> tuple[list[np.ndarray], dict[str, dict[str, Any]]]:
    """Apply the budget per unit; -> (keep mask per shard, per-unit accounting)."""
    members: dict[str, list[int]] = {}
    for i, s in enumerate(shards):
        members.setdefault(unit_of(s.source), []).append(i)
    keep = [np.zeros(len(s.score), dtype=bool) for s in shards]
    units = {}
    for unit, idx in sorted(members.items()):
        score = np.concatenate([shards[i].score for i in idx])
        tokens = np.concatenate([shards[i].tokens for i in idx]).astype(np.int64)
        excluded = np.concatenate([shards[i].excluded for i in idx])
        mask = np.zeros(len(score), dtype=bool)
        mask[~excluded] = budget_mask(adjust(unit, score[~excluded], tokens[~excluded]), tokens[~excluded], fraction)
        tokens = np.where(excluded, 0, tokens)
        offset = 0
        for i in idx:
            keep[i] = mask[offset: offset + len(shards[i].score)]
            offset += len(shards[i].score)
        kept_scores = score[mask]
        units[unit] = {"records": int((~excluded).sum()), "tokens": int(tokens.sum()),
                       "excluded_records": int(excluded.sum()),
                       "target_tokens": fraction * int(tokens.sum()), "kept_records": int(mask.sum()),
                       "kept_tokens": int(tokens[mask].sum()),
                       "threshold": float(np.nanmin(kept_scores)) if len(kept_scores) else None}
    return keep, units


def load_shards(cfg: MiraConfig, ws: Workspace, sources: list[str], scorer: VariantScorer) -> list[ScoreShard]:
    """Per record shard: the variant's scores, token counts, and which records no variant may select."""
    out = []
    for source in sources:
        for shard in ws.record_shards(source):
            t = pq.read_table(shard, columns=["id", "n_tokens"])
            ids = t.column("id").to_pylist()
            buckets = id_buckets(ids)
            excluded = (excluded_mask(ws, source, shard, ids, drops=scorer.uses_prefilter)
                        | holdout_mask(cfg, buckets) | reference_mask(cfg, source, buckets))
            score = np.asarray(scorer.scores(source, shard, ids), dtype=np.float64)
            out.append(ScoreShard(source, shard, score, t.column("n_tokens").to_numpy(zero_copy_only=False),
                                  excluded))
    return out


def selection_dir(ws: Workspace, variant: str) -> Path:
    return ws.root / "selection" / variant


def write_selection(ws: Workspace, name: str, shards: list[ScoreShard], keep: list[np.ndarray],
                    summary: dict[str, Any]) -> None:
    out = selection_dir(ws, name)
    with shard_writer(kept_path(ws, name), KEPT_SCHEMA) as w:
        for s, k in zip(shards, keep):
            rows = np.flatnonzero(k)
            t = pq.read_table(s.path, columns=["id", "n_bytes"]).take(pa.array(rows, pa.int64()))
            w.write_table(pa.table({"id": t.column("id"), "source": pa.array([s.source] * len(rows), pa.string()),
                                    "shard": pa.array([s.path.name] * len(rows), pa.string()),
                                    "row": pa.array(rows, pa.int32()), "score": pa.array(s.score[k], pa.float32()),
                                    "n_tokens": pa.array(s.tokens[k], pa.int32()), "n_bytes": t.column("n_bytes")}))
    write_json(out / "summary.json", summary)


def summarize(name: str, fraction: float, shards: list[ScoreShard], keep: list[np.ndarray],
              units: dict[str, Any], group_of: dict[str, str]) -> dict[str, Any]:
    per_source: dict[str, dict[str, Any]] = {}
    for s, k in zip(shards, keep):
        d = per_source.setdefault(s.source, {"group": group_of[s.source], "records": 0, "tokens": 0,
                                             "kept_records": 0, "kept_tokens": 0, "excluded_records": 0})
        d["records"] += int((~s.excluded).sum())
        d["tokens"] += int(s.tokens[~s.excluded].sum())
        d["excluded_records"] += int(s.excluded.sum())
        d["kept_records"] += int(k.sum())
        d["kept_tokens"] += int(s.tokens[k].sum())
    per_group: dict[str, dict[str, int]] = {}
    for d in per_source.values():
        g = per_group.setdefault(d["group"], {"records": 0, "tokens": 0, "kept_records": 0, "kept_tokens": 0,
                                                "excluded_records": 0})
        for key in g:
            g[key] += d[key]
    totals = {key: sum(d[key] for d in per_source.values())
              for key in ("records", "tokens", "kept_records", "kept_tokens", "excluded_records")}
    return {"variant": name, "fraction": fraction, "units": units, "per_source": per_source,
            "per_group": per_group, "totals": totals}


class SelectStage:
    def __init__(self, cfg: MiraConfig, ws: Workspace | None = None):
        self.cfg = cfg
        self.ws = ws or Workspace(cfg.workspace_path)

    def run(self, variant: str | None = None, fraction: float | None = None, force: bool = False) -> SelectResult:
        start = time.monotonic()
        variant = variant or self.cfg.budget.variant
        fraction = self.cfg.budget.fraction if fraction is None else fraction
        if not 0 < fraction <= 1:
            raise MiraError(f"budget must be in (0, 1], got {fraction}")
        group_of = self.group_of()
        sources = [s for s in self.cfg.source_names if s in group_of]
        scorer = make_scorer(variant, self.cfg, self.ws, sources)
        if variant == "full":
            fraction = 1.0
        unit = self.unit(variant, sources, fraction, scorer)
        ledger = Ledger(self.ws)
        if not force and ledger.is_current(unit):
            return SelectResult(variant, ledger.info(STAGE, variant)["summary"], True, time.monotonic() - start)
        scorer.prepare()
        shards = load_shards(self.cfg, self.ws, sources, scorer)
        unit_of = {"group": group_of.__getitem__, "source": lambda s: s, "global": lambda s: "all"}[scorer.unit]
        keep, units = select_units(shards, unit_of, fraction, scorer.adjust)
        summary = summarize(variant, fraction, shards, keep, units, group_of)
        write_selection(self.ws, variant, shards, keep, summary)
        t = summary["totals"]
        n_in = t["records"] + t["excluded_records"]
        ledger.record(unit, Counts(n_in, t["kept_records"], n_in - t["kept_records"], 0), summary=summary)
        return SelectResult(variant, summary, False, time.monotonic() - start)

    def unit(self, variant: str, sources: list[str], fraction: float, scorer: VariantScorer) -> Unit:
        inputs: dict[str, Any] = {"fraction": fraction, "holdout_share": self.cfg.eval.holdout_share,
                                  "logic": LOGIC_VERSION,
                                  "scorer": scorer.fingerprint(), "scores": scorer.depends(),
                                  "records": {s: Ref("ingest", f"{s}/_source") for s in sources},
                                  "prefilter": Ref("prefilter", "_summary")}  # drops and contamination flags
        return Ledger(self.ws).unit(STAGE, variant, inputs, [selection_dir(self.ws, variant) / "summary.json"])

    def group_of(self) -> dict[str, str]:
        return {s: g for g, members in group_members(self.ws, self.cfg).items() for s in members}

    def units(self) -> list[Unit]:
        group_of = self.group_of()
        sources = [s for s in self.cfg.source_names if s in group_of]
        out = []
        for variant in self.cfg.budget.variants():
            fraction = 1.0 if variant == "full" else self.cfg.budget.fraction
            out.append(self.unit(variant, sources, fraction, make_scorer(variant, self.cfg, self.ws, sources)))
        return out

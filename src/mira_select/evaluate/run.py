"""`mira eval`: is the selection better? Every variant's selection trains the same proxy LMs, which are then
scored on real benchmark solutions (MBPP+ code given its prompt; Spider / BIRD gold SQL given schema + question)
and on a held-out slice of every group (capability coverage). Two proxies:

- ``ngram``: a count-based 4-gram LM (`baselines.ngram_lm`) fit on the WHOLE selection — fast and deterministic;
- ``transformer``: a small byte-level GPT (`evaluate.proxy`) trained on ``eval.train_bytes`` of the selection per
  seed (same bytes, architecture, optimizer and schedule for every variant); mean ± std over ``eval.seeds``.

Losses are mean negative log-likelihood per token (ngram: its tokens; transformer: bytes), lower is better.
Results: ``eval/results.json``, ``eval/table.csv``, ``eval/table.md`` (the shape of the paper's Table 1).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pyarrow.parquet as pq

from ..baselines.ngram_lm import HashedNgramLM
from ..benchmarks import BenchItem, load_benchmarks
from ..config import MiraConfig
from ..errors import MiraError
from ..holdout import holdout_mask, id_buckets
from ..io.kept import iter_kept_texts, keep_smallest, kept_sample, texts_at
from ..ledger import Ledger, Ref, Unit
from ..progress import Reporter
from ..stages.group import group_members
from ..stages.prefilter import excluded_mask
from ..stages.select import SelectStage
from ..workspace import Counts, Workspace, atomic_write_bytes, read_json, write_json
from .proxy import ProxySpec, continuation_loss, train, training_stream

BENCHMARKS = ("mbppplus", "spider", "bird")
LOGIC_VERSION = 2  # 2: training slices and holdout drawn by seeded keys, streamed (not from in-memory lists)


@dataclass
class EvalResult:
    results: dict[str, Any]
    table_md: str
    seconds: float


class EvalRunner:
    def __init__(self, cfg: MiraConfig, ws: Workspace | None = None, reporter: Reporter | None = None,
                 max_items: int = 200, holdout_records: int = 100, holdout_chars: int = 2048):
        self.cfg = cfg
        self.ws = ws or Workspace(cfg.workspace_path)
        self.reporter = reporter or Reporter()
        # capability coverage: the first ``holdout_chars`` characters of up to ``holdout_records`` held-out records per group
        # (seeded order) — enough for a stable mean loss, cheap enough for 3 seeds x 8 variants on 2 cores
        self.max_items, self.holdout_records, self.holdout_chars = max_items, holdout_records, holdout_chars

    @property
    def results_path(self):
        return self.ws.root / "eval" / "results.json"

    def base_key(self, proxies: tuple[str, ...]) -> str:
        """What makes two evaluations comparable row by row: proxies, their settings and the targets."""
        parts = [self.cfg.eval.model_dump(mode="json", exclude={"variants"}), sorted(proxies), self.max_items,
                 self.holdout_records, self.holdout_chars, LOGIC_VERSION]
        return hashlib.sha256(orjson.dumps(parts)).hexdigest()[:16]

    def unit(self, variants: list[str], proxies: tuple[str, ...]) -> Unit:
        """Base key + every variant's selection (a missing selection counts too, so results with a skipped
        variant go stale once that variant can be selected)."""
        return Ledger(self.ws).unit("eval", "results", {"base": self.base_key(proxies),
                                                        "selections": {v: Ref("select", v) for v in variants}},
                                    [self.results_path])

    def units(self) -> list[Unit]:
        return [self.unit(list(self.cfg.eval.variants), ("ngram", "transformer"))]

    def is_current(self, variants: list[str] | None = None,
                   proxies: tuple[str, ...] = ("ngram", "transformer")) -> bool:
        return Ledger(self.ws).is_current(self.unit(variants or list(self.cfg.eval.variants), proxies))

    def targets(self) -> tuple[dict[str, list[BenchItem]], dict[str, list[str]]]:
        items = load_benchmarks(self.cfg.eval.benchmarks)
        rng = np.random.default_rng(0)
        bench = {}
        for name in BENCHMARKS:
            these = [i for i in items if i.benchmark == name]
            if len(these) > self.max_items:
                these = [these[k] for k in sorted(rng.choice(len(these), self.max_items, replace=False))]
            bench[name] = these
        holdout = {group: self.holdout_texts(sources) for group, sources in group_members(self.ws, self.cfg).items()} \
            if self.cfg.eval.holdout_share > 0 else {}
        return bench, {g: v for g, v in holdout.items() if v}

    def holdout_texts(self, sources: list[str]) -> list[str]:
        """Up to ``holdout_records`` held-out, uncontaminated records of a group: those with the smallest seeded
        key (a uniform sample spread over the group's sources), chosen from the id columns in one pass — memory
        for the chosen records only, however large the holdout."""
        keys, sizes, locs = np.zeros(0), np.zeros(0, np.int64), []
        for source in sources:
            for shard in self.ws.record_shards(source):
                ids = pq.read_table(shard, columns=["id"]).column("id").to_pylist()
                m = holdout_mask(self.cfg, id_buckets(ids)) & ~excluded_mask(self.ws, source, shard, ids, drops=False)
                rows = np.flatnonzero(m)
                keys = np.concatenate([keys, id_buckets([f"holdout-order:{ids[r]}" for r in rows])])
                sizes = np.concatenate([sizes, np.ones(len(rows), np.int64)])
                locs += [(shard, int(r), ids[r]) for r in rows]
                keys, sizes, locs = keep_smallest(keys, sizes, locs, self.holdout_records)
        return texts_at(locs, "while the holdout was read", "run `mira eval` again")

    def run(self, variants: list[str] | None = None, proxies: tuple[str, ...] = ("ngram", "transformer")) -> EvalResult:
        start = time.monotonic()
        ec = self.cfg.eval
        variants = variants or list(ec.variants)
        bench, holdout = self.targets()
        spec = ProxySpec(ec.context, ec.layers, ec.width, ec.heads, ec.batch, ec.lr, ec.train_bytes)
        if ec.threads:
            import torch

            torch.set_num_threads(ec.threads)
        results: dict[str, Any] = {"variants": {}, "skipped": {}, "spec": spec.__dict__, "seeds": list(ec.seeds),
                                   "n_items": {k: len(v) for k, v in bench.items()},
                                   "holdout_records": {g: len(v) for g, v in holdout.items()}}
        for variant in variants:
            try:
                sel = SelectStage(self.cfg, self.ws).run(variant)
            except MiraError as exc:  # e.g. dataman before `mira dataman`: reported, not fatal
                results["skipped"][variant] = str(exc)
                continue
            row: dict[str, Any] = {"selection": Ledger(self.ws).fingerprint("select", variant),
                                   "kept_tokens": sel.summary["totals"]["kept_tokens"],
                                   "group_share": {g: d["kept_tokens"] / max(d["tokens"], 1)
                                                   for g, d in sel.summary["per_group"].items()}}
            if "ngram" in proxies:
                with self.reporter.task(f"eval {variant}: n-gram proxy", total=1) as bar:
                    lm = HashedNgramLM(order=ec.ngram_order, bits=22).fit(iter_kept_texts(self.ws, variant))
                    row["ngram"] = self._losses(lambda p, t: lm.sequence_loss(p, t), bench, holdout,
                                                lambda t: lm.sequence_loss("", t))
                    bar.advance()
            if "transformer" in proxies:
                row["transformer"] = self._transformer(variant, spec, bench, holdout)
            results["variants"][variant] = row
            if variant == "full" and "transformer" in proxies and ec.full_double:
                # the unfiltered corpus with twice the training bytes: what the budget costs at equal compute x2
                double = dataclasses.replace(spec, train_bytes=2 * spec.train_bytes)
                results["variants"]["full-2x"] = {**row, "ngram": None,
                                                  "transformer": self._transformer(variant, double, bench, holdout,
                                                                                   label="full-2x")}
        results["seconds"] = time.monotonic() - start
        results["base"] = self.base_key(proxies)
        evaluated = self._merge_previous(results, variants)
        md, csv_text = render_table(results)
        out = self.ws.root / "eval"
        write_json(out / "results.json", results)
        atomic_write_bytes(out / "table.md", md.encode())
        atomic_write_bytes(out / "table.csv", csv_text.encode())
        skipped = sum(v in results["skipped"] for v in evaluated)  # evaluated: every variant asked for, in the table
        Ledger(self.ws).record(self.unit(evaluated, proxies),
                               Counts(len(evaluated), len(evaluated) - skipped, 0, skipped))
        return EvalResult(results, md, results["seconds"])

    def _merge_previous(self, results: dict[str, Any], variants: list[str]) -> list[str]:
        """Rows of an earlier evaluation with the same base key and an unchanged selection stay (so `--variant
        dataman` adds a row instead of erasing the table); rows of the variants just evaluated are replaced.
        -> every variant now in the table."""
        if self.results_path.exists():
            old = read_json(self.results_path)
            if old.get("base") == results["base"]:
                redone = set(variants) | ({"full-2x"} if "full" in variants else set())
                ledger = Ledger(self.ws)
                current = {v: ledger.fingerprint("select", v) for v in old["variants"]}
                current["full-2x"] = current.get("full")
                for v, row in old["variants"].items():  # a row whose selection changed since is dropped, not kept
                    if v not in redone and row.get("selection") is not None and row["selection"] == current[v]:
                        results["variants"][v] = row
                for v, why in old.get("skipped", {}).items():
                    if v not in redone and v not in results["variants"]:
                        results["skipped"][v] = why
                results["seconds_total"] = old.get("seconds_total", old.get("seconds", 0)) + results["seconds"]
        return [v for v in dict.fromkeys([*variants, *results["variants"]]) if v != "full-2x"]

    def _transformer(self, variant: str, spec: ProxySpec, bench, holdout, label: str | None = None) -> dict[str, Any]:
        """Per seed: a seeded random slice of the selection of ``train_bytes`` (read alone, never the whole
        selection), trained on in a seeded order."""
        seeds = self.cfg.eval.seeds
        runs = []
        with self.reporter.task(f"eval {label or variant}: transformer x{len(seeds)}", total=len(seeds)) as bar:
            for seed in seeds:
                texts = kept_sample(self.ws, variant, spec.train_bytes, seed)
                model = train(training_stream(texts, spec.train_bytes, seed), spec, seed)
                runs.append(self._losses(lambda p, t: continuation_loss(model, p, t, spec.context), bench,
                                         holdout, lambda t: continuation_loss(model, "", t, spec.context)))
                bar.advance()
        return {"runs": runs, "train_bytes": spec.train_bytes, **_mean_std(runs)}

    def _losses(self, loss_fn, bench, holdout, plain_fn) -> dict[str, float]:
        out = {}
        for name, items in bench.items():
            nll = n = 0.0
            for item in items:
                a, b = loss_fn(item.prompt, item.solution)
                nll, n = nll + a, n + b
            out[name] = nll / max(n, 1)
        out["macro"] = float(np.mean([out[b] for b in bench]))
        for group, texts in holdout.items():
            nll = n = 0.0
            for text in texts[: self.holdout_records]:
                a, b = plain_fn(text[: self.holdout_chars])
                nll, n = nll + a, n + b
            out[f"holdout:{group}"] = nll / max(n, 1)
        return out


def _mean_std(runs: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    keys = runs[0].keys() if runs else []
    return {"mean": {k: float(np.mean([r[k] for r in runs])) for k in keys},
            "std": {k: float(np.std([r[k] for r in runs], ddof=1)) if len(runs) > 1 else 0.0 for k in keys}}


def render_table(results: dict[str, Any]) -> tuple[str, str]:
    cols = list(BENCHMARKS) + ["macro"]
    lines = ["| variant | kept tokens | proxy | " + " | ".join(cols) + " |", "|---|---|---|" + "---|" * len(cols)]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["variant", "kept_tokens", "proxy", *cols, *[f"{c}_std" for c in cols]])
    for variant, row in results["variants"].items():
        if row.get("ngram"):
            vals = [row["ngram"][c] for c in cols]
            lines.append(f"| {variant} | {row['kept_tokens']:,} | ngram | " + " | ".join(f"{v:.4f}" for v in vals) + " |")
            w.writerow([variant, row["kept_tokens"], "ngram", *vals, *[0.0] * len(cols)])
        if row.get("transformer"):
            m, s = row["transformer"]["mean"], row["transformer"]["std"]
            lines.append(f"| {variant} | {row['kept_tokens']:,} | transformer | "
                         + " | ".join(f"{m[c]:.4f} ± {s[c]:.4f}" for c in cols) + " |")
            w.writerow([variant, row["kept_tokens"], "transformer", *[m[c] for c in cols], *[s[c] for c in cols]])
    return "\n".join(lines) + "\n", buf.getvalue()

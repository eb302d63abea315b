"""`mira run`: every stage in order, each one resumable on its own, with one summary at the end.

The pipeline adds no state of its own: each stage already skips the units whose markers and fingerprints are
current, so running it on a finished workspace does no work and creates no teacher (no model load, no call).
What it adds is order, the ``--from`` / ``--until`` window, and a summary of what this run did and cost, written
to ``run/last.json`` (and appended to ``run/history.jsonl``) so the report can show time per stage.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import orjson

from .config import MiraConfig
from .errors import MiraError
from .progress import Reporter
from .workspace import Workspace, atomic_write_bytes, read_json, write_json

STAGES = ("ingest", "prefilter", "group", "discover", "label", "train", "score", "select", "check", "eval")


@dataclass
class StageReport:
    stage: str
    did_work: bool
    seconds: float
    detail: str
    teacher: dict[str, Any] | None = None  # this run's teacher accounting for the stage (None: no teacher made)


@dataclass
class RunSummary:
    stages: list[StageReport] = field(default_factory=list)
    selection: dict[str, Any] | None = None  # summary.json of the main variant, when selected
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)  # kept share per group of every variant
    check: dict[str, Any] | None = None  # `mira check` figures, when the check ran

    @property
    def did_work(self) -> bool:
        return any(s.did_work for s in self.stages)

    @property
    def teacher_calls(self) -> int:
        return sum((s.teacher or {}).get("calls", 0) for s in self.stages)

    def teacher_totals(self) -> dict[str, int]:
        keys = ("requests", "calls", "cache_hits", "dead", "prompt_tokens", "completion_tokens")
        return {k: sum(int((s.teacher or {}).get(k, 0)) for s in self.stages) for k in keys}

    def to_dict(self) -> dict[str, Any]:
        return {"stages": [asdict(s) for s in self.stages], "teacher": self.teacher_totals(),
                "selection": self.selection, "variants": self.variants, "check": self.check,
                "did_work": self.did_work}


def stage_window(start: str | None, until: str | None, with_eval: bool) -> list[str]:
    last = until or ("eval" if with_eval else "check")
    first = start or "ingest"
    for name in (first, last):
        if name not in STAGES:
            raise MiraError(f"unknown stage {name!r}; stages are {', '.join(STAGES)}")
    i, j = STAGES.index(first), STAGES.index(last)
    if i > j:
        raise MiraError(f"--from {first} comes after --until {last}")
    return list(STAGES[i:j + 1])


class Pipeline:
    def __init__(self, cfg: MiraConfig, reporter: Reporter | None = None, workers: int | None = None,
                 on_stage: Callable[[StageReport], None] | None = None):
        self.cfg = cfg
        self.ws = Workspace(cfg.workspace_path)
        self.reporter = reporter or Reporter()
        self.workers = workers
        self.on_stage = on_stage or (lambda report: None)

    def run(self, start: str | None = None, until: str | None = None, with_eval: bool = False) -> RunSummary:
        summary = RunSummary()
        for name in stage_window(start, until, with_eval):
            t0 = time.monotonic()
            did_work, detail, teacher = getattr(self, f"_{name}")(summary)
            report = StageReport(name, did_work, round(time.monotonic() - t0, 2), detail, teacher)
            summary.stages.append(report)
            self.on_stage(report)
        self._save(summary)
        return summary

    # -- stages: each returns (did_work, one-line detail, teacher accounting or None) --------------------------

    def _ingest(self, summary: RunSummary):
        from .executor import make_executor
        from .stages.ingest import IngestStage

        with make_executor(self.cfg.executor, self.workers) as executor:
            r = IngestStage(self.cfg, executor=executor, reporter=self.reporter).run()
        m = r.manifest
        records = sum(s["records"] for s in m["sources"].values())
        tokens = sum(s["tokens"] for s in m["sources"].values())
        return r.did_work, f"{len(m['sources'])} sources, {records:,} records, {tokens:,} tokens", None

    def _prefilter(self, summary: RunSummary):
        from .executor import make_executor
        from .stages.prefilter import PrefilterStage

        with make_executor(self.cfg.executor, self.workers) as executor:
            r = PrefilterStage(self.cfg, executor=executor, reporter=self.reporter).run()
        t = r.summary["totals"]
        tainted = f"{t.get('contaminated', 0):,} contaminated"
        if not self.cfg.prefilter.enabled:
            return r.shards_done > 0, f"rules and dedup disabled (prefilter.enabled: false); {tainted}", None
        return r.shards_done > 0, (f"{t['dropped']:,} of {t['input']:,} records dropped, "
                                   f"{r.summary['near_dup_clusters']:,} near-duplicate clusters, {tainted}"), None

    def _group(self, summary: RunSummary):
        from .stages.group import GroupStage

        r = GroupStage(self.cfg, reporter=self.reporter).run()
        return not r.skipped, f"{len(r.groups)} groups: " + ", ".join(f"{g} ({len(m)})" for g, m in r.groups.items()), None

    def _discover(self, summary: RunSummary):
        from .stages.discover import DiscoverStage

        stage = DiscoverStage(self.cfg, reporter=self.reporter)
        r = stage.run()
        anchors = ", ".join(f"{g} {len(rb['anchors'])}" for g, rb in r.rubrics.items())
        return len(r.skipped) < len(r.rubrics), f"anchors per group: {anchors}", _acct(stage)

    def _label(self, summary: RunSummary):
        from .stages.label import LabelStage

        stage = LabelStage(self.cfg, reporter=self.reporter)
        r = stage.run()
        did = len(r.skipped) < len(r.counts)
        labeled = sum(c["labeled"] for c in r.counts.values())
        dead = sum(c["dead"] for c in r.counts.values())
        detail = f"{labeled} records labeled, {dead} dead-lettered"
        teacher = _acct(stage)
        if "dataman" in self.cfg.budget.variants():
            from .baselines.dataman import DatamanLabelStage

            dm = DatamanLabelStage(self.cfg, reporter=self.reporter)
            dr = dm.run()
            did |= len(dr.skipped) < len(dr.counts)
            detail += f"; dataman rubric: {sum(c['labeled'] for c in dr.counts.values())} labeled"
            teacher = _merge_acct(teacher, _acct(dm))
        return did, detail, teacher

    def _train(self, summary: RunSummary):
        from .stages.train import TrainStage

        r = TrainStage(self.cfg, reporter=self.reporter).run()
        detail = ", ".join(f"{g} {m['kind']} ρ={_fmt(m['overall']['spearman'])}" for g, m in r.groups.items())
        did = len(r.skipped) < len(r.groups)
        if "dataman" in self.cfg.budget.variants():
            from .baselines.dataman import train_dataman

            m = train_dataman(self.cfg, self.ws)
            did |= not m["skipped"]
            detail += f"; dataman ρ={_fmt(m['overall']['spearman'])}"
        return did, detail, None

    def _score(self, summary: RunSummary):
        from .executor import make_executor
        from .stages.score import ScoreStage

        with make_executor(self.cfg.executor, self.workers) as executor:
            r = ScoreStage(self.cfg, executor=executor, reporter=self.reporter).run()
        return r.shards_done > 0, f"{r.shards_done} shard(s) scored, {r.shards_skipped} already done", None

    def _select(self, summary: RunSummary):
        from .stages.select import SelectStage

        did, parts = False, []
        for variant in self.cfg.budget.variants():
            r = SelectStage(self.cfg, self.ws).run(variant)
            did |= not r.skipped
            t = r.summary["totals"]
            parts.append(f"{variant} {t['kept_tokens'] / max(t['tokens'], 1):.1%}")
            summary.variants[variant] = {g: d["kept_tokens"] / max(d["tokens"], 1)
                                         for g, d in r.summary["per_group"].items()}
            if variant == self.cfg.budget.variant:
                summary.selection = r.summary
        return did, "kept tokens: " + ", ".join(parts), None

    def _check(self, summary: RunSummary):
        from .stages.check import run_scorer_check

        r = run_scorer_check(self.cfg, self.ws, reporter=self.reporter)
        summary.check = r
        acc = ", ".join(f"{f} {v['accuracy']:.2f}" for f, v in r["per_format"].items())
        return not r["skipped"], f"scorer pairwise accuracy on {r['pairs']} held-out twin pairs: {acc}", None

    def _eval(self, summary: RunSummary):
        from .evaluate.run import EvalRunner

        runner = EvalRunner(self.cfg, reporter=self.reporter)
        if runner.is_current():
            return False, f"up to date ({runner.results_path})", None
        r = runner.run()
        return True, f"{len(r.results['variants'])} variants evaluated in {r.seconds:.0f}s", None

    def _save(self, summary: RunSummary) -> None:
        data = {"finished_at": time.time(), **summary.to_dict()}
        write_json(self.ws.root / "run" / "last.json", data)
        history = self.ws.root / "run" / "history.jsonl"
        previous = history.read_bytes() if history.exists() else b""
        atomic_write_bytes(history, previous + orjson.dumps(data) + b"\n")


def last_run(ws: Workspace) -> dict[str, Any] | None:
    path = ws.root / "run" / "last.json"
    return read_json(path) if path.exists() else None


def _acct(stage) -> dict[str, Any] | None:
    teacher = getattr(stage, "_teacher", None)
    return None if teacher is None else asdict(teacher.acct)


def _merge_acct(a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any] | None:
    if a is None or b is None:
        return a or b
    return {k: (a[k] + b[k]) if isinstance(a[k], (int, float)) else a[k] for k in a}


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.2f}"

"""`mira status`: for every stage and unit, is it current, stale (and which input changed) or missing?

The answer comes from the same ledger and the same unit descriptions the stages run on, so what `mira status`
says is what `mira run` will redo. Nothing is computed or loaded beyond digests: no teacher, no model, no executor.
A stage whose units cannot be listed yet (its upstream output does not exist) is reported as waiting on it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from .config import MiraConfig
from .errors import MiraError, WorkspaceError
from .ledger import CURRENT, MISSING, STALE, Ledger, Unit, Verdict
from .pipeline import STAGES
from .workspace import Workspace


@dataclass
class StageStatus:
    stage: str
    units: list[tuple[str, Verdict]] = field(default_factory=list)
    waiting: str = ""  # why the units cannot be listed yet
    upstream: list[str] = field(default_factory=list)  # earlier stages with work to do: this one may change too

    def count(self, state: str) -> int:
        return sum(v.state == state for _, v in self.units)

    @property
    def current(self) -> bool:
        return not self.waiting and all(v.current for _, v in self.units)

    def reasons(self) -> Counter[str]:
        """How many units are stale or missing for each reason (an input name, or the missing-why)."""
        c: Counter[str] = Counter()
        for _, v in self.units:
            if v.state == STALE:
                c.update(v.changed or (v.why,))
            elif v.state == MISSING:
                c[v.why] += 1
        return c


def _units(cfg: MiraConfig, ws: Workspace) -> dict[str, Callable[[], list[Unit]]]:
    from .baselines.dataman import DatamanLabelStage, dataman_train_unit
    from .evaluate.run import EvalRunner
    from .stages.check import check_unit
    from .stages.discover import DiscoverStage
    from .stages.group import GroupStage
    from .stages.ingest import IngestStage
    from .stages.label import LabelStage
    from .stages.prefilter import PrefilterStage
    from .stages.score import ScoreStage
    from .stages.select import SelectStage
    from .stages.train import TrainStage

    dataman = "dataman" in cfg.budget.variants()

    def label() -> list[Unit]:
        return LabelStage(cfg, ws).units() + (DatamanLabelStage(cfg, ws).units() if dataman else [])

    def train() -> list[Unit]:
        return TrainStage(cfg, ws).units() + ([dataman_train_unit(cfg, ws)] if dataman else [])

    return {
        "ingest": lambda: IngestStage(cfg, ws).units(),
        "prefilter": lambda: PrefilterStage(cfg, ws).units(),
        "group": lambda: GroupStage(cfg, ws).units(),
        "discover": lambda: DiscoverStage(cfg, ws).units(),
        "label": label,
        "train": train,
        "score": lambda: ScoreStage(cfg, ws).units(),
        "select": lambda: SelectStage(cfg, ws).units(),
        "check": lambda: [check_unit(cfg, ws, 24, 0)],
        "eval": lambda: EvalRunner(cfg, ws).units(),
    }


def workspace_status(cfg: MiraConfig, stages: tuple[str, ...] = STAGES) -> list[StageStatus]:
    ws = Workspace(cfg.workspace_path)
    ledger = Ledger(ws)
    listers = _units(cfg, ws)
    out: list[StageStatus] = []
    pending: list[str] = []
    redo: set[tuple[str, str]] = set()  # units `mira run` would redo in a way their dependents see: those are stale too
    for name in stages:
        st = StageStatus(name, upstream=list(pending))
        try:
            for u in listers[name]():
                verdict = ledger.verdict(u)
                upstream = [d for d in u.deps if d in redo]
                if verdict.current and upstream:
                    verdict = Verdict(STALE, why=f"upstream {upstream[0][0]} not current")
                if verdict.reaches_dependents(u):
                    redo.add((u.stage, u.key))
                st.units.append((u.key, verdict))
        except (WorkspaceError, MiraError, FileNotFoundError, KeyError) as exc:
            st.units = []
            st.waiting = f"waits on {pending[-1]}" if pending else str(exc).splitlines()[0]
        if not st.current:
            pending.append(name)
        out.append(st)
    return out


__all__ = ["CURRENT", "MISSING", "STALE", "StageStatus", "workspace_status"]

"""Base of the stages whose work units are record shards run on the executor (prefilter, score).

Written once: the executor loop, a completion marker per finished unit (with its fingerprint), progress by records,
and the rule that a unit is current only when its marker, its output and its fingerprint all agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import pyarrow.parquet as pq

from ..config import MiraConfig
from ..executor import Executor, make_executor
from ..progress import Reporter
from ..workspace import Counts, Workspace


class ShardStage:
    stage = "shards"

    def __init__(self, cfg: MiraConfig, ws: Workspace | None = None, executor: Executor | None = None,
                 reporter: Reporter | None = None):
        self.cfg = cfg
        self.ws = ws or Workspace(cfg.workspace_path)
        self.executor = executor
        self.reporter = reporter or Reporter()

    def key(self, unit: Any) -> str:
        return f"{unit.source}/{Path(unit.shard).stem}"

    def current(self, unit: Any) -> bool:
        key = self.key(unit)
        return (self.ws.is_done(self.stage, key) and Path(unit.out).exists()
                and self.ws.read_marker(self.stage, key).get("fingerprint") == unit.fingerprint)

    def run_units(self, fn: Callable[[Any], Counts], todo: Sequence[Any], title: str,
                  marker_info: Callable[[Any], dict[str, Any]] = lambda u: {}) -> int:
        """Run ``fn`` over the units on the executor, marking each done as it finishes. -> records processed."""
        if not todo:
            return 0
        executor = self.executor or make_executor(self.cfg.executor)
        total = sum(pq.ParquetFile(u.shard).metadata.num_rows for u in todo)
        records = 0
        try:
            with self.reporter.task(title, total=total) as bar:
                for unit, counts in executor.map_unordered(fn, todo):
                    self.ws.mark_done(self.stage, self.key(unit), counts, fingerprint=unit.fingerprint,
                                      **marker_info(unit))
                    records += counts.n_in
                    bar.advance(counts.n_in)
        finally:
            if self.executor is None:
                executor.close()
        return records

"""Base of the stages whose work units are record shards run on the executor (prefilter, score).

Written once: the executor loop, a completion record per finished unit (through the ledger, with its named inputs),
progress by records, what a unit needs (a GPU or not, said by the stage) and the removal of temporary files a
killed worker left (a Ray worker killed mid-write leaves one; its re-run writes the unit's output afresh). A work
item carries its ledger ``Unit`` as ``.unit``; whether it is current is the ledger's answer, like every other
stage's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import pyarrow.parquet as pq

from ..config import MiraConfig
from ..executor import Executor, Needs, make_executor
from ..ledger import Ledger
from ..progress import Reporter
from ..workspace import Counts, Workspace, remove_temp_files


class ShardStage:
    stage = "shards"

    def __init__(self, cfg: MiraConfig, ws: Workspace | None = None, executor: Executor | None = None,
                 reporter: Reporter | None = None):
        self.cfg = cfg
        self.ws = ws or Workspace(cfg.workspace_path)
        self.executor = executor
        self.reporter = reporter or Reporter()
        self.ledger = Ledger(self.ws)

    def key(self, source: str, shard: Path) -> str:
        return f"{source}/{Path(shard).stem}"

    def current(self, item: Any) -> bool:
        return self.ledger.is_current(item.unit)

    def run_units(self, fn: Callable[[Any], Counts], todo: Sequence[Any], title: str,
                  marker_info: Callable[[Any], dict[str, Any]] = lambda item: {},
                  needs: Callable[[Any], Needs] | None = None) -> int:
        """Run ``fn`` over the units on the executor, marking each done as it finishes. -> records processed."""
        if not todo:
            return 0
        executor = self.executor or make_executor(self.cfg.executor)
        total = sum(pq.ParquetFile(item.shard).metadata.num_rows for item in todo)
        out_dirs = {p.parent for item in todo for p in item.unit.outputs}
        records = 0
        try:
            remove_temp_files(out_dirs)
            executor.prepare(self.ws.root, [])
            with self.reporter.task(title, total=total) as bar:
                for item, counts in executor.map_unordered(fn, todo, needs):
                    self.ledger.record(item.unit, counts, **marker_info(item))
                    records += counts.n_in
                    bar.advance(counts.n_in)
            remove_temp_files(out_dirs)
        finally:
            if self.executor is None:
                executor.close()
        return records

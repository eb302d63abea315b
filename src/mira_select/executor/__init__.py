"""Executors run a stage's independent work units (one per input file or shard) and hand back results.

The interface is the same whatever runs the work, so stages never know whether they ran in-process, in a local
process pool or on a cluster; completion markers, not the executor, make re-runs skip finished units.
"""

from __future__ import annotations

from ..config import ExecutorConfig
from .base import CPU_ONLY, Executor, Needs
from .local import LocalExecutor


def make_executor(cfg: ExecutorConfig, workers: int | None = None) -> Executor:
    n = workers if workers is not None else cfg.workers
    if cfg.kind == "ray":
        from .ray import RayExecutor

        return RayExecutor(cfg, workers=n)
    return LocalExecutor(workers=n)


__all__ = ["CPU_ONLY", "Executor", "LocalExecutor", "Needs", "make_executor"]

"""Ray backend (optional extra ``mira-select[ray]``): the same work units on a Ray cluster, or a local one.

Units are submitted as Ray tasks with at most ``2 × workers`` in flight (like the local pool), so a long unit list
is never all pickled at once. Workers write their outputs to the shared workspace path; the driver writes the
completion markers, exactly as with the local executor, so outputs and resume behaviour are identical.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence, TypeVar

from ..errors import MiraError
from .base import Executor, bounded_map

T = TypeVar("T")
R = TypeVar("R")


def _import_ray():
    try:
        import ray
    except ImportError:
        raise MiraError("the Ray executor needs the extra: pip install 'mira-select[ray]'") from None
    return ray


class RayExecutor(Executor):
    def __init__(self, workers: int = 0, address: str | None = None):
        import os

        self.workers = workers if workers > 0 else (os.cpu_count() or 1)
        self.address = address
        self._started_here = False
        self._remote: dict[Any, Any] = {}

    def _ensure(self):
        ray = _import_ray()
        if not ray.is_initialized():
            env = {"env_vars": {"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}}
            if self.address:
                ray.init(address=self.address, runtime_env=env, log_to_driver=False)
            else:
                ray.init(num_cpus=self.workers, runtime_env=env, log_to_driver=False, include_dashboard=False)
            self._started_here = True
        return ray

    def map_unordered(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[tuple[T, R]]:
        if not items:
            return
        ray = self._ensure()
        if fn not in self._remote:
            self._remote[fn] = ray.remote(num_cpus=1)(fn)
        remote = self._remote[fn]

        def done(refs: list[Any]):
            finished, _ = ray.wait(refs, num_returns=1)
            return [(ref, ray.get(ref)) for ref in finished]

        yield from bounded_map(items, 2 * self.workers, lambda item: remote.remote(item), done, ray.cancel)

    def close(self) -> None:
        if self._started_here:
            ray = _import_ray()
            ray.shutdown()
            self._started_here = False

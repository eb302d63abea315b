from __future__ import annotations

import logging
import multiprocessing as mp
import os
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Callable, Iterator, Sequence, TypeVar

from .base import Executor, Needs, bounded_map, use_system_allocator

T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger("mira_select.executor")


def _init_worker() -> None:
    # Each worker is one of N processes on N cores: keep libraries from spawning their own thread pools on top.
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    use_system_allocator()


class LocalExecutor(Executor):
    """A process pool on this machine; ``workers=1`` runs in-process (debuggable, no pickling).

    Uses the ``spawn`` start method: forking a process that already holds tokenizer or BLAS thread pools can
    deadlock, and spawn behaves the same on Linux and macOS.
    """

    def __init__(self, workers: int = 0):
        self.workers = workers if workers > 0 else (os.cpu_count() or 1)
        self._pool: ProcessPoolExecutor | None = None
        self._gpu_noted = False

    def map_unordered(self, fn: Callable[[T], R], items: Sequence[T],
                      needs: Callable[[T], Needs] | None = None) -> Iterator[tuple[T, R]]:
        # A GPU request means nothing to a process pool: every process sees every GPU of this machine. Say so once
        # when several processes would each load their model onto it (one process is what a single GPU wants).
        if needs is not None and self.workers > 1 and len(items) > 1 and not self._gpu_noted:
            n_gpu = sum(needs(item).gpu for item in items)
            if n_gpu:
                self._gpu_noted = True
                log.warning(f"note: {n_gpu} unit(s) use a GPU; the local executor does not reserve GPUs, so its "
                            f"{self.workers} worker processes share this machine's GPU(s) (set executor.workers: 1 "
                            "for one model on the GPU at a time, or use executor.kind: ray)")
        if self.workers == 1 or len(items) <= 1:
            for item in items:
                yield item, fn(item)
            return
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=mp.get_context("spawn"), initializer=_init_worker
            )
        pool = self._pool

        def done(futures: list[Future]):
            finished, _ = wait(futures, return_when=FIRST_COMPLETED)
            return [(f, f.result()) for f in finished]

        yield from bounded_map(items, 2 * self.workers, lambda item: pool.submit(fn, item), done,
                               lambda f: f.cancel())

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

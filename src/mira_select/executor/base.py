from __future__ import annotations

import abc
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Executor(abc.ABC):
    """Maps a picklable top-level function over work items; results arrive as units finish (any order)."""

    workers: int

    @abc.abstractmethod
    def map_unordered(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[tuple[T, R]]:
        """Yield ``(item, fn(item))`` as each finishes. An exception in a unit propagates and stops the map."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release workers; executors are reusable until closed."""

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def bounded_map(items: Sequence[T], limit: int, submit: Callable[[T], Any],
                wait_done: Callable[[list[Any]], Iterable[tuple[Any, R]]],
                cancel: Callable[[Any], Any]) -> Iterator[tuple[T, R]]:
    """Keep at most ``limit`` units in flight (a long unit list is never all pickled at once); yield each
    ``(item, result)`` as it finishes; cancel what is still pending if the consumer stops or a unit fails."""
    pending: dict[Any, T] = {}
    it = iter(items)
    try:
        while True:
            while len(pending) < limit:
                try:
                    item = next(it)
                except StopIteration:
                    break
                pending[submit(item)] = item
            if not pending:
                return
            for handle, result in wait_done(list(pending)):
                yield pending.pop(handle), result
    finally:
        for handle in pending:
            cancel(handle)

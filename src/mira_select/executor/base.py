from __future__ import annotations

import abc
from typing import Callable, Iterator, Sequence, TypeVar

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

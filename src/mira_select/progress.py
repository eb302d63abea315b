"""Progress reporting that stages call without knowing about terminals.

Stages report (label, total, advance) through a :class:`Reporter`; the CLI passes a rich-backed one, tests and the
Python API a silent one. Keeping rich out of the stages keeps them usable inside other pipelines.
"""

from __future__ import annotations

import contextlib
from typing import Iterator


class Reporter:
    """Silent reporter; subclasses draw progress bars or log."""

    @contextlib.contextmanager
    def task(self, label: str, total: float | None) -> Iterator["TaskHandle"]:
        yield TaskHandle()

    def info(self, message: str) -> None:
        pass


class TaskHandle:
    def advance(self, amount: float = 1) -> None:
        pass


class RichReporter(Reporter):
    def __init__(self, console=None):
        from rich.console import Console

        self.console = console or Console(stderr=True)

    @contextlib.contextmanager
    def task(self, label: str, total: float | None) -> Iterator[TaskHandle]:
        from rich.progress import (
            BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn,
        )

        columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TimeRemainingColumn()]
        with Progress(*columns, console=self.console, transient=False) as progress:
            task_id = progress.add_task(label, total=total)
            yield _RichHandle(progress, task_id)

    def info(self, message: str) -> None:
        self.console.print(message)


class _RichHandle(TaskHandle):
    def __init__(self, progress, task_id):
        self._progress = progress
        self._task_id = task_id

    def advance(self, amount: float = 1) -> None:
        self._progress.advance(self._task_id, amount)

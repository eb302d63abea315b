"""The student protocol: learn a group's teacher anchor scores from few labels, then score every record cheaply.

Every tier exposes the same four calls, so `mira train` / `mira score` and the Python API never know which tier
runs. Students predict the teacher's continuous (expected-value) scores, clipped to the 0-10 scale.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import MiraError
from ..workspace import atomic_path, write_json

META_FILE = "student.json"
WEIGHTS_FILE = "weights.npz"


class Student(abc.ABC):
    kind: ClassVar[str]

    @classmethod
    def needs_gpu(cls, params: dict[str, Any]) -> bool:
        """Whether predicting with these params wants a GPU: what `mira score` tells the executor per unit, read
        from student.json without loading the model (a Ray unit then reserves ``executor.gpus_per_task``)."""
        return False

    def __init__(self, anchors: list[str], **params: Any):
        self.anchors = list(anchors)
        self.params = params

    @abc.abstractmethod
    def fit(self, texts: list[str], y: np.ndarray, sources: list[str]) -> "Student":
        """y: float array [n, len(anchors)] of teacher scores."""

    @abc.abstractmethod
    def predict(self, texts: list[str]) -> np.ndarray:
        """-> float32 [n, len(anchors)], clipped to [0, 10]."""

    @abc.abstractmethod
    def _weights(self) -> dict[str, np.ndarray]:
        """Arrays that, with ``params``, reproduce the fitted model."""

    @abc.abstractmethod
    def _set_weights(self, arrays: dict[str, np.ndarray]) -> None: ...

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        with atomic_path(directory / WEIGHTS_FILE) as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **self._weights())
        write_json(directory / META_FILE, {"kind": self.kind, "anchors": self.anchors, "params": self.params})

    def attach(self, directory: Path) -> None:
        """Called after loading; tiers that keep files beside the arrays (the generative LM) find them here."""


def check_targets(texts: list[str], y: np.ndarray, anchors: list[str]) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 2 or y.shape != (len(texts), len(anchors)):
        raise MiraError(f"student targets have shape {y.shape}, expected ({len(texts)}, {len(anchors)})")
    if len(texts) < 2:
        raise MiraError(f"a student needs at least 2 labeled records, got {len(texts)}")
    if not np.isfinite(y).all():
        raise MiraError("student targets contain NaN or infinite scores")
    return y

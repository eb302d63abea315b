"""`blend`: the mean of several fitted tiers' anchor scores (by default hashed n-grams + boosted trees).

The tiers see different things: ``hashed_linear`` reads every word of the record, ``embed_trees`` the head's
meaning and the structural signals through thresholds. Their errors are partly independent, so their mean agrees
with the teacher better than either where both are good (demo, cross-fitted, qa: .68 / .73 → .75; code .53 / .59 →
.60), and `mira train` keeps it only where it wins on validation. Members are built by the registry (this module
imports no tier), so a blend is saved and loaded like any student: its arrays are its members', prefixed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Student, check_targets
from .ridge import clip_scores
from .structure import remembered

_SEP = "__"


class BlendStudent(Student):
    kind = "blend"

    def __init__(self, anchors: list[str], members: list[list[Any]], parts: list[Student] | None = None,
                 **extra: Any):
        """``members``: [[kind, params], ...] (saved in student.json); ``parts``: those students, unfitted, as
        `registry.make_student` builds them."""
        super().__init__(anchors, members=[[k, dict(p)] for k, p in members], **extra)
        if parts is None or len(parts) != len(members):
            raise ValueError("a blend is built by students.registry.make_student (it makes the member students)")
        self.parts = parts

    def fit(self, texts: list[str], y: np.ndarray, sources: list[str]) -> "BlendStudent":
        check_targets(texts, y, self.anchors)
        with remembered():
            for part in self.parts:
                part.fit(texts, y, sources)
        return self

    def predict(self, texts: list[str]) -> np.ndarray:
        with remembered():  # members that read the structural signals compute them once per batch, not per member
            return clip_scores(np.mean([part.predict(texts) for part in self.parts], axis=0))

    def _weights(self) -> dict[str, np.ndarray]:
        return {f"m{i}{_SEP}{k}": v for i, part in enumerate(self.parts) for k, v in part._weights().items()}

    def _set_weights(self, arrays: dict[str, np.ndarray]) -> None:
        for i, part in enumerate(self.parts):
            prefix = f"m{i}{_SEP}"
            part._set_weights({k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)})

"""`generative` (GPU tier, ``mira-select[gpu]``): the paper's student, a small LM fine-tuned to emit the teacher's
anchor JSON. It needs a CUDA GPU; on a CPU-only machine it refuses with the reason instead of running for days.

Not implemented beyond that refusal yet: the CPU tiers are the tested path (see the issue notes).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import MiraError
from .base import Student


def _require_gpu() -> None:
    try:
        import torch
    except ImportError:
        raise MiraError("the generative student needs a CUDA GPU and the [gpu] extra "
                        "(pip install 'mira-select[gpu]'); use student.kind hashed_linear or embed_heads") from None
    if not torch.cuda.is_available():
        raise MiraError("the generative student needs a CUDA GPU and none is visible on this machine; "
                        "use student.kind hashed_linear or embed_heads (CPU)")


class GenerativeStudent(Student):
    kind = "generative"

    def __init__(self, anchors: list[str], **params: Any):
        super().__init__(anchors, **params)

    def fit(self, texts: list[str], y: np.ndarray, sources: list[str]) -> "GenerativeStudent":
        _require_gpu()
        raise MiraError("the generative student is not available in this release; use hashed_linear or "
                        "embed_heads")

    def predict(self, texts: list[str]) -> np.ndarray:
        _require_gpu()
        raise MiraError("the generative student is not available in this release")

    def _weights(self) -> dict[str, np.ndarray]:
        return {}

    def _set_weights(self, arrays: dict[str, np.ndarray]) -> None:
        pass

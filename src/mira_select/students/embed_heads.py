"""`embed_heads`: the packaged frozen embedder → ridge heads, one per anchor (FineWeb-Edu-classifier style).

The embedding carries semantics the n-gram tier cannot (paraphrase, topic), at the cost of seeing only the head
of each record (the embedder's ``max_chars``). A log-length feature is appended for the same reason as in
``hashed_linear``. With ``structure`` the structural signals of students/structure.py are appended too
(standardized on the training labels): an embedding of a shuffled or spam-spliced file sits next to the file's
own, while its parse-error share, duplicate lines and compressibility do not.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..embed import get_embedder
from .base import Student, check_targets
from .ridge import clip_scores, fit_ridge
from .structure import StructureScaler


def embedding_and_length(embedder: str, texts: list[str], length_divisor: float = 1.0) -> np.ndarray:
    """[n, dim + 1]: the packaged embedder's vectors and the log character length (an embedding of the head cannot
    see how long a record is). The ridge heads divide the length down to the embedding's range; trees need no scale."""
    emb = get_embedder(embedder).encode(texts)
    length = np.log1p(np.asarray([len(t) for t in texts], dtype=np.float32))[:, None] / length_divisor
    return np.hstack([emb, length])


class EmbedHeadsStudent(Student):
    kind = "embed_heads"

    def __init__(self, anchors: list[str], embedder: str = "minilm-static", structure: bool = False,
                 **extra: Any):
        super().__init__(anchors, embedder=embedder, structure=structure, **extra)
        self._coef: np.ndarray | None = None
        self._intercept = np.zeros(len(anchors), np.float32)
        self._scaler = StructureScaler(structure)

    def features(self, texts: list[str], structure: np.ndarray | None = None) -> np.ndarray:
        """Embedding, log length and (standardized) structural signals; ``structure``: that block, already made."""
        block = self._scaler.transform(texts) if structure is None else structure
        return np.hstack([embedding_and_length(self.params["embedder"], texts, 10.0), block]).astype(np.float32)

    def fit(self, texts: list[str], y: np.ndarray, sources: list[str]) -> "EmbedHeadsStudent":
        y = check_targets(texts, y, self.anchors)
        coef, self._intercept, alpha = fit_ridge(self.features(texts, self._scaler.fit(texts)), y)
        self._coef = coef
        self.params["alpha"] = alpha.tolist()
        return self

    def predict(self, texts: list[str]) -> np.ndarray:
        if self._coef is None:
            raise RuntimeError("student is not fitted")
        return clip_scores(self.features(texts) @ self._coef.T + self._intercept)

    def _weights(self) -> dict[str, np.ndarray]:
        return {"coef": self._coef, "intercept": self._intercept, **self._scaler.weights()}

    def _set_weights(self, arrays: dict[str, np.ndarray]) -> None:
        self._coef = arrays["coef"].astype(np.float32)
        self._intercept = arrays["intercept"].astype(np.float32)
        self._scaler.set_weights(arrays)

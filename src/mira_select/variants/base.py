"""The interface of a selection variant: one number per record (higher = keep first) and a budget unit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..config import MiraConfig
from ..workspace import Workspace


class VariantScorer:
    unit = "global"

    def __init__(self, cfg: MiraConfig, ws: Workspace, sources: list[str]):
        self.cfg, self.ws, self.sources = cfg, ws, sources

    def prepare(self) -> None:
        """Fit whatever the variant needs (once per selection)."""

    def fingerprint(self) -> str:
        """The variant's own settings (its part of the selection's inputs)."""
        return ""

    def depends(self) -> dict[str, Any]:
        """Upstream units whose outputs the variant's scores come from (``Ref`` values), beside its settings."""
        return {}

    def scores(self, source: str, shard: Path, ids: list[str]) -> np.ndarray:
        raise NotImplementedError

    def adjust(self, unit: str, score: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """The ranking key inside one budget unit (default: the score itself)."""
        return score

    uses_prefilter = True  # whether the prefilter's drop decisions exclude records

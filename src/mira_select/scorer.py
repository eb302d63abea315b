"""Python API: score texts with a finished workspace's students, outside the CLI.

    from mira_select import Scorer
    scorer = Scorer.load("ws")
    scores = scorer.score(texts, sources)           # aggregated score per text (aggregate.anchored_score)
    detail = scorer.score_anchors(texts, sources)   # per text: group and every anchor's score

A text's source decides its group (groups.json) and which anchors count (the source's reliability mask). Texts
from a source the workspace never saw can name a group instead (``groups=``); they get the group's anchors that
are reliable on the pooled validation set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .aggregate import Thresholds, anchored_score
from .errors import MiraError
from .stages.group import load_groups
from .stages.train import load_student_bundle
from .workspace import Workspace, read_json


class Scorer:
    def __init__(self, ws: Workspace, trim: float = 0.1):
        self.ws = ws
        self.trim = trim
        self.group_of = load_groups(ws)["assignments"]
        self._bundles: dict[str, tuple[Any, dict[str, Any]]] = {}

    @classmethod
    def load(cls, workspace: str | Path, trim: float | None = None) -> "Scorer":
        ws = Workspace(workspace)
        if trim is None:
            cfg_path = ws.config_path
            trim = 0.1
            if cfg_path.exists():
                import yaml

                trim = float((yaml.safe_load(cfg_path.read_text()) or {}).get("student", {}).get("trim", 0.1))
        return cls(ws, trim)

    def _bundle(self, group: str):
        if group not in self._bundles:
            self._bundles[group] = load_student_bundle(self.ws, group)
        return self._bundles[group]

    def _pooled_anchors(self, group: str) -> tuple[list[str], dict[str, float]]:
        """For texts of unseen sources: the anchors reliable on the group's pooled validation, and the others at
        the teacher's mean over the whole group (when the workspace fills unreliable anchors)."""
        metrics = read_json(self.ws.root / "students" / group / "metrics.json")
        th = Thresholds(**metrics["thresholds"])
        keep = [a for a, m in metrics["pooled"].items() if th.reliable(m)]
        level = metrics.get("teacher_mean") or {}
        if not keep or not level:
            return keep or list(metrics["anchors"]), {}
        return keep, {a: level[a] for a in metrics["anchors"] if a not in keep}

    def _resolve(self, sources: list[str | None], groups: list[str | None] | None) -> list[tuple[str, str | None]]:
        out = []
        for i, source in enumerate(sources):
            group = groups[i] if groups is not None else None
            if group is None:
                if source not in self.group_of:
                    raise MiraError(f"text {i}: source {source!r} is not in this workspace's groups.json; "
                                    f"pass groups= (one of {', '.join(sorted(set(self.group_of.values())))})")
                group = self.group_of[source]
            out.append((group, source))
        return out

    def score_anchors(self, texts: list[str], sources: list[str | None],
                      groups: list[str | None] | None = None) -> list[dict[str, Any]]:
        if len(texts) != len(sources) or (groups is not None and len(groups) != len(texts)):
            raise MiraError("texts, sources (and groups) must have the same length")
        resolved = self._resolve(sources, groups)
        out: list[dict[str, Any]] = [{} for _ in texts]
        for group in sorted({g for g, _ in resolved}):
            idx = [i for i, (g, _) in enumerate(resolved) if g == group]
            student, mask = self._bundle(group)
            y = student.predict([texts[i] for i in idx])
            for row, i in enumerate(idx):
                source = resolved[i][1]
                if source in mask:
                    reliable, fill = mask[source]["anchors"], mask[source].get("fill", {})
                else:
                    reliable, fill = self._pooled_anchors(group)
                cols = [student.anchors.index(a) for a in reliable]
                score = anchored_score(y[row:row + 1], cols, list(fill.values()), self.trim)[0]
                out[i] = {"group": group, "score": float(score),
                          "anchors": dict(zip(student.anchors, map(float, y[row]))), "reliable": list(reliable)}
        return out

    def score(self, texts: list[str], sources: list[str | None], groups: list[str | None] | None = None
              ) -> np.ndarray:
        return np.asarray([d["score"] for d in self.score_anchors(texts, sources, groups)], dtype=np.float32)

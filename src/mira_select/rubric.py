"""A group's rubric as the later stages see it: the anchors discover wrote, and the subset label kept active.

Discover writes candidates (target + spares) to ``rubrics/<group>.json``; label scores all of them and records in
``labels/<group>/anchors.json`` which ones discriminate on the labeled sample. Train, score and the report use the
active anchors; a workspace labeled before that file existed uses every rubric anchor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .teacher.types import Anchor
from .workspace import Workspace, read_json


def load_rubric(ws: Workspace, group: str) -> dict[str, Any]:
    return read_json(ws.root / "rubrics" / f"{group}.json")


def anchors_of(rubric: dict[str, Any]) -> list[Anchor]:
    out = []
    for a in rubric["anchors"]:
        lv = a.get("levels") or {}
        levels = tuple(lv[k] for k in ("0", "5", "10")) if all(k in lv for k in ("0", "5", "10")) else ()
        out.append(Anchor(a["id"], a["name"], a["definition"], a.get("part", "combined"), levels))
    return out


def anchor_choice_path(labels_dir: Path) -> Path:
    return labels_dir / "anchors.json"


def active_anchor_ids(ws: Workspace, group: str) -> list[str]:
    """Ids of the anchors the student learns and the score aggregates, in rubric order."""
    path = anchor_choice_path(ws.root / "labels" / group)
    if path.exists():
        return list(read_json(path)["active"])
    return [a["id"] for a in load_rubric(ws, group)["anchors"]]

"""Student tiers by name, and loading a saved student: the one place that knows every tier (tiers import only
``students.base``, so the package has no import cycle)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson

from ..errors import MiraError
from .base import META_FILE, WEIGHTS_FILE, Student


def student_class(kind: str) -> type[Student]:
    if kind == "hashed_linear":
        from .hashed_linear import HashedLinearStudent as cls
    elif kind == "embed_heads":
        from .embed_heads import EmbedHeadsStudent as cls
    elif kind == "embed_trees":
        from .embed_trees import EmbedTreesStudent as cls
    elif kind == "blend":
        from .blend import BlendStudent as cls
    elif kind == "generative":
        from .generative import GenerativeStudent as cls
    else:
        raise MiraError(f"unknown student kind {kind!r}; choose hashed_linear, embed_heads, embed_trees, blend or "
                        "generative")
    return cls


def make_student(kind: str, anchors: list[str], **params: Any) -> Student:
    if kind == "blend":  # its members are students too: built here, where every tier is known
        members = params.get("members") or []
        if not members or any(m[0] == "blend" for m in members):
            raise MiraError("a blend student needs members: [[kind, params], ...] of other tiers")
        params = {**params, "parts": [make_student(k, anchors, **p) for k, p in members]}
    return student_class(kind)(anchors, **params)


def saved_student_needs_gpu(directory: Path) -> bool:
    """Whether the student saved in ``directory`` scores on a GPU (from student.json; nothing is loaded)."""
    try:
        meta = orjson.loads((directory / META_FILE).read_bytes())
    except FileNotFoundError:
        raise MiraError(f"no trained student in {directory}; run `mira train` first") from None
    return _needs_gpu(meta["kind"], meta["params"])


def _needs_gpu(kind: str, params: dict[str, Any]) -> bool:
    if kind == "blend":
        return any(_needs_gpu(k, p) for k, p in params.get("members", []))
    return student_class(kind).needs_gpu(params)


def load_student(directory: Path) -> Student:
    """A student saved by ``Student.save``: its tier rebuilt from student.json, its arrays from weights.npz."""
    try:
        meta = orjson.loads((directory / META_FILE).read_bytes())
        arrays = dict(np.load(directory / WEIGHTS_FILE, allow_pickle=False))
    except FileNotFoundError:
        raise MiraError(f"no trained student in {directory}; run `mira train` first") from None
    student = make_student(meta["kind"], meta["anchors"], **meta["params"])
    student._set_weights(arrays)
    student.attach(directory)
    return student

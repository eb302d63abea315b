"""`mira train`: per group, fit the configured student on the teacher's train labels and judge it on validation.

Writes ``students/<group>/`` (model files), ``metrics.json`` (MAE and Spearman per source × anchor, pooled per
anchor, overall; for every tier tried) and ``mask.json`` (the reliability mask ``mira score`` applies). With
``student.kind: auto`` both CPU tiers are fitted and the one that agrees better with the teacher on validation
(overall Spearman of the mean anchor score) is kept, per group.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..aggregate import Thresholds, fidelity, reliability_mask
from ..config import MiraConfig
from ..errors import MiraError
from ..ledger import Ledger, Ref, Unit
from ..progress import Reporter
from ..rubric import active_anchor_ids
from ..students.base import Student
from ..students.registry import load_student, make_student
from ..workspace import Counts, Workspace, read_json, write_json
from .group import group_members

STAGE = "train"
# auto fits every CPU tier and keeps the one closest to the teacher on validation: (student kind, its parameters)
CPU_TIERS: dict[str, tuple[str, dict[str, Any]]] = {
    "hashed_linear": ("hashed_linear", {}),
    "hashed_linear+structure": ("hashed_linear", {"structure": True}),
    "embed_heads": ("embed_heads", {}),
}


@dataclass
class TrainResult:
    groups: dict[str, dict[str, Any]]
    skipped: list[str]
    seconds: float


@dataclass
class LabeledSet:
    ids: list[str]
    sources: list[str]
    texts: list[str]
    y: np.ndarray


def load_labeled(ws: Workspace, group: str, split: str, anchors: list[str], path: Path | None = None) -> LabeledSet:
    """Teacher labels of one split joined with their record texts (labels keep ids, not texts)."""
    path = path or ws.root / "labels" / group / f"{split}.parquet"
    if not path.exists():
        raise MiraError(f"no labels for group {group!r} ({path}); run `mira label` first")
    labels = pq.read_table(path)
    ids = labels.column("id").to_pylist()
    sources = labels.column("source").to_pylist()
    text_of: dict[str, str] = {}
    if "twin_text" in labels.column_names:  # corrupted twins are not in records/: their text travels with the label
        text_of.update((i, t) for i, t in zip(ids, labels.column("twin_text").to_pylist()) if t)
    wanted = set(ids)
    for source in sorted(set(sources)):
        for shard in ws.record_shards(source):
            t = pq.read_table(shard, columns=["id", "text"])
            t = t.filter(pc.is_in(t.column("id"), value_set=labels.column("id")))
            text_of.update(zip(t.column("id").to_pylist(), t.column("text").to_pylist()))
    missing = wanted - text_of.keys()
    if missing:
        raise MiraError(f"{len(missing)} labeled record(s) of group {group!r} are not in records/ "
                        f"(e.g. {sorted(missing)[0]!r}); was the corpus re-ingested after labeling?")
    y = np.stack([labels.column(f"score:{a}").to_numpy() for a in anchors], axis=1).astype(np.float64) \
        if ids else np.zeros((0, len(anchors)))
    return LabeledSet(ids, sources, [text_of[i] for i in ids], y)


def student_dir(ws: Workspace, group: str):
    return ws.root / "students" / group


def load_student_bundle(ws: Workspace, group: str) -> tuple[Student, dict[str, Any]]:
    """The fitted student of a group and its mask (what scoring needs)."""
    d = student_dir(ws, group)
    return load_student(d), read_json(d / "mask.json")


class TrainStage:
    def __init__(self, cfg: MiraConfig, ws: Workspace | None = None, reporter: Reporter | None = None):
        self.cfg = cfg
        self.ws = ws or Workspace(cfg.workspace_path)
        self.reporter = reporter or Reporter()
        self.ledger = Ledger(self.ws)

    def run(self, force: bool = False) -> TrainResult:
        start = time.monotonic()
        out, skipped = {}, []
        for group, sources in group_members(self.ws, self.cfg).items():
            unit = self.unit(group)
            if not force and self.ledger.is_current(unit):
                out[group] = read_json(student_dir(self.ws, group) / "metrics.json")
                skipped.append(group)
                continue
            out[group] = self._train_group(group, sources, unit)
        return TrainResult(out, skipped, time.monotonic() - start)

    def unit(self, group: str) -> Unit:
        """The student config and the label files (anchors.json: which anchors are active)."""
        labels = self.ws.root / "labels" / group
        d = student_dir(self.ws, group)
        return self.ledger.unit(STAGE, group, {"config.student": self.cfg.student.model_dump(mode="json"),
                                               "labels": Ref("label", f"{group}/_final"),
                                               **{f"labels/{n}": labels / n for n in ("train.parquet", "val.parquet",
                                                                                      "anchors.json")}},
                                [d / "metrics.json", d / "mask.json"])

    def units(self) -> list[Unit]:
        return [self.unit(g) for g in group_members(self.ws, self.cfg)]

    def _train_group(self, group: str, sources: list[str], unit: Unit) -> dict[str, Any]:
        sc = self.cfg.student
        anchors = active_anchor_ids(self.ws, group)
        train = load_labeled(self.ws, group, "train", anchors)
        val = load_labeled(self.ws, group, "val", anchors)
        if len(train.ids) < 2:
            raise MiraError(f"group {group!r} has {len(train.ids)} training label(s); a student needs at least 2 "
                            "(raise label.records_per_group or check labels/<group>/dead_letter.jsonl)")
        kinds = list(CPU_TIERS) if sc.kind == "auto" else [sc.kind]
        tiers: dict[str, dict[str, Any]] = {}
        fitted: dict[str, Student] = {}
        for kind in kinds:
            with self.reporter.task(f"train {group}: {kind} on {len(train.ids)} labels", total=1) as bar:
                t0 = time.monotonic()
                base, preset = CPU_TIERS.get(kind, (kind, {}))
                student = make_student(base, anchors, **{**preset, **sc.params.get(base, {})})
                student.fit(train.texts, train.y, train.sources)
                fit_s = time.monotonic() - t0
                pred = student.predict(val.texts) if val.ids else np.zeros((0, len(anchors)), np.float32)
                tiers[kind] = {"fit_s": fit_s, **fidelity(pred, val.y, val.sources, anchors)}
                fitted[kind] = student
                bar.advance()
        chosen = max(kinds, key=lambda k: _rank_value(tiers[k]["overall"]["spearman"]))
        th = Thresholds(sc.max_mae, sc.min_spearman, sc.min_n)
        mask = reliability_mask(tiers[chosen], sources, anchors, th)
        d = student_dir(self.ws, group)
        fitted[chosen].save(d)
        metrics = {"group": group, "kind": chosen, "anchors": anchors, "n_train": len(train.ids),
                   "n_val": len(val.ids), "thresholds": th.__dict__, **tiers[chosen],
                   "tiers": {k: {"overall": v["overall"], "fit_s": v["fit_s"]} for k, v in tiers.items()}}
        write_json(d / "metrics.json", metrics)
        write_json(d / "mask.json", mask)
        n = len(train.ids) + len(val.ids)
        self.ledger.record(unit, Counts(n, n, 0, 0), kind=chosen)
        return metrics


def _rank_value(rho: float | None) -> float:
    return -2.0 if rho is None else rho

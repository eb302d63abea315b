"""The DataMan-style baseline: one fixed, general rubric for the whole corpus (DataMan's 14 quality criteria and an
overall score), labeled by the same teacher on as many records as MIRA labels, with the record cut to a short
fixed context as in the original, distilled into the same student tier, and used with one global threshold.

It isolates what MIRA adds: same teacher, same label budget, same student — only the rubric is fixed instead of
discovered per group, and the budget is global instead of per group. The criteria are paraphrased here from the
DataMan paper's list (Peng et al., 2025); ``overall`` is what the selection ranks by.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..config import LabelConfig, MiraConfig
from ..errors import MiraError
from ..ledger import Ledger, Ref, Unit
from ..progress import Reporter
from ..sampling import SampledRecord, round_robin_sample
from ..stages.label import LabelItem, LabelStage
from ..teacher.client import Teacher
from ..teacher.prompts import GENERAL, prompt_version
from ..students.registry import load_student, make_student
from ..teacher.types import Anchor, TeacherResult
from ..workspace import Counts, Workspace, read_json, write_json

CRITERIA = [
    ("accuracy", "Accuracy", "facts, code and statements are correct and free of errors"),
    ("coherence", "Coherence", "the content flows logically; parts connect and build on each other"),
    ("language_consistency", "Language consistency", "one language and register is used consistently"),
    ("semantic_density", "Semantic density", "much information per token; little filler or repetition"),
    ("knowledge_novelty", "Knowledge novelty", "contains knowledge or ideas that are not commonplace"),
    ("topic_focus", "Topic focus", "stays on one clear topic without drifting"),
    ("creativity", "Creativity", "shows original expression, problem solving or perspective"),
    ("professionalism", "Professionalism", "written with domain expertise and professional care"),
    ("style_consistency", "Style consistency", "formatting, naming and tone are uniform throughout"),
    ("grammatical_diversity", "Grammatical diversity", "varied sentence and construct structure, not templated"),
    ("structural_standardization", "Structural standardization", "follows the standard structure of its kind"),
    ("originality", "Originality", "not duplicated boilerplate, spam or machine-generated filler"),
    ("sensitivity", "Sensitivity", "free of harmful, private or inappropriate content (10 = fully safe)"),
    ("overall", "Overall score", "overall value of the record as training data for a language model"),
]
GROUP = "all"


def dataman_rubric() -> dict[str, Any]:
    return {"group": GROUP, "with_parts": False, "teacher": None,
            "anchors": [{"id": cid, "name": name, "definition": d, "part": "combined", "cluster_size": 0}
                        for cid, name, d in CRITERIA]}


def dataman_dir(ws: Workspace) -> Path:
    return ws.root / "baselines" / "dataman"


class DatamanLabelStage(LabelStage):
    """Same labeling machinery; fixed rubric, one corpus-wide group, short record cut, general prompt family."""

    stage = "dataman-label"

    def teacher_config(self):
        return self.cfg.teacher.model_copy(update={"max_record_tokens": self.cfg.baselines.dataman_max_record_tokens})

    # One corpus-wide group: MIRA's per-group label settings (label.groups) do not apply to it.
    def settings(self, group: str) -> LabelConfig:
        return self.cfg.label

    def record_cut(self, group: str) -> int:
        return self.teacher_config().max_record_tokens

    def check_overrides(self) -> None:
        pass

    def groups(self) -> dict[str, list[str]]:
        from ..stages.group import group_members

        members = group_members(self.ws, self.cfg)
        return {GROUP: [s for sources in members.values() for s in sources]}

    def rubric(self, group: str) -> dict[str, Any]:
        return dataman_rubric()

    def records_per_group(self, group: str) -> int:
        # as many teacher labels as MIRA spends over all its groups, unless set
        from ..stages.group import load_groups

        if self.cfg.baselines.dataman_records:
            return self.cfg.baselines.dataman_records
        return self.cfg.label.records_per_group * len(load_groups(self.ws)["groups"])

    def labels_dir(self, group: str) -> Path:
        return dataman_dir(self.ws) / "labels"

    def prompt_format(self, rubric: dict[str, Any]) -> str | None:
        return "general"

    # The original DataMan labels a uniform sample with a rationale per criterion; no twins, no anchor choice.
    chooses_anchors = False

    def sample(self, group: str, sources: list[str]) -> list[SampledRecord]:
        return round_robin_sample(self.ws, sources, self.records_per_group(group), seed=self.cfg.label.seed)

    def n_twins(self, group: str) -> int:
        return 0

    def n_explained(self, group: str) -> int:
        return 0

    def checks_injection(self) -> bool:
        return False  # the baseline as published: its labels as the teacher gives them

    async def call(self, teacher: Teacher, item: LabelItem, fmt: str, anchors: list[Anchor],
                   explain: bool) -> TeacherResult:
        return await teacher.score(item.id, fmt, item.text, anchors)

    def prompt_versions(self) -> list[str]:
        return [prompt_version("score", GENERAL)]


def train_dataman(cfg: MiraConfig, ws: Workspace, reporter: Reporter | None = None) -> dict[str, Any]:
    """Fit the student tier MIRA uses on the DataMan labels; metrics on validation like `mira train`."""
    from ..aggregate import fidelity
    from ..stages.train import load_labeled

    anchors = [c[0] for c in CRITERIA]
    base = dataman_dir(ws)
    unit = dataman_train_unit(cfg, ws)
    kind = cfg.student.kind if cfg.student.kind in ("hashed_linear", "embed_heads") else "hashed_linear"
    done = base / "student" / "metrics.json"
    ledger = Ledger(ws)
    if ledger.is_current(unit):
        return {**read_json(done), "skipped": True}
    sets = {}
    for split in ("train", "val"):
        sets[split] = load_labeled(ws, GROUP, split, anchors, path=base / "labels" / f"{split}.parquet")
    student = make_student(kind, anchors, **cfg.student.params.get(kind, {}))
    student.fit(sets["train"].texts, sets["train"].y, sets["train"].sources)
    pred = student.predict(sets["val"].texts) if sets["val"].ids else np.zeros((0, len(anchors)), np.float32)
    metrics = {"kind": kind, "n_train": len(sets["train"].ids), "n_val": len(sets["val"].ids),
               **fidelity(pred, sets["val"].y, sets["val"].sources, anchors)}
    student.save(base / "student")
    write_json(base / "student" / "metrics.json", metrics)
    n = len(sets["train"].ids) + len(sets["val"].ids)
    ledger.record(unit, Counts(n, n, 0, 0))
    return {**metrics, "skipped": False}


def dataman_train_unit(cfg: MiraConfig, ws: Workspace) -> Unit:
    kind = cfg.student.kind if cfg.student.kind in ("hashed_linear", "embed_heads") else "hashed_linear"
    labels = dataman_dir(ws) / "labels"
    return Ledger(ws).unit("dataman-train", "student", {"kind": kind, "params": cfg.student.params.get(kind, {}),
                                                        "labels": Ref("dataman-label", f"{GROUP}/_final"),
                                                "labels/train.parquet": labels / "train.parquet",
                                                "labels/val.parquet": labels / "val.parquet"},
                   [dataman_dir(ws) / "student" / "metrics.json"])


def load_dataman_scorer(ws: Workspace) -> Callable[[list[str]], np.ndarray]:
    if not (dataman_dir(ws) / "student" / "student.json").exists():
        raise MiraError("the dataman baseline has no labels/student yet; run `mira dataman` first")
    student = load_student(dataman_dir(ws) / "student")
    col = student.anchors.index("overall")
    return lambda texts: student.predict(texts)[:, col].astype(np.float64)

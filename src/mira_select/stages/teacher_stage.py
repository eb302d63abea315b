"""Base of the stages that call the teacher: one lazily created `Teacher` per run, accounted under the stage name.

Lazy, because a stage whose units are all complete must not load a model or open a connection at all.
"""

from __future__ import annotations

from ..config import MiraConfig, TeacherConfig
from ..ledger import Ledger
from ..progress import Reporter
from ..teacher.client import Teacher
from ..workspace import Workspace


class TeacherStage:
    stage = "teacher"

    def __init__(self, cfg: MiraConfig, ws: Workspace | None = None, reporter: Reporter | None = None,
                 teacher: Teacher | None = None):
        self.cfg = cfg
        self.ws = ws or Workspace(cfg.workspace_path)
        self.reporter = reporter or Reporter()
        self._teacher = teacher
        self.ledger = Ledger(self.ws)

    def teacher_config(self) -> TeacherConfig:
        return self.cfg.teacher

    def teacher(self) -> Teacher:
        if self._teacher is None:
            self._teacher = Teacher(self.teacher_config(), self.ws, stage=self.stage, tokenizer=self.cfg.tokenizer,
                                    base_dir=self.cfg.base_dir)
        return self._teacher

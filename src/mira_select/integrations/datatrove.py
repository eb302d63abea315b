"""A datatrove filter step that keeps documents whose MIRA score reaches a threshold.

    from mira_select.integrations.datatrove import MiraScoreFilter
    pipeline = [JsonlReader(...), MiraScoreFilter("ws", threshold=6.0, source_key="source"), JsonlWriter(...)]

The document's source (``doc.metadata[source_key]``) picks the group student and reliability mask, exactly as in
``mira score``; documents from sources the workspace never saw need ``group`` (a fixed group for the whole step).
Scores are computed in batches (``batch_size``) and written to ``doc.metadata["mira_score"]`` so a later step or
the exclusion writer can see them. Requires the extra: ``pip install 'mira-select[datatrove]'``.
"""

from __future__ import annotations

from ..errors import MiraError

try:
    from datatrove.data import Document
    from datatrove.pipeline.filters.base_filter import BaseFilter
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MiraError("the datatrove integration needs: pip install 'mira-select[datatrove]'") from exc


class MiraScoreFilter(BaseFilter):
    name = "🎯 MIRA score"

    def __init__(self, workspace: str, threshold: float, source_key: str = "source", group: str | None = None,
                 batch_size: int = 256, exclusion_writer=None):
        super().__init__(exclusion_writer=exclusion_writer, batch_size=batch_size)
        self.workspace, self.threshold = workspace, threshold
        self.source_key, self.group = source_key, group
        self._scorer = None

    @property
    def scorer(self):
        if self._scorer is None:  # loaded lazily in the worker, not pickled with the step
            from ..scorer import Scorer

            self._scorer = Scorer.load(self.workspace)
        return self._scorer

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        return self.filter_batch([doc])[0]

    def filter_batch(self, batch: list[Document]) -> list[bool | tuple[bool, str]]:
        sources = [doc.metadata.get(self.source_key) for doc in batch]
        groups = [self.group] * len(batch) if self.group else None
        scores = self.scorer.score([doc.text for doc in batch], sources, groups)
        out: list[bool | tuple[bool, str]] = []
        for doc, s in zip(batch, scores):
            doc.metadata["mira_score"] = float(s)
            out.append(True if s >= self.threshold else (False, "mira_below_threshold"))
        return out

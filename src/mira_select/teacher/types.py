"""Plain data passed between the teacher client, its backends and the cache."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Anchor:
    """One rubric dimension a record is scored on (discovered per group; see stages/discover)."""

    id: str
    name: str
    definition: str
    part: str = "combined"  # think | combined | answer (qa_think); combined elsewhere
    # What a 0, a 5 and a 10 look like on this anchor (scale anchoring: without them a small teacher puts almost
    # every record at the top). Empty for fixed rubrics that define no levels.
    levels: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChatRequest:
    messages: tuple[dict[str, str], ...]
    schema: dict[str, Any] | None
    max_tokens: int
    temperature: float = 0.0
    logprobs: bool = False
    # Scores-only answers: the answer is one flat JSON object {id: integer 0-10} with these keys in this order. A
    # backend that sees the model's logits (local) may read the scores out directly instead of generating JSON.
    score_ids: tuple[str, ...] = ()
    # Read every score slot right after the prompt (``{"id": ``), not after the scores already written: a small
    # model copies its first score into every later slot, so a sequential answer is one decision, not one per criterion.
    independent_slots: bool = False

    def cache_fields(self) -> dict[str, Any]:
        out = {"messages": list(self.messages), "schema": self.schema, "max_tokens": self.max_tokens,
               "temperature": self.temperature, "logprobs": self.logprobs}
        if self.score_ids:  # only when set, so the keys of every other request stay as they were
            out["score_ids"] = list(self.score_ids)
        if self.independent_slots:
            out["slots"] = "independent"
        return out


@dataclass
class ChatResponse:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    # For each generated digit token: (char offset in ``text``, {digit: probability}) from the top log-probs.
    # Kept instead of raw log-probs: it is all the expected-score read-out needs, and it is small enough to cache.
    digit_probs: list[tuple[int, dict[str, float]]] | None = None
    retries: int = 0

    def to_cache(self) -> dict[str, Any]:
        return {"text": self.text, "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "latency_s": self.latency_s, "digit_probs": self.digit_probs}

    @classmethod
    def from_cache(cls, d: dict[str, Any]) -> "ChatResponse":
        dp = d.get("digit_probs")
        return cls(text=d["text"], prompt_tokens=d.get("prompt_tokens", 0),
                   completion_tokens=d.get("completion_tokens", 0), latency_s=d.get("latency_s", 0.0),
                   digit_probs=[(int(o), p) for o, p in dp] if dp is not None else None)


@dataclass
class TeacherResult:
    """The outcome of one task (judge or score) for one record. ``status`` is ok, repaired or dead."""

    record_id: str
    status: str
    data: dict[str, Any] | None = None  # validated payload
    readout: str = "greedy"  # greedy | expected
    error: str | None = None
    cached: bool = False
    prompt_hash: str = ""
    model: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

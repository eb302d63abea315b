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


@dataclass(frozen=True)
class ChatRequest:
    messages: tuple[dict[str, str], ...]
    schema: dict[str, Any] | None
    max_tokens: int
    temperature: float = 0.0
    logprobs: bool = False

    def cache_fields(self) -> dict[str, Any]:
        return {"messages": list(self.messages), "schema": self.schema, "max_tokens": self.max_tokens,
                "temperature": self.temperature, "logprobs": self.logprobs}


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

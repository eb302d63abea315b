"""Teacher backends: where a chat request is answered.

- ``openai``: any OpenAI-compatible endpoint (vLLM, SGLang, llama.cpp server, Ollama, OpenAI) over async httpx,
  with per-request timeouts and retries (exponential backoff + jitter; 429 honours Retry-After).
- ``local``: the embedded GGUF model in-process through llama-cpp-python (see local.py).
- ``replay``: answers only from the cache; a miss is an error naming the record (for audits and CI).

Backends only transport; validation, repair, caching and accounting live in the client, once for all of them.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import time
from typing import Any

import httpx

from ..config import TeacherConfig
from ..errors import MiraError
from .types import ChatRequest, ChatResponse

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class TeacherCallError(Exception):
    """A call failed for good (after retries, or a non-retryable error); the record is dead-lettered with this."""

    def __init__(self, message: str, retries: int = 0):
        super().__init__(message)
        self.retries = retries


FORMAT_FALLBACK = {"json_schema": "json_object", "json_object": "none"}


def local_reads_slots(cfg: TeacherConfig) -> bool:
    """Whether the local backend reads scores-only slots independently from the logits (its default)."""
    return cfg.logprobs and cfg.local_scores == "logits" and cfg.score_slots == "independent"


class Backend:
    kind: str = "base"
    model: str = ""
    supports_logprobs: bool = False
    # Reads each scores-only slot from the logits right after the prompt (see ChatRequest.independent_slots).
    reads_slots: bool = False
    # Requests it serves at once (None: as many as the config sends).
    max_concurrency: int | None = None

    async def complete(self, req: ChatRequest) -> ChatResponse:  # pragma: no cover - interface
        raise NotImplementedError

    async def aclose(self) -> None:
        pass


def digit_probs_from_openai(content: list[dict[str, Any]] | None) -> list[tuple[int, dict[str, float]]] | None:
    """Reduce OpenAI-style per-token log-probs to (char offset, {digit: prob}) at each generated digit."""
    if not content:
        return None
    out, offset = [], 0
    for item in content:
        token = item.get("token", "")
        stripped = token.lstrip()
        if len(stripped) == 1 and stripped.isdigit():
            probs: dict[str, float] = {}
            for alt in item.get("top_logprobs") or []:
                t = str(alt.get("token", "")).strip()
                if len(t) == 1 and t.isdigit() and alt.get("logprob") is not None:
                    probs[t] = probs.get(t, 0.0) + math.exp(alt["logprob"])
            if stripped not in probs and item.get("logprob") is not None:  # grammar may force a non-top token
                probs[stripped] = math.exp(item["logprob"])
            out.append((offset + len(token) - len(stripped), probs))
        offset += len(token)
    return out


class OpenAIBackend(Backend):
    kind = "openai"

    def __init__(self, cfg: TeacherConfig):
        self.response_format = cfg.response_format  # downgraded once if the server rejects it
        if not cfg.base_url:
            raise MiraError("teacher.backend 'openai' needs teacher.base_url (e.g. http://127.0.0.1:8000/v1)")
        self.cfg = cfg
        self.model = cfg.model
        self.supports_logprobs = cfg.logprobs
        self._headers = {}
        if cfg.api_key_env:
            key = os.environ.get(cfg.api_key_env)
            if not key:
                raise MiraError(f"teacher.api_key_env names {cfg.api_key_env!r} but that variable is not set")
            self._headers["Authorization"] = f"Bearer {key}"
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        """Created inside the running event loop (each `Teacher.run` has its own) and closed at its end."""
        if self._client is None:
            cfg = self.cfg
            self._client = httpx.AsyncClient(
                base_url=cfg.base_url.rstrip("/"), headers=self._headers,
                timeout=httpx.Timeout(cfg.timeout_s, connect=min(cfg.timeout_s, 10.0)),
                limits=httpx.Limits(max_connections=cfg.concurrency * 2))
        return self._client

    def _body(self, req: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": list(req.messages), "temperature": req.temperature,
                                "max_tokens": req.max_tokens}
        if req.schema is not None and self.response_format == "json_schema":
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "answer", "schema": req.schema, "strict": False}}
        elif req.schema is not None and self.response_format == "json_object":
            body["response_format"] = {"type": "json_object", "schema": req.schema}
        if req.logprobs:
            body["logprobs"] = True
            body["top_logprobs"] = self.cfg.top_logprobs
        return body

    async def complete(self, req: ChatRequest) -> ChatResponse:
        last_error, attempt = "no attempt", 0
        while attempt <= self.cfg.max_retries:
            used_format = self.response_format
            outcome = await self._attempt(self._body(req), attempt)
            if isinstance(outcome, ChatResponse):
                return outcome
            last_error, retryable, delay, format_rejected = outcome
            if format_rejected:
                # The server does not take this structured-output form: step down once, no retry counted.
                if self.response_format == used_format:  # concurrent requests may have stepped down already
                    self.response_format = FORMAT_FALLBACK.get(used_format, "none")
                continue
            if not retryable:
                raise TeacherCallError(last_error, retries=attempt)
            if attempt < self.cfg.max_retries:
                backoff = min(self.cfg.backoff_max_s, self.cfg.backoff_base_s * 2**attempt)
                await asyncio.sleep(delay if delay is not None else backoff * (0.5 + random.random()))
            attempt += 1
        raise TeacherCallError(f"gave up after {self.cfg.max_retries + 1} attempts: {last_error}",
                               retries=self.cfg.max_retries)

    async def _attempt(self, body: dict[str, Any], attempt: int):
        """One HTTP round trip -> a response, or (error, retryable, retry delay, response_format rejected)."""
        start = time.monotonic()
        try:
            resp = await self.client.post("/chat/completions", json=body)
        except httpx.TimeoutException:
            return f"timeout after {self.cfg.timeout_s:g}s", True, None, False
        except httpx.TransportError as exc:
            return f"connection error: {type(exc).__name__}", True, None, False
        if resp.status_code == 200:
            try:
                return self._parse(resp, time.monotonic() - start, attempt)
            except TeacherCallError as exc:  # a cut or garbled body is usually transient: retry it
                return str(exc), True, None, False
        error = f"HTTP {resp.status_code}: {resp.text[:200]}"
        rejected = "response_format" in body and "response_format" in resp.text and resp.status_code in (400, 422, 500)
        return error, resp.status_code in RETRY_STATUS, _retry_after(resp.headers.get("retry-after")), rejected

    def _parse(self, resp: httpx.Response, latency: float, retries: int) -> ChatResponse:
        try:
            data = resp.json()
            choice = data["choices"][0]
            text = choice["message"]["content"] or ""
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise TeacherCallError(f"malformed response body ({type(exc).__name__}): {resp.text[:200]}") from None
        usage = data.get("usage") or {}
        lp = (choice.get("logprobs") or {}).get("content") if isinstance(choice.get("logprobs"), dict) else None
        return ChatResponse(text=text, prompt_tokens=int(usage.get("prompt_tokens") or 0),
                            completion_tokens=int(usage.get("completion_tokens") or 0), latency_s=latency,
                            digit_probs=digit_probs_from_openai(lp), retries=retries)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return min(max(float(value), 0.0), 120.0)
    except ValueError:
        return None


class ReplayBackend(Backend):
    """Never calls a model. The client consults the cache first, so reaching this backend means a miss."""

    kind = "replay"

    def __init__(self, cfg: TeacherConfig):
        self.model = cfg.model
        # must build the same requests as the backend that filled the cache
        self.supports_logprobs = cfg.logprobs
        self.reads_slots = cfg.replay_as == "local" and local_reads_slots(cfg)

    async def complete(self, req: ChatRequest) -> ChatResponse:
        raise TeacherCallError("replay backend: no cached answer for this request")

"""The embedded teacher: a packaged GGUF model run in-process with llama-cpp-python.

One model instance per process, calls serialized (llama.cpp contexts are not thread-safe; on 2 cores a second
concurrent call would only halve each one's speed). Consecutive prompts that share the instruction + rubric prefix
reuse its evaluated KV cache, which is why prompts put the record last. JSON is grammar-constrained with the
request's schema, and log-probs (``logits_all``) feed the expected-score read-out.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

from ..config import TeacherConfig
from ..errors import MiraError
from .backends import Backend, TeacherCallError, digit_probs_from_openai
from .types import ChatRequest, ChatResponse


def resolve_model_path(model: str) -> Path:
    if model.endswith(".gguf"):
        path = Path(model).expanduser()
        if not path.is_file():
            raise MiraError(f"teacher model file {path} does not exist")
        return path
    from .models import model_path

    return model_path(model)


class LocalBackend(Backend):
    kind = "local"

    def __init__(self, cfg: TeacherConfig):
        try:
            import llama_cpp  # noqa: F401
        except ImportError:
            raise MiraError("the local teacher needs llama-cpp-python: pip install 'llama-cpp-python==0.3.36' "
                            "(compiles llama.cpp; ~12 min on 2 cores)") from None
        self.cfg = cfg
        self.model = cfg.model
        self.path = resolve_model_path(cfg.model)
        self.supports_logprobs = cfg.logprobs
        self._llm = None
        self._lock = threading.Lock()

    def _load(self):
        if self._llm is None:
            from llama_cpp import Llama

            threads = self.cfg.threads or os.cpu_count() or 1
            self._llm = Llama(model_path=str(self.path), n_ctx=self.cfg.n_ctx, n_threads=threads,
                              n_threads_batch=threads, logits_all=self.cfg.logprobs, verbose=False, seed=0)
        return self._llm

    def _complete_sync(self, req: ChatRequest) -> ChatResponse:
        with self._lock:
            llm = self._load()
            kwargs = {}
            if req.schema is not None and self.cfg.response_format != "none":
                kwargs["response_format"] = {"type": "json_object", "schema": req.schema}
            if req.logprobs and self.cfg.logprobs:
                kwargs.update(logprobs=True, top_logprobs=self.cfg.top_logprobs)
            start = time.monotonic()
            try:
                out = llm.create_chat_completion(messages=list(req.messages), temperature=req.temperature,
                                                 max_tokens=req.max_tokens, seed=0, **kwargs)
            except ValueError as exc:  # e.g. prompt longer than the context window
                raise TeacherCallError(f"local model refused the request: {exc}") from None
            latency = time.monotonic() - start
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        lp = choice.get("logprobs") or {}
        return ChatResponse(text=choice["message"]["content"] or "", prompt_tokens=usage.get("prompt_tokens", 0),
                            completion_tokens=usage.get("completion_tokens", 0), latency_s=latency,
                            digit_probs=digit_probs_from_openai(lp.get("content")) if lp else None)

    async def complete(self, req: ChatRequest) -> ChatResponse:
        return await asyncio.to_thread(self._complete_sync, req)

    def perf(self) -> dict[str, float]:
        """llama.cpp's own counters (prompt eval / generation), for the prefix-reuse benchmark."""
        import llama_cpp

        if self._llm is None:
            return {}
        p = llama_cpp.llama_perf_context(self._llm._ctx.ctx)
        return {"t_p_eval_ms": p.t_p_eval_ms, "n_p_eval": p.n_p_eval, "t_eval_ms": p.t_eval_ms, "n_eval": p.n_eval}

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
from .backends import Backend, TeacherCallError
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
        self._path: Path | None = None  # resolved on the first real call: a fully cached run needs no weights
        self.supports_logprobs = cfg.logprobs
        self._llm = None
        self._digit_ids: dict[str, int] | None = None
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        if self._path is None:
            self._path = resolve_model_path(self.cfg.model)
        return self._path

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
            start = time.monotonic()
            try:
                out = llm.create_chat_completion(messages=list(req.messages), temperature=req.temperature,
                                                 max_tokens=req.max_tokens, seed=0, **kwargs)
            except ValueError as exc:  # e.g. prompt longer than the context window
                raise TeacherCallError(f"local model refused the request: {exc}") from None
            choice = out["choices"][0]
            usage = out.get("usage") or {}
            text = choice["message"]["content"] or ""
            digit_probs = None
            if req.logprobs and self.cfg.logprobs:
                digit_probs = self._digit_probs(llm, int(usage.get("prompt_tokens", 0)))
            latency = time.monotonic() - start
        return ChatResponse(text=text, prompt_tokens=usage.get("prompt_tokens", 0),
                            completion_tokens=usage.get("completion_tokens", 0), latency_s=latency,
                            digit_probs=digit_probs)

    def _digit_probs(self, llm, n_prompt: int) -> list[tuple[int, dict[str, float]]]:
        """Digit probabilities at each generated digit, read from the logits llama.cpp kept (``logits_all``).

        Asking llama-cpp-python for ``logprobs`` instead sorts the whole vocabulary in Python for every generated
        token (~150k entries for Qwen), which made a call several times slower; here only the few rows at digit
        positions are touched, with numpy.
        """
        import numpy as np

        if self._digit_ids is None:
            self._digit_ids = {str(d): llm.tokenize(str(d).encode(), add_bos=False, special=False)
                               for d in range(10)}
            self._digit_ids = {d: ids[0] for d, ids in self._digit_ids.items() if len(ids) == 1}
        by_id = {v: k for k, v in self._digit_ids.items()}
        ids = [int(t) for t in llm._input_ids[n_prompt:]]
        out, produced = [], b""
        for j, tok in enumerate(ids):
            if tok in by_id:
                row = np.asarray(llm.scores[n_prompt + j - 1], dtype=np.float64)
                top = row.max()
                lse = top + np.log(np.exp(row - top).sum())
                probs = {d: float(np.exp(row[i] - lse)) for d, i in self._digit_ids.items()}
                out.append((len(produced.decode("utf-8", errors="ignore")), probs))
            produced += llm.detokenize([tok])
        return out

    async def complete(self, req: ChatRequest) -> ChatResponse:
        return await asyncio.to_thread(self._complete_sync, req)

    def perf(self) -> dict[str, float]:
        """llama.cpp's own counters (prompt eval / generation), for the prefix-reuse benchmark."""
        import llama_cpp

        if self._llm is None:
            return {}
        p = llama_cpp.llama_perf_context(self._llm._ctx.ctx)
        return {"t_p_eval_ms": p.t_p_eval_ms, "n_p_eval": p.n_p_eval, "t_eval_ms": p.t_eval_ms, "n_eval": p.n_eval}

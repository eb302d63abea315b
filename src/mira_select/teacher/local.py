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
from .backends import Backend, TeacherCallError, local_reads_slots
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
    max_concurrency = 1  # one llama.cpp context: calls run one at a time, in the order the stage sends them

    def __init__(self, cfg: TeacherConfig):
        # llama-cpp-python is imported on the first real call, like the weights: a run the cache answers (`make
        # demo`) needs neither, so the default install does not compile llama.cpp.
        self.cfg = cfg
        self.model = cfg.model
        self._path: Path | None = None  # resolved on the first real call: a fully cached run needs no weights
        self.supports_logprobs = cfg.logprobs
        self.reads_slots = local_reads_slots(cfg)
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
            try:
                from llama_cpp import Llama
            except ImportError:
                raise MiraError("the teacher must call the embedded model (an answer is not in the cache) and "
                                "llama-cpp-python is not installed: run `make venv-teacher` (or pip install -e "
                                "'.[local,models]'; compiles llama.cpp, ~12 min on 2 cores)") from None

            threads = self.cfg.threads or os.cpu_count() or 1
            self._llm = Llama(model_path=str(self.path), n_ctx=self.cfg.n_ctx, n_threads=threads,
                              n_threads_batch=threads, logits_all=self.cfg.logprobs, verbose=False, seed=0)
        return self._llm

    def _complete_sync(self, req: ChatRequest) -> ChatResponse:
        if req.score_ids and req.logprobs and self.cfg.logprobs and self.cfg.local_scores == "logits":
            with self._lock:
                if req.independent_slots:
                    return self._read_slots(self._load(), req)
                return self._read_scores(self._load(), req)
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

    # ---- scores-only read-out -------------------------------------------------------------------------------------
    def _read_scores(self, llm, req: ChatRequest) -> ChatResponse:
        """A scores-only answer without sampling: the JSON ``{"a01": 7, "a02": 10, ...}`` is written by us, and at
        each score slot the model's digit distribution is read from its logits.

        Same answer a grammar-constrained greedy generation gives (the most likely digit at each slot; "10" when
        "0" is the likelier continuation of a "1"), but each anchor costs one small batch (its key, evaluated
        together with the previous digit) instead of ~7 sampled tokens, and the instruction + rubric prefix is
        reused across records from the KV cache. The distribution is renormalised over the digits, which is what a
        grammar allowing only 0-10 at that slot would sample from.
        """
        import numpy as np

        start = time.monotonic()
        digits, seq, end_ids = self._answer_start(llm, req, reserve=8 * len(req.score_ids) + 8)
        n_prompt = len(seq) - 1
        text, probs_at = "{", []
        for i, aid in enumerate(req.score_ids):
            piece = ("" if i == 0 else ", ") + f'"{aid}": '
            text += piece
            seq = seq + self._tok(llm, piece)
            row = self._logits_after(llm, seq)
            p = self._softmax_subset(row, [digits[str(d)] for d in range(10)])
            best = int(np.argmax(p))
            probs_at.append((len(text), {str(d): float(p[d]) for d in range(10)}))
            seq = seq + [digits[str(best)]]
            if best == 1:  # 1 or 10: the next token decides
                nxt = self._softmax_subset(self._logits_after(llm, seq), [digits["0"], *end_ids])
                probs_at.append((len(text) + 1, {"0": float(nxt[0])}))
                if nxt[0] > 0.5:
                    text += "1"
                    seq = seq + [digits["0"]]
                    best = 0
            text += str(best)
        text += "}"
        return ChatResponse(text=text, prompt_tokens=n_prompt, completion_tokens=len(seq) - n_prompt,
                            latency_s=time.monotonic() - start, digit_probs=probs_at)

    def _read_slots(self, llm, req: ChatRequest) -> ChatResponse:
        """Scores-only answer with every slot read on its own: for each criterion the model sees the prompt and
        ``{"id": `` and nothing of its other scores, so one hesitant first digit cannot set every later score (with
        sequential slots the 1.5B teacher wrote its first score, often a 0/5/10 coin flip, into all the others).

        The prompt is evaluated once; each slot costs its key tokens from the KV cache's prompt end, plus one token
        after a "1" to tell 1 from 10 (recorded for every slot, so the expected score never guesses). The answer
        text is the JSON of the most likely scores with P(10) = P("1") * P("0" next).
        """
        import numpy as np

        start = time.monotonic()
        digits, base, end_ids = self._answer_start(llm, req, reserve=16)
        n_prompt = len(base) - 1
        text, probs_at, evaluated = "{", [], 0
        for i, aid in enumerate(req.score_ids):
            seq = base + self._tok(llm, f'"{aid}": ')
            p = self._softmax_subset(self._logits_after(llm, seq), [digits[str(d)] for d in range(10)])
            p_zero = float(self._softmax_subset(self._logits_after(llm, seq + [digits["1"]]),
                                                [digits["0"], *end_ids])[0])
            evaluated += len(seq) - len(base) + 1
            text += ("" if i == 0 else ", ") + f'"{aid}": '
            probs_at.append((len(text), {str(d): float(p[d]) for d in range(10)}))
            probs_at.append((len(text) + 1, {"0": p_zero}))
            full = np.append(p, p[1] * p_zero)
            full[1] *= 1.0 - p_zero
            text += str(int(np.argmax(full)))
        text += "}"
        return ChatResponse(text=text, prompt_tokens=n_prompt, completion_tokens=evaluated,
                            latency_s=time.monotonic() - start, digit_probs=probs_at)

    def _answer_start(self, llm, req: ChatRequest, reserve: int) -> tuple[dict[str, int], list[int], list[int]]:
        """-> (digit token ids, the prompt's tokens up to the answer's opening "{", the tokens that may follow a
        score digit), after checking that the prompt plus ``reserve`` answer tokens fit the context window."""
        digits = self._digit_token_ids(llm)
        prompt = self._chat_prompt(llm, req.messages)
        seq = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True) + self._tok(llm, "{")
        if len(seq) + reserve >= llm.n_ctx():
            raise TeacherCallError(f"local model refused the request: prompt of {len(seq) - 1} tokens does not fit "
                                   f"the context window ({llm.n_ctx()}); lower teacher.max_record_tokens")
        end_ids = [t for piece in (",", "}", " ,") for t in self._tok(llm, piece)[:1]]
        return digits, seq, end_ids

    def _digit_token_ids(self, llm) -> dict[str, int]:
        if self._digit_ids is None:
            ids = {str(d): llm.tokenize(str(d).encode(), add_bos=False, special=False) for d in range(10)}
            self._digit_ids = {d: t[0] for d, t in ids.items() if len(t) == 1}
        if len(self._digit_ids) != 10:
            raise TeacherCallError("the local model's tokenizer has no single token per digit; "
                                   "set teacher.logprobs: false")
        return self._digit_ids

    @staticmethod
    def _tok(llm, piece: str) -> list[int]:
        return llm.tokenize(piece.encode("utf-8"), add_bos=False, special=False)

    @staticmethod
    def _chat_prompt(llm, messages) -> str:
        """The model's own chat template (from the GGUF metadata), ending where the assistant's answer starts."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise TeacherCallError("the local model has no chat template in its GGUF metadata")
        fmt = Jinja2ChatFormatter(template=template, eos_token="", bos_token="")
        return fmt(messages=list(messages)).prompt

    @staticmethod
    def _logits_after(llm, seq: list[int]):
        """Logits for the token after ``seq``, evaluating only what the KV cache does not hold yet."""
        import numpy as np

        limit = min(llm.n_tokens, len(seq) - 1)  # the last token is always evaluated, to get its logits
        differ = np.flatnonzero(llm.input_ids[:limit] != np.asarray(seq[:limit]))
        llm.n_tokens = int(differ[0]) if len(differ) else limit
        llm.eval(seq[llm.n_tokens:])
        if llm._logits_all:
            return np.asarray(llm.scores[llm.n_tokens - 1], dtype=np.float64)
        return np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(llm.n_vocab(),)).astype(np.float64)

    @staticmethod
    def _softmax_subset(row, ids: list[int]):
        import numpy as np

        sub = row[ids]
        e = np.exp(sub - sub.max())
        return e / e.sum()

    async def complete(self, req: ChatRequest) -> ChatResponse:
        return await asyncio.to_thread(self._complete_sync, req)

    def perf(self) -> dict[str, float]:
        """llama.cpp's own counters (prompt eval / generation), for the prefix-reuse benchmark."""
        import llama_cpp

        if self._llm is None:
            return {}
        p = llama_cpp.llama_perf_context(self._llm._ctx.ctx)
        return {"t_p_eval_ms": p.t_p_eval_ms, "n_p_eval": p.n_p_eval, "t_eval_ms": p.t_eval_ms, "n_eval": p.n_eval}

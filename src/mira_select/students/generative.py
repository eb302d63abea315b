"""`generative` (GPU tier, ``mira-select[gpu]``): the paper's student — a small causal LM fine-tuned to write the
teacher's anchor JSON (``{"a01": 7, "a02": 9, ...}``) after the record, then read as expected scores.

Why an expected score and not the greedy digits: the scores are integers but the record's quality is not; the
probability mass over 0–10 at each anchor's slot gives the same continuous read-out the teacher gets (digits are
single tokens in the supported tokenizers; "10" is "1" then "0", so P(10) = P("1")·P("0" | "1")).
Anchors are read in order, each conditioned on the previous anchors' most likely values, as the LM was trained.

The base model is a Hugging Face directory or a GGUF file (dequantized by transformers; the packaged SmolLM2-135M is
the default because it is the one LM a package ships here). It runs on a CUDA GPU; without one it refuses with the
reason, unless ``allow_cpu: true`` (tests, tiny runs) — a CPU fine-tune of a 135M model on a real label set takes
hours. The fine-tuned weights are saved beside ``student.json`` in ``lm/`` (safetensors); the tokenizer is always
read from the base model named in the params.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MiraError
from .base import Student, check_targets

DEFAULTS: dict[str, Any] = {"base_model": "smollm2-135m-instruct", "epochs": 4, "lr": 1e-4, "batch": 8,
                            "max_prompt_tokens": 384, "max_chars": 4000, "allow_cpu": False, "seed": 0,
                            "predict_batch": 32}
HEADER = "Rate this training record on each quality anchor (0-10).\n\n"
SCORES = "\n\n### Scores\n"


def _torch():
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError:
        raise MiraError("the generative student needs torch and transformers: pip install 'mira-select[gpu]'; "
                        "or use student.kind hashed_linear / embed_heads") from None
    return torch


def _device(allow_cpu: bool) -> str:
    torch = _torch()
    if torch.cuda.is_available():
        return "cuda"
    if allow_cpu:
        return "cpu"
    raise MiraError("the generative student needs a CUDA GPU and none is visible on this machine; use "
                    "student.kind hashed_linear or embed_heads (CPU), or set student.params.generative.allow_cpu "
                    "for a tiny run")


def _resolve_base(name: str) -> tuple[str, str | None]:
    """-> (from_pretrained path, gguf file name or None)."""
    path = Path(name)
    if not path.exists():
        from ..teacher.models import get_model, model_path

        try:
            get_model(name)
        except MiraError:
            raise MiraError(f"generative student: base_model {name!r} is neither a path nor a packaged model "
                            "(see `mira models list`)") from None
        path = model_path(name)
    if path.is_file():
        if path.suffix != ".gguf":
            raise MiraError(f"generative student: {path} is a file but not a .gguf; give a GGUF file or a Hugging "
                            "Face model directory")
        return str(path.parent), path.name
    return str(path), None


class GenerativeStudent(Student):
    kind = "generative"

    def __init__(self, anchors: list[str], **params: Any):
        unknown = set(params) - set(DEFAULTS)
        if unknown:
            raise MiraError(f"generative student: unknown params {sorted(unknown)}; known: {sorted(DEFAULTS)}")
        super().__init__(anchors, **{**DEFAULTS, **params})
        self._model = self._tok = None
        self._dir: Path | None = None
        self.device = "cpu"

    # -- token plumbing -------------------------------------------------------------------------------------

    def _ids(self, s: str) -> list[int]:
        return self._tok(s, add_special_tokens=False)["input_ids"]

    def _prompt(self, text: str) -> list[int]:
        body = self._ids(HEADER + text[: self.params["max_chars"]])[: self.params["max_prompt_tokens"]]
        return body + self._ids(SCORES)

    def _slot(self, j: int) -> list[int]:
        return self._ids(("{" if j == 0 else ", ") + f'"{self.anchors[j]}": ')

    def _target(self, scores: np.ndarray) -> list[int]:
        ids: list[int] = []
        for j, v in enumerate(scores):
            ids += self._slot(j) + self._ids(str(int(np.clip(np.rint(v), 0, 10))))
        return ids + self._ids("}")

    def _digits(self) -> list[int]:
        d = [self._ids(str(k)) for k in range(10)]
        if any(len(x) != 1 for x in d):
            raise MiraError("generative student: the base model's tokenizer does not have single-token digits")
        return [x[0] for x in d]

    # -- fit / predict ----------------------------------------------------------------------------------------

    def _load(self, weights: tuple[str, str | None]) -> None:
        """Model weights from ``weights`` (the base, or our fine-tuned lm/); the tokenizer always from the base:
        a GGUF-derived tokenizer does not survive save_pretrained round trips (it gains a BOS and loses spaces)."""
        torch = _torch()
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = _device(self.params["allow_cpu"])
        base, base_gguf = _resolve_base(self.params["base_model"])
        self._tok = AutoTokenizer.from_pretrained(base, **({"gguf_file": base_gguf} if base_gguf else {}))
        path, gguf = weights
        dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        kw = {"gguf_file": gguf} if gguf else {}
        self._model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **kw).to(self.device)

    def fit(self, texts: list[str], y: np.ndarray, sources: list[str]) -> "GenerativeStudent":
        torch = _torch()
        y = check_targets(texts, y, self.anchors)
        self._load(_resolve_base(self.params["base_model"]))
        torch.manual_seed(self.params["seed"])
        rows = [(p := self._prompt(t), p + self._target(s)) for t, s in zip(texts, y)]
        opt = torch.optim.AdamW(self._model.parameters(), lr=self.params["lr"], weight_decay=0.0)
        bs = self.params["batch"]
        steps = self.params["epochs"] * math.ceil(len(rows) / bs)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, steps // 10))
                                                  * max(0.0, 1 - s / steps))
        rng = np.random.default_rng(self.params["seed"])
        self._model.train()
        self.losses: list[float] = []
        for _ in range(self.params["epochs"]):
            order = rng.permutation(len(rows))
            for i in range(0, len(rows), bs):
                batch = [rows[k] for k in order[i:i + bs]]
                ids, att = self._pad([full for _, full in batch], left=False)
                labels = ids.clone()
                labels[att == 0] = -100
                for r, (prompt, _) in enumerate(batch):
                    labels[r, : len(prompt)] = -100  # learn the answer, not the record
                loss = self._model(input_ids=ids, attention_mask=att, labels=labels).loss
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self._model.parameters(), 1.0)
                opt.step()
                sched.step()
                self.losses.append(float(loss.detach()))
        self._model.eval()
        return self

    def _pad(self, seqs: list[list[int]], left: bool):
        torch = _torch()
        n = max(len(s) for s in seqs)
        pad = self._tok.pad_token_id if self._tok.pad_token_id is not None else 0
        ids = torch.full((len(seqs), n), pad, dtype=torch.long)
        att = torch.zeros((len(seqs), n), dtype=torch.long)
        for r, s in enumerate(seqs):
            sl = slice(n - len(s), n) if left else slice(0, len(s))
            ids[r, sl] = torch.tensor(s)
            att[r, sl] = 1
        return ids.to(self.device), att.to(self.device)

    def _next_probs(self, seqs: list[list[int]], tokens: list[int]):
        """P(each of ``tokens`` | seq), renormalized over ``tokens``: [batch, len(tokens)]."""
        torch = _torch()
        ids, att = self._pad(seqs, left=True)
        pos = (att.cumsum(-1) - 1).clamp(min=0)
        with torch.no_grad():
            logits = self._model(input_ids=ids, attention_mask=att, position_ids=pos).logits[:, -1, :]
        return torch.softmax(logits[:, tokens].float(), dim=-1).cpu().numpy()

    def predict(self, texts: list[str]) -> np.ndarray:
        if self._model is None:
            if self._dir is None:
                raise MiraError("generative student: predict before fit or load")
            self._load((str(self._dir), None))
        digits = self._digits()
        one, zero, stop = digits[1], digits[0], self._ids("}")[0]
        out = np.zeros((len(texts), len(self.anchors)), np.float32)
        bs = self.params["predict_batch"]
        for b in range(0, len(texts), bs):
            seqs = [self._prompt(t) for t in texts[b:b + bs]]
            for j in range(len(self.anchors)):
                seqs = [s + self._slot(j) for s in seqs]
                p = self._next_probs(seqs, digits)  # first digit
                after_one = self._next_probs([s + [one] for s in seqs], [zero, self._ids(",")[0], stop])
                q = np.zeros((len(seqs), 11))
                q[:, :10] = p
                q[:, 10] = p[:, 1] * after_one[:, 0]
                q[:, 1] = p[:, 1] * (1 - after_one[:, 0])
                out[b:b + len(seqs), j] = q @ np.arange(11)
                seqs = [s + self._ids(str(int(v))) for s, v in zip(seqs, q.argmax(1))]
        return np.clip(out, 0, 10)

    # -- persistence: the LM lives in lm/ beside student.json -----------------------------------------------

    def save(self, directory: Path) -> None:
        super().save(directory)
        if self._model is not None:
            self._model.save_pretrained(directory / "lm", safe_serialization=True)

    def attach(self, directory: Path) -> None:
        self._dir = directory / "lm"
        if not (self._dir / "config.json").exists():
            raise MiraError(f"generative student in {directory} has no lm/ weights; run `mira train` again")

    def _weights(self) -> dict[str, np.ndarray]:
        return {}

    def _set_weights(self, arrays: dict[str, np.ndarray]) -> None:
        pass

"""`generative` (GPU tier, ``mira-select[gpu]``): the paper's student — a small causal LM fine-tuned to write the
teacher's anchor JSON (``{"a01": 7, "a02": 9, ...}``) after the record, then read as expected scores.

Why an expected score and not the greedy digits: the scores are integers but the record's quality is not; the
probability mass over the digit at each anchor's slot gives the same continuous read-out the teacher gets.
Anchors are read in order, each conditioned on the previous anchors' most likely values, as the LM was trained;
the record goes through the model once and each anchor adds a few tokens through the KV cache.

The base model is a Hugging Face directory or a GGUF file (dequantized by transformers; the packaged SmolLM2-135M is
the default because it is the one LM a package ships here). It runs on a CUDA GPU; without one it refuses with the
reason, unless ``allow_cpu: true`` (tests, tiny runs) — a CPU fine-tune of a 135M model on a real label set takes
hours. The fine-tuned weights are saved beside ``student.json`` as ``lm/model.safetensors``; loading rebuilds the
base model named in the params and puts them over it.
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
# Scores are written as one digit, 0-9 (the teacher's 0-10 scaled by 0.9): one token per value, so every anchor
# of every record in a batch advances the KV cache by the same number of tokens. The read-out stays continuous.
LEVELS = 10


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

    @classmethod
    def needs_gpu(cls, params: dict[str, Any]) -> bool:
        # allow_cpu runs where there is no GPU: reserving one would leave its units waiting on a CPU-only cluster
        return not {**DEFAULTS, **params}["allow_cpu"]

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

    def _digits(self) -> list[int]:
        d = [self._ids(str(k)) for k in range(LEVELS)]
        if any(len(x) != 1 for x in d):
            raise MiraError("generative student: the base model's tokenizer does not have single-token digits")
        return [x[0] for x in d]

    def _target(self, scores: np.ndarray, digits: list[int]) -> list[int]:
        ids: list[int] = []
        for j, v in enumerate(scores):
            ids += self._slot(j) + [digits[int(np.clip(np.rint(v * (LEVELS - 1) / 10), 0, LEVELS - 1))]]
        return ids + self._ids("}")

    # -- fit / predict ----------------------------------------------------------------------------------------

    def _load(self, lm_file: Path | None = None) -> None:
        """The base model (dequantized when it is a GGUF), then our fine-tuned weights over it when given. The
        tokenizer always comes from the base: a GGUF-derived tokenizer does not survive save_pretrained round trips,
        and a GGUF-loaded model cannot be re-saved by transformers, so only the state dict is stored."""
        torch = _torch()
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = _device(self.params["allow_cpu"])
        base, gguf = _resolve_base(self.params["base_model"])
        kw = {"gguf_file": gguf} if gguf else {}
        self._tok = AutoTokenizer.from_pretrained(base, **kw)
        dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        self._model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype, **kw)
        if lm_file is not None:
            from safetensors.torch import load_model

            load_model(self._model, str(lm_file))
        self._model.to(self.device)

    def fit(self, texts: list[str], y: np.ndarray, sources: list[str]) -> "GenerativeStudent":
        torch = _torch()
        y = check_targets(texts, y, self.anchors)
        self._load()
        torch.manual_seed(self.params["seed"])
        digits = self._digits()
        rows = [(p := self._prompt(t), p + self._target(s, digits)) for t, s in zip(texts, y)]
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

    def predict(self, texts: list[str]) -> np.ndarray:
        if self._model is None:
            if self._dir is None:
                raise MiraError("generative student: predict before fit or load")
            self._load(self._dir / "model.safetensors")
        out = np.zeros((len(texts), len(self.anchors)), np.float32)
        bs = self.params["predict_batch"]
        for b in range(0, len(texts), bs):
            out[b:b + bs] = self._predict_batch(texts[b:b + bs])
        return np.clip(out, 0, 10)

    def _predict_batch(self, texts: list[str]) -> np.ndarray:
        """Record once, then per anchor only its slot (and the previous anchor's digit) through the KV cache."""
        torch = _torch()
        digits = self._digits()
        levels = torch.arange(LEVELS, dtype=torch.float32) * 10 / (LEVELS - 1)
        ids, att = self._pad([self._prompt(t) for t in texts], left=True)
        pos = (att.cumsum(-1) - 1).clamp(min=0)
        out = np.zeros((len(texts), len(self.anchors)), np.float32)
        with torch.no_grad():
            res = self._model(input_ids=ids, attention_mask=att, position_ids=pos, use_cache=True)
            past, next_pos, prev = res.past_key_values, pos[:, -1] + 1, None
            for j in range(len(self.anchors)):
                slot = torch.tensor(self._slot(j), device=self.device).expand(len(texts), -1)
                new = slot if prev is None else torch.cat([prev[:, None], slot], dim=1)
                att = torch.cat([att, torch.ones_like(new)], dim=1)
                step_pos = next_pos[:, None] + torch.arange(new.shape[1], device=self.device)
                res = self._model(input_ids=new, attention_mask=att, position_ids=step_pos, past_key_values=past,
                                  use_cache=True)
                past, next_pos = res.past_key_values, next_pos + new.shape[1]
                p = torch.softmax(res.logits[:, -1, digits].float(), dim=-1).cpu()
                out[:, j] = (p @ levels).numpy()
                prev = torch.tensor(digits, device=self.device)[p.argmax(dim=-1).to(self.device)]
        return out

    # -- persistence: the LM lives in lm/ beside student.json -----------------------------------------------

    def save(self, directory: Path) -> None:
        super().save(directory)
        if self._model is not None:
            from safetensors.torch import save_model

            (directory / "lm").mkdir(parents=True, exist_ok=True)
            save_model(self._model, str(directory / "lm" / "model.safetensors"))

    def attach(self, directory: Path) -> None:
        self._dir = directory / "lm"
        if not (self._dir / "model.safetensors").exists():
            raise MiraError(f"generative student in {directory} has no lm/ weights; run `mira train` again")

    def _weights(self) -> dict[str, np.ndarray]:
        return {}

    def _set_weights(self, arrays: dict[str, np.ndarray]) -> None:
        pass

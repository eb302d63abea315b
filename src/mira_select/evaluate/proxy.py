"""The transformer proxy of `mira eval`: a small byte-level GPT trained on a selection for a fixed byte budget.

Byte-level, so every variant shares one vocabulary with no tokenizer fitted to any of them and the embedding stays
tiny (257 rows) — at ~1M parameters on 2 CPU cores the model trains at a few thousand bytes per second, which is
what this machine allows. Same architecture, optimizer, schedule, seed and number of training bytes for every
variant; only the data differs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

BOS = 256


@dataclass(frozen=True)
class ProxySpec:
    context: int = 256
    layers: int = 4
    width: int = 128
    heads: int = 4
    batch: int = 16
    lr: float = 2e-3
    train_bytes: int = 400_000


def _torch():
    try:
        import torch
    except ImportError:
        from ..errors import MiraError

        raise MiraError("the transformer proxy needs torch: pip install 'mira-select[embed]' or torch") from None
    return torch


def device():
    """CUDA when a GPU is visible (the bigger proxy specs are meant for one), else the CPU (the default here)."""
    torch = _torch()
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def build_model(spec: ProxySpec):
    torch = _torch()
    nn = torch.nn

    class TinyGPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(257, spec.width)
            self.pos = nn.Embedding(spec.context, spec.width)
            layer = nn.TransformerEncoderLayer(spec.width, spec.heads, 4 * spec.width, dropout=0.0,
                                               batch_first=True, norm_first=True)
            self.blocks = nn.TransformerEncoder(layer, spec.layers, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(spec.width)
            self.head = nn.Linear(spec.width, 257, bias=False)

        def forward(self, x):
            n = x.shape[1]
            mask = torch.triu(torch.full((n, n), float("-inf"), device=x.device), diagonal=1)
            h = self.tok(x) + self.pos(torch.arange(n, device=x.device))
            return self.head(self.norm(self.blocks(h, mask=mask, is_causal=True)))

    return TinyGPT()


def training_stream(texts: list[str], n_bytes: int, seed: int) -> np.ndarray:
    """``n_bytes`` of training data: documents drawn in a seeded order, separated by BOS, cut at the budget."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(texts))
    parts, size = [], 0
    for i in order:
        b = np.frombuffer(texts[i].encode("utf-8", "surrogatepass"), dtype=np.uint8).astype(np.int64)
        parts += [np.array([BOS]), b]
        size += len(b) + 1
        if size >= n_bytes:
            break
    stream = np.concatenate(parts)[:n_bytes] if parts else np.zeros(0, np.int64)
    if len(stream) < n_bytes:  # a selection smaller than the budget is repeated, never padded with noise
        stream = np.resize(stream, n_bytes)
    return stream


def train(stream: np.ndarray, spec: ProxySpec, seed: int):
    torch = _torch()
    torch.manual_seed(seed)
    dev = device()
    model = build_model(spec).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=0.01)
    rng = np.random.default_rng(seed + 1)
    steps = max(1, len(stream) // (spec.batch * spec.context))
    warm = max(1, steps // 20)
    data = torch.from_numpy(stream).to(dev)
    model.train()
    for step in range(steps):
        lr = spec.lr * min(1.0, (step + 1) / warm) * 0.5 * (1 + math.cos(math.pi * step / steps))
        for g in opt.param_groups:
            g["lr"] = lr
        starts = torch.from_numpy(rng.integers(0, len(stream) - spec.context - 1, size=spec.batch)).to(dev)
        offsets = starts[:, None] + torch.arange(spec.context, device=dev)[None, :]
        x, y = data[offsets], data[offsets + 1]
        loss = torch.nn.functional.cross_entropy(model(x).reshape(-1, 257), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model


def continuation_loss(model, prompt: str, target: str, context: int, batch: int = 64) -> tuple[float, int]:
    """(summed NLL in nats of the target's bytes given the prompt, number of target bytes); sliding windows with
    at least half a context of history for every scored byte. The windows of one text go through the model
    together (right-padded; the mask is causal, so padding never reaches a scored position)."""
    torch = _torch()
    p = [BOS] + list(prompt.encode("utf-8", "surrogatepass"))
    full = p + list(target.encode("utf-8", "surrogatepass"))
    stride = context // 2
    windows = []  # (input bytes, first scored offset in the window, target bytes)
    for start in range(len(p), len(full), stride):
        end = min(start + stride, len(full))
        lo = max(0, end - 1 - context)
        windows.append((full[lo:end - 1], start - 1 - lo, full[start:end]))
    total, n = 0.0, 0
    dev = next(model.parameters()).device
    with torch.no_grad():
        for b in range(0, len(windows), batch):
            chunk = windows[b:b + batch]
            width = max(len(x) for x, _, _ in chunk)
            x = torch.tensor([x + [0] * (width - len(x)) for x, _, _ in chunk], device=dev)
            logp = torch.log_softmax(model(x).float(), dim=-1)
            rows = torch.cat([torch.full((len(t),), r, dtype=torch.long) for r, (_, _, t) in enumerate(chunk)])
            cols = torch.cat([torch.arange(off, off + len(t)) for _, off, t in chunk])
            tgts = torch.tensor([v for _, _, t in chunk for v in t])
            total -= float(logp[rows.to(dev), cols.to(dev), tgts.to(dev)].sum())
            n += len(tgts)
    return total, n

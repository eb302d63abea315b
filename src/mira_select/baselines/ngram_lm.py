"""A count-based n-gram language model over hashed tokens, smoothed recursively (Dirichlet / MacKay-Peto).

Used twice: as the ppl baseline's reference LM (CCNet-style: fit on a reference sample, keep the records it finds
least surprising) and as the fast, deterministic proxy of `mira eval` (fit on a whole selection, measure loss on
benchmark solutions). Tokens are `hashing.tokenize_batch` tokens (words, punctuation, whitespace runs), hashed into
``2**bits`` buckets per order; memory is fixed by ``bits`` whatever the training size.

    p_n(w | h) = (c(h w) + k * p_{n-1}(w | h')) / (c(h) + k),   p_0(w) = (c(w) + 1) / (N + 2**bits)

Why this smoothing: one parameter, no held-out tuning, never zero, and it backs off gracefully where a long
context was never seen — what a proxy that must be identical for every variant needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from ..hashing import MIX, batches, ngram_hashes, stream_batches, tokenize_batch
from ..workspace import atomic_path

_SALT = np.uint64(0x51ED270B27A2C4F1)
HEAD_CHARS_PER_TOKEN = 16  # a head this long almost always holds the scored prefix (exactness is checked per text)


class HashedNgramLM:
    def __init__(self, order: int = 4, bits: int = 22, k: float = 2.0, max_chars: int | None = None):
        self.order, self.bits, self.k, self.max_chars = order, bits, k, max_chars
        self._shift = np.uint64(64 - bits)
        self.full = [np.zeros(1 << bits, np.uint32) for _ in range(order)]  # counts of n-grams, n = 1..order
        self.ctx = [np.zeros(1 << bits, np.uint32) for _ in range(order)]  # counts of (n-1)-gram contexts
        self.n_tokens = 0

    def _bucket(self, h: np.ndarray) -> np.ndarray:
        return (((h ^ _SALT) * MIX) >> self._shift).astype(np.int64)

    def _grams(self, hashes: np.ndarray, doc: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """For each position with n-1 tokens of context in its document: (bucket of the n-gram ending there,
        bucket of its context), aligned with positions n-1.. of each document."""
        gram, gdoc = ngram_hashes(hashes, doc, n)
        if n == 1:
            return self._bucket(gram), np.zeros(len(gram), np.int64)
        ctx, cdoc = ngram_hashes(hashes, doc, n - 1)
        # contexts are the (n-1)-grams that start where the n-gram starts: drop each doc's last (n-1)-gram
        keep = np.r_[cdoc[:-1] == cdoc[1:], False] if len(cdoc) else np.zeros(0, bool)
        return self._bucket(gram), self._bucket(ctx[keep])

    def fit(self, texts: Iterable[str], batch_chars: int = 1 << 20) -> "HashedNgramLM":
        for batch in stream_batches(texts, budget=batch_chars):
            self._add(batch)
        return self

    def save(self, path: Path) -> None:
        arrays = {f"full{i}": a for i, a in enumerate(self.full)} | {f"ctx{i}": a for i, a in enumerate(self.ctx)}
        meta = np.array([self.order, self.bits, self.n_tokens, -1 if self.max_chars is None else self.max_chars])
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, meta=meta, k=np.array(self.k), **arrays)

    @classmethod
    def load(cls, path: Path) -> "HashedNgramLM":
        z = np.load(path)
        order, bits, n_tokens, max_chars = (int(v) for v in z["meta"])
        lm = cls(order, bits, float(z["k"]), None if max_chars < 0 else max_chars)
        lm.full = [z[f"full{i}"] for i in range(order)]
        lm.ctx = [z[f"ctx{i}"] for i in range(order)]
        lm.n_tokens = n_tokens
        return lm

    def _add(self, texts: list[str]) -> None:
        tb = tokenize_batch(texts, self.max_chars)
        self.n_tokens += len(tb.hashes)
        for n in range(1, self.order + 1):
            full, ctx = self._grams(tb.hashes, tb.doc, n)
            self.full[n - 1] += np.bincount(full, minlength=1 << self.bits).astype(np.uint32)
            if n > 1:
                self.ctx[n - 1] += np.bincount(ctx, minlength=1 << self.bits).astype(np.uint32)

    def token_logprobs(self, hashes: np.ndarray) -> np.ndarray:
        """log p of every token of one sequence given its preceding tokens (natural log)."""
        m = len(hashes)
        doc = np.zeros(m, np.int64)
        p = (self.full[0][self._bucket(ngram_hashes(hashes, doc, 1)[0])] + 1.0) / (self.n_tokens + (1 << self.bits))
        for n in range(2, self.order + 1):
            if m < n:
                break
            full, ctx = self._grams(hashes, doc, n)
            c_full = self.full[n - 1][full].astype(np.float64)
            c_ctx = self.ctx[n - 1][ctx].astype(np.float64)
            # positions n-1.. have an order-n estimate; earlier positions keep their lower-order one
            p[n - 1:] = (c_full + self.k * p[n - 1:]) / (c_ctx + self.k)
        return np.log(p)

    def sequence_loss(self, prompt: str, target: str) -> tuple[float, int]:
        """(summed negative log-likelihood of the target's tokens given the prompt, number of target tokens)."""
        tb = tokenize_batch([prompt + target])
        n_prompt = len(tokenize_batch([prompt]).hashes) if prompt else 0
        lp = self.token_logprobs(tb.hashes)[n_prompt:]
        return float(-lp.sum()), int(len(lp))

    def doc_perplexity(self, texts: list[str], prefix_tokens: int) -> np.ndarray:
        """Per text: perplexity over its first ``prefix_tokens`` tokens (CCNet scores a capped prefix too).

        Only a head of each text is hashed (``HEAD_CHARS_PER_TOKEN`` characters per token of the prefix), about a
        million characters per call: whole texts in row-count batches cost ~50 bytes per byte of text, GBs for a
        batch of long records. A head that yields more than ``prefix_tokens`` tokens holds the whole prefix (the
        next token starts inside it), so the result is exactly that of the whole text; the rare text whose head
        does not is hashed whole, alone.
        """
        cap = prefix_tokens * HEAD_CHARS_PER_TOKEN
        heads = [t[:cap] for t in texts]
        out = np.empty(len(texts), np.float64)
        for lo, hi in batches(heads, cap):
            tb = tokenize_batch(heads[lo:hi], self.max_chars)
            starts = np.searchsorted(tb.doc, np.arange(hi - lo))
            ends = np.r_[starts[1:], len(tb.doc)]
            for i, (a, b) in enumerate(zip(starts, ends)):
                if b - a <= prefix_tokens and len(texts[lo + i]) > cap:
                    whole = tokenize_batch([texts[lo + i]], self.max_chars)
                    out[lo + i] = self._perplexity(whole.hashes[:prefix_tokens])
                else:
                    out[lo + i] = self._perplexity(tb.hashes[a:min(b, a + prefix_tokens)])
        return out

    def _perplexity(self, hashes: np.ndarray) -> float:
        lp = self.token_logprobs(hashes)
        return float(np.exp(-lp.mean())) if len(lp) else np.inf

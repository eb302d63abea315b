"""`hashed_linear`: hashed word and word-bigram features → ridge per anchor. The CPU default, at fastText's speed.

Why not scikit-learn's analyzers or the BPE tokenizer: both tokenise in Python or with per-document calls
(≈3k docs/s and ≈1.9 MB/s measured here, 4-15x slower than fastText). Here a batch of documents is one byte
buffer, and splitting, hashing and pairing tokens are a handful of vectorised numpy operations, so the
per-document Python cost disappears. The token rule suits code and prose alike: a run of word bytes
(letters, digits, ``_``, any non-ASCII byte) is a token, every punctuation byte is a token, and every whitespace
run is a token, so indentation, minified one-liners and boilerplate show up as features.

Like fastText, a document is the *mean* of its feature vectors: scoring multiplies a sparse [docs, buckets] count
matrix (built straight from the hashes, no sorting) with a dense [buckets, anchors] weight table. The log length is
one extra dense feature (teachers' scores track length, and a mean cannot see it). With ``structure`` the dense
structural signals of students/structure.py (repetition, compressibility, line layout, character make-up),
standardized on the training texts, join it: a mean of n-grams cannot see a repeated tool call or a shuffled file.
With ``embedder`` (``minilm``: the packaged transformer) the record's sentence embedding joins them too, its weight
against the n-grams chosen per anchor by leave-one-out (ridge.fit_ridge_with_block): an n-gram mean reads which
words a record uses, not how its sentences go together. Opt-in: the transformer scores ~40 records/s on 2 cores,
and on the demo it did not earn that (README, `student.kind`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..embed import get_embedder
from ..hashing import MIX, batches, indptr, tokenize_batch
from .base import Student, check_targets
from .structure import StructureScaler
from .ridge import clip_scores, fit_ridge, fit_ridge_with_block

_STEP = np.uint64(0x100000001B3)
# Mean-pooled features are tiny (1/n per feature); a constant scale keeps ridge's penalty grid in a sane range.
_SCALE = 100.0
ALPHAS = tuple(float(a) for a in np.logspace(-3, 3, 13))
# Candidate weights of the embedding block against the scaled n-gram means (unit-length embeddings; leave-one-out
# picks one per anchor, so the grid only has to span the plausible balance).
EMBED_SCALES = (1.0, 3.0, 10.0)


class WordHasher:
    """Stateless: a batch of texts → per feature family (words, word bigrams) the hashed buckets, grouped by doc."""

    def __init__(self, bits: int = 20, bigrams: bool = True, max_chars: int = 20_000):
        self.bits, self.bigrams, self.max_chars = bits, bigrams, max_chars
        self._shift = np.uint64(64 - bits)

    def hash_batch(self, texts: list[str]) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
        """-> ([(bucket, indptr) per family], log byte length per doc). ``bucket[indptr[d]:indptr[d+1]]`` are
        document d's features, as in a CSR matrix."""
        tb = tokenize_batch(texts, self.max_chars)
        n_docs, word, doc_of_token = tb.n_docs, tb.hashes, tb.doc
        log_len = np.log1p(tb.byte_lengths.astype(np.float32))
        families = [(self._bucket(word), indptr(doc_of_token, n_docs))]
        if self.bigrams:
            same = doc_of_token[1:] == doc_of_token[:-1]
            pair = (word[:-1] * _STEP + word[1:] + np.uint64(1))[same]
            families.append((self._bucket(pair), indptr(doc_of_token[1:][same], n_docs)))
        return families, log_len

    def _bucket(self, h: np.ndarray) -> np.ndarray:
        return ((h * MIX) >> self._shift).astype(np.int64)

    def transform(self, texts: list[str]):
        """The sparse training matrix: [n, 2**bits + 1] = scaled mean feature counts plus the log-length column."""
        from scipy import sparse

        families, log_len = self.hash_batch(texts)
        n_features = sum(np.diff(ptr) for _, ptr in families)
        shape = (len(texts), 1 << self.bits)
        x = sparse.csr_matrix(shape, dtype=np.float32)
        for bucket, ptr in families:
            x = x + sparse.csr_matrix((np.ones(len(bucket), np.float32), bucket, ptr), shape=shape)
        x = sparse.diags((_SCALE / np.maximum(n_features, 1)).astype(np.float32)) @ x
        return sparse.hstack([x, sparse.csr_matrix(log_len[:, None] / 10.0)]).tocsr()


class HashedLinearStudent(Student):
    kind = "hashed_linear"

    def __init__(self, anchors: list[str], bits: int = 20, bigrams: bool = True, max_chars: int = 20_000,
                 structure: bool = False, embedder: str | None = None, **extra: Any):
        if embedder is not None:  # only then in params: students saved before the option load unchanged
            extra = {"embedder": embedder, "embed_scales": list(extra.pop("embed_scales", EMBED_SCALES)), **extra}
        super().__init__(anchors, bits=bits, bigrams=bigrams, max_chars=max_chars, structure=structure, **extra)
        self.embedder = embedder
        self.hasher = WordHasher(bits, bigrams, max_chars)
        self.structure = structure
        self._table: np.ndarray | None = None  # [2**bits, k] weight per bucket (scaled), dense for fast gathers
        self._length_w = np.zeros(len(anchors), np.float32)
        self._intercept = np.zeros(len(anchors), np.float32)
        self._scaler = StructureScaler(structure)
        self._struct_w = np.zeros((len(self._scaler.mean), len(anchors)), np.float32)
        self._embed_w = np.zeros((0, len(anchors)), np.float32)  # [embedding dim, k] when ``embedder`` is set

    def fit(self, texts: list[str], y: np.ndarray, sources: list[str]) -> "HashedLinearStudent":
        from scipy import sparse

        y = check_targets(texts, y, self.anchors)
        x = self.hasher.transform(texts)
        if self.structure:
            x = sparse.hstack([x, sparse.csr_matrix(self._scaler.fit(texts))]).tocsr()
        # Only the columns some training text uses (~5 % of the 2**bits buckets): ridge gives unused columns a zero
        # weight anyway, and sklearn's solver works on the whole width (measured 10x faster on 172 labels).
        used = np.unique(x.indices)
        if self.embedder is None:
            coef_used, self._intercept, alpha = fit_ridge(x[:, used], y, alphas=ALPHAS)
        else:
            fitted, self._intercept, alpha, scale = fit_ridge_with_block(
                x[:, used], get_embedder(self.embedder).encode(texts), y,
                tuple(self.params["embed_scales"]), alphas=ALPHAS)
            coef_used, self._embed_w = fitted[:, :len(used)], np.ascontiguousarray(fitted[:, len(used):].T)
            self.params["embed_scale"] = scale.tolist()
        coef = np.zeros((coef_used.shape[0], x.shape[1]), np.float32)
        coef[:, used] = coef_used
        self.params["alpha"] = alpha.tolist()
        n_buckets = 1 << self.hasher.bits
        self._table = np.ascontiguousarray(coef[:, :n_buckets].T * _SCALE, dtype=np.float32)
        self._length_w = coef[:, n_buckets] / 10.0
        if self.structure:
            self._struct_w = np.ascontiguousarray(coef[:, n_buckets + 1:].T, dtype=np.float32)
        return self

    def predict(self, texts: list[str]) -> np.ndarray:
        from scipy import sparse

        if self._table is None:
            raise RuntimeError("student is not fitted")
        out = np.empty((len(texts), len(self.anchors)), np.float32)
        for lo, hi in batches(texts, self.hasher.max_chars):
            families, log_len = self.hasher.hash_batch(texts[lo:hi])
            shape = (len(log_len), len(self._table))
            sums = np.zeros((len(log_len), len(self.anchors)), np.float32)
            count = np.zeros(len(log_len), np.float32)
            for bucket, ptr in families:
                sums += sparse.csr_matrix((np.ones(len(bucket), np.float32), bucket, ptr), shape=shape) @ self._table
                count += np.diff(ptr)
            out[lo:hi] = sums / np.maximum(count, 1)[:, None] + log_len[:, None] * self._length_w + self._intercept
            if self.structure:
                out[lo:hi] += self._scaler.transform(texts[lo:hi]) @ self._struct_w
            if self.embedder is not None:
                out[lo:hi] += get_embedder(self.embedder).encode(texts[lo:hi]) @ self._embed_w
        return clip_scores(out)

    def _weights(self) -> dict[str, np.ndarray]:
        nz = np.flatnonzero(np.any(self._table != 0, axis=1))  # only buckets seen in training carry weight
        return {"bucket": nz.astype(np.int64), "rows": self._table[nz], "length_w": self._length_w,
                "intercept": self._intercept, "struct_w": self._struct_w, **self._scaler.weights(),
                **({"embed_w": self._embed_w} if self.embedder is not None else {})}

    def _set_weights(self, arrays: dict[str, np.ndarray]) -> None:
        self._table = np.zeros((1 << self.hasher.bits, len(self.anchors)), np.float32)
        self._table[arrays["bucket"]] = arrays["rows"]
        self._length_w = arrays["length_w"].astype(np.float32)
        self._intercept = arrays["intercept"].astype(np.float32)
        if "struct_w" in arrays:
            self._struct_w = arrays["struct_w"].astype(np.float32)
        if self.embedder is not None:
            self._embed_w = arrays["embed_w"].astype(np.float32)
        self._scaler.set_weights(arrays)

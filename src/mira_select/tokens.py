"""Token counting with a real tokenizer that works offline.

Budgets are in tokens, as the paper counts them (Qwen2.5-Coder's tokenizer), so counts must come from that
tokenizer, not a chars/4 guess. The tokenizer.json is bundled in the package (extracted from the Qwen2.5-Coder
GGUF, Apache-2.0) and loaded with the `tokenizers` library; counting is the expensive part of ingest, so it is
done once there, in batches, and stored as ``n_tokens``.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .errors import MiraError

BUILTIN = {
    # name -> (asset file, sha256 of the decompressed tokenizer.json)
    "qwen2.5-coder": (
        "qwen2.5-coder-tokenizer.json.zst",
        "6d97a4b1ef688a65f5d6e7c4d5dcdfebcf8216624846af8ed258bec3f0965197",
    ),
}


@dataclass(frozen=True)
class TokenizerInfo:
    name: str
    sha256: str
    vocab_size: int


class TokenCounter:
    """Counts tokens for batches of texts. Picklable by name, so each worker process loads it once."""

    def __init__(self, spec: str = "qwen2.5-coder"):
        self.spec = spec
        self._tok, self.info = _load(spec)

    def count(self, texts: list[str], max_chars_per_call: int = 1 << 20) -> list[int]:
        """Token count per text. Batches are cut at ~1 MB of text: an Encoding keeps ids, offsets and token
        strings (~100 bytes per token), so one call over a whole row group of long records would hold gigabytes."""
        out: list[int] = []
        start = 0
        while start < len(texts):
            end, size = start, 0
            while end < len(texts) and (end == start or size + len(texts[end]) <= max_chars_per_call):
                size += len(texts[end])
                end += 1
            out.extend(len(e.ids) for e in self._tok.encode_batch(texts[start:end], add_special_tokens=False))
            start = end
        return out

    def __reduce__(self):
        return (get_counter, (self.spec,))


@functools.lru_cache(maxsize=4)
def get_counter(spec: str) -> TokenCounter:
    return TokenCounter(spec)


def _load(spec: str):
    from tokenizers import Tokenizer

    if spec in BUILTIN:
        asset, expected = BUILTIN[spec]
        import zstandard

        raw = resources.files("mira_select.assets").joinpath(asset).read_bytes()
        data = zstandard.ZstdDecompressor().decompress(raw)
        digest = hashlib.sha256(data).hexdigest()
        if digest != expected:
            raise MiraError(
                f"bundled tokenizer {asset} is corrupt (sha256 {digest[:12]}…, expected {expected[:12]}…); "
                "reinstall mira-select"
            )
        name = spec
    else:
        path = Path(spec).expanduser()
        if not path.is_file():
            raise MiraError(
                f"tokenizer {spec!r} is neither a bundled name ({', '.join(BUILTIN)}) nor a tokenizer.json file"
            )
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        name = str(path.resolve())
    try:
        tok = Tokenizer.from_str(data.decode("utf-8"))
    except Exception as exc:  # tokenizers raises a bare Exception on bad JSON
        raise MiraError(f"cannot load tokenizer {spec!r}: {exc}") from None
    return tok, TokenizerInfo(name=name, sha256=digest, vocab_size=tok.get_vocab_size())

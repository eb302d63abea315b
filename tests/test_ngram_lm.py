"""The hashed n-gram LM of the ppl baseline and the eval proxy: a head of each text gives the whole text's score."""

from __future__ import annotations

import numpy as np

from mira_select.baselines.ngram_lm import HEAD_CHARS_PER_TOKEN, HashedNgramLM
from mira_select.hashing import tokenize_batch

from .conftest import demo_slice


def _whole_text_perplexity(lm: HashedNgramLM, texts: list[str], prefix: int) -> np.ndarray:
    tb = tokenize_batch(texts)
    starts = np.searchsorted(tb.doc, np.arange(len(texts)))
    ends = np.r_[starts[1:], len(tb.doc)]
    return np.array([lm._perplexity(tb.hashes[a:min(b, a + prefix)]) for a, b in zip(starts, ends)])


def test_doc_perplexity_on_heads_equals_the_whole_texts(tmp_path):
    path = demo_slice(tmp_path, ["text_manpages_debian", "code_python_pypi", "agent_glaive_toolcall"], 60)
    import orjson
    import zstandard

    texts = []
    for p in sorted(path.glob("*.zst")):
        raw = zstandard.ZstdDecompressor().stream_reader(open(p, "rb")).read()
        texts += [orjson.loads(line)["text"] for line in raw.splitlines()]
    lm = HashedNgramLM(order=3, bits=16).fit(texts[::2])
    prefix = 64
    long_word = "x" * (prefix * HEAD_CHARS_PER_TOKEN + 50) + " tail words"  # its head holds one cut token only
    few_long = ("word" * 40 + " ") * prefix  # 64 long tokens + spaces: the prefix runs past the head
    texts += [long_word, few_long, ""]
    assert max(len(t) for t in texts) > prefix * HEAD_CHARS_PER_TOKEN
    got = lm.doc_perplexity(texts, prefix)
    want = _whole_text_perplexity(lm, texts, prefix)
    assert np.array_equal(got, want)

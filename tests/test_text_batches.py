"""Char-bounded reading: every text reader's memory is bounded by characters, not rows, and the batching never
changes a result."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from mira_select.baselines.dsir import DSIRWeights
from mira_select.baselines.ngram_lm import HashedNgramLM
from mira_select.io.shards import shard_writer, text_batches

from .conftest import DEMO_CORPUS


def _demo_texts(n: int = 600) -> list[str]:
    import orjson
    import zstandard

    out = []
    for path in sorted(DEMO_CORPUS.glob("*.jsonl.zst")):
        lines = zstandard.ZstdDecompressor().decompress(path.read_bytes(), max_output_size=1 << 30).splitlines()
        out += [orjson.loads(line)["text"] for line in lines[: n // 20]]
    return out


def test_text_batches_are_cut_by_characters_and_cover_the_shard(tmp_path):
    texts = _demo_texts()
    path = tmp_path / "part-00000.parquet"
    schema = pa.schema([pa.field("id", pa.string()), pa.field("text", pa.string())])
    with shard_writer(path, schema) as w:  # one big row group: the cut must come from the reader
        w.write_rows({"id": [str(i) for i in range(len(texts))], "text": texts})
    budget = 50_000
    batches = list(text_batches(path, ["id", "text"], max_chars=budget))
    got = [t for b in batches for t in b.column("text").to_pylist()]
    assert got == texts
    assert [i for b in batches for i in b.column("id").to_pylist()] == [str(i) for i in range(len(texts))]
    # a batch ends at the first 64-row read that reaches the budget: at most one read beyond it
    longest_read = max(sum(map(len, texts[i:i + 64])) for i in range(0, len(texts), 64))
    assert len(batches) > 3
    assert max(sum(map(len, b.column("text").to_pylist())) for b in batches) < budget + longest_read


def test_dsir_and_ngram_counts_do_not_depend_on_the_batch_size():
    texts = _demo_texts(300)
    a, b = DSIRWeights(1000), DSIRWeights(1000)
    a._count(iter(texts), a.raw)
    b._count(iter(texts), b.raw, budget=5_000)
    assert a.raw.sum() > 0 and np.array_equal(a.raw, b.raw)
    lm1 = HashedNgramLM(order=3, bits=16).fit(texts)
    lm2 = HashedNgramLM(order=3, bits=16).fit(texts, batch_chars=5_000)
    assert lm1.n_tokens == lm2.n_tokens > 0
    assert all(np.array_equal(x, y) for x, y in zip(lm1.full + lm1.ctx, lm2.full + lm2.ctx))


def test_mira_processes_take_arrow_buffers_from_the_system_allocator_unless_told_otherwise():
    """pyarrow's default pool keeps freed memory (RSS grew with bytes read); mira switches its processes to the
    C allocator, but a user's ARROW_DEFAULT_MEMORY_POOL wins."""
    import os
    import subprocess
    import sys

    code = ("from mira_select.executor.base import use_system_allocator; use_system_allocator(); "
            "import pyarrow as pa; print(pa.default_memory_pool().backend_name)")
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "system"
    out = subprocess.run([sys.executable, "-c", code], env={**env, "ARROW_DEFAULT_MEMORY_POOL": "mimalloc"},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "mimalloc"

"""Seeded, streaming samples of workspace records (reservoir sampling per key).

Stages sample the corpus many times (teacher check, grouping, discovery, labeling). Reading shards batch by batch
and keeping only ``n`` records per key keeps memory independent of corpus size, and a seed per key makes every
sample reproducible for the same workspace.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Callable

import pyarrow.parquet as pq

from .workspace import Workspace


@dataclass(frozen=True)
class SampledRecord:
    id: str
    source: str
    format: str
    text: str
    n_tokens: int


def _rng(seed: int, key: str) -> random.Random:
    return random.Random(int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "little"))


def reservoir_sample(ws: Workspace, sources: list[str], n: int, seed: int,
                     key: Callable[[str, str], str] = lambda source, fmt: source) -> dict[str, list[SampledRecord]]:
    """Up to ``n`` records per key (default: per source), uniformly at random, in a stable order."""
    reservoirs: dict[str, list[tuple[int, SampledRecord]]] = {}
    seen: dict[str, int] = {}
    rngs: dict[str, random.Random] = {}
    cols = ["id", "source", "format", "text", "n_tokens"]
    for source in sources:
        for shard in ws.record_shards(source):
            pf = pq.ParquetFile(shard)
            for batch in pf.iter_batches(batch_size=1024, columns=cols):
                d = batch.to_pydict()
                for i in range(batch.num_rows):
                    k = key(d["source"][i], d["format"][i])
                    rng = rngs.setdefault(k, _rng(seed, k))
                    count = seen[k] = seen.get(k, 0) + 1
                    slot = count - 1 if count <= n else rng.randrange(count)
                    if slot < n:
                        rec = SampledRecord(d["id"][i], d["source"][i], d["format"][i], d["text"][i],
                                            d["n_tokens"][i])
                        res = reservoirs.setdefault(k, [])
                        if count <= n:
                            res.append((count, rec))
                        else:
                            res[slot] = (count, rec)
    return {k: [r for _, r in sorted(v, key=lambda t: t[0])] for k, v in sorted(reservoirs.items())}

"""Seeded, streaming samples of workspace records (reservoir and priority sampling per key).

Stages sample the corpus many times (teacher check, grouping, discovery, labeling). Reading shards batch by batch
and keeping only ``n`` records per key keeps memory independent of corpus size, and a seed per key makes every
sample reproducible for the same workspace.
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import math
import random
from collections import Counter
from dataclasses import dataclass
from typing import Callable

import pyarrow.parquet as pq

from .io.shards import rows_at
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
    """Up to ``n`` records per key (default: per source), uniformly at random, in a stable order.

    Two passes: which rows win a reservoir slot depends only on each key's running count, so the first pass reads
    just the ``source`` and ``format`` columns (dictionary-encoded, a few bytes per record) and keeps row positions;
    the second reads the other columns of the row groups that hold a winner, and only those rows. Texts of records
    that are not sampled are never decoded, and memory holds ``n`` positions per key.
    """
    shards = [(source, shard) for source in sources for shard in ws.record_shards(source)]
    winners: dict[str, list[tuple[int, int, int]]] = {}  # key -> [(count, shard index, row)]
    seen: dict[str, int] = {}
    rngs: dict[str, random.Random] = {}
    for si, (_, shard) in enumerate(shards):
        row0 = 0
        for batch in pq.ParquetFile(shard).iter_batches(batch_size=8192, columns=["source", "format"]):
            d = batch.to_pydict()
            for i in range(batch.num_rows):
                k = key(d["source"][i], d["format"][i])
                rng = rngs.setdefault(k, _rng(seed, k))
                count = seen[k] = seen.get(k, 0) + 1
                slot = count - 1 if count <= n else rng.randrange(count)
                if slot < n:
                    res = winners.setdefault(k, [])
                    if count <= n:
                        res.append((count, si, row0 + i))
                    else:
                        res[slot] = (count, si, row0 + i)
            row0 += batch.num_rows
    records = _read_rows(shards, {(si, row) for res in winners.values() for _, si, row in res})
    return {k: [records[(si, row)] for _, si, row in sorted(v)] for k, v in sorted(winners.items())}


def _read_rows(shards: list[tuple[str, object]], wanted: set[tuple[int, int]]) -> dict[tuple[int, int], SampledRecord]:
    """The records at (shard index, row) positions, decoding only the row groups that hold one."""
    by_shard: dict[int, list[int]] = {}
    for si, row in wanted:
        by_shard.setdefault(si, []).append(row)
    out: dict[tuple[int, int], SampledRecord] = {}
    for si, rows in by_shard.items():
        d = rows_at(shards[si][1], rows, ["id", "source", "format", "text", "n_tokens"]).to_pydict()
        for j, r in enumerate(rows):
            out[(si, r)] = SampledRecord(d["id"][j], d["source"][j], d["format"][j], d["text"][j], d["n_tokens"][j])
    return out


def round_robin_sample(ws: Workspace, sources: list[str], n: int, seed: int) -> list[SampledRecord]:
    """About n records spread evenly over the sources (round-robin), seeded; short sources give what they have.

    Each source's pool holds twice its even share, so sources with spare records fill in for short ones.
    """
    per = math.ceil(n / max(len(sources), 1))
    pools = reservoir_sample(ws, sources, n=max(per * 2, per + 8), seed=seed)
    return _interleave([list(pools.get(s, [])) for s in sources], n)


POOL_PER_SOURCE = 256


def length_stratified_sample(ws: Workspace, sources: list[str], n: int, seed: int, bins: int = 4,
                             pool: int = POOL_PER_SOURCE) -> list[SampledRecord]:
    """About n records spread evenly over the sources and, within a source, over its length quantile bins.

    A uniform sample of a source is mostly its typical length; a student trained on it never sees the source's
    short and long ends and then ranks them by length alone. Each source's order is fixed by the seed and ``pool``,
    never by n, so samples are nested: the sample of n is the first n of the sample of any larger n, and raising
    ``label.records_per_group`` only adds labels (the teacher cache answers the earlier ones). The order: a seeded
    reservoir of ``pool`` records, binned by its token-count quantiles and taken round-robin over the bins (every bin
    is represented before any gives a second record); then, only for a source whose whole reservoir the sample
    takes, its other records binned by the same edges, each bin in the order of a seeded hash of the record id (a
    priority sample: the k lowest of a larger k are the same records), round-robin again.
    """
    pools = reservoir_sample(ws, sources, n=pool, seed=seed)
    edges = {s: _quantile_edges([r.n_tokens for r in pools.get(s, [])], bins) for s in sources}
    queues = {s: _binned_order(pools.get(s, []), edges[s]) for s in sources}
    order = _interleave([queues[s] for s in sources], n)
    # Only a source whose whole reservoir was taken can reach the records beyond it (a short reservoir is the whole
    # source); extending the others would change nothing, so their records are not read again.
    taken = Counter(r.source for r in order)
    beyond = [s for s in sources if len(queues[s]) >= pool and taken[s] >= pool]
    if not beyond:
        return order
    extra = _priority_beyond(ws, beyond, n - pool, seed, edges, {s: {r.id for r in pools[s]} for s in beyond})
    for s in beyond:
        queues[s] += extra[s]
    return _interleave([queues[s] for s in sources], n)


def _binned_order(records: list[SampledRecord], edges: list[float]) -> list[SampledRecord]:
    """``records`` binned by ``edges``, each bin keeping their order, taken round-robin over the non-empty bins."""
    by_bin: list[list[SampledRecord]] = [[] for _ in range(len(edges) + 1)]
    for r in records:
        by_bin[length_bin(r.n_tokens, edges)].append(r)
    return _interleave([b for b in by_bin if b], len(records))


def _priority_beyond(ws: Workspace, sources: list[str], k: int, seed: int, edges: dict[str, list[float]],
                     taken: dict[str, set[str]]) -> dict[str, list[SampledRecord]]:
    """Per source, up to k records of each length bin outside ``taken``, lowest seeded id hash first, in
    `_binned_order`. Reads ids and token counts of every row, texts of the winners only; memory is bins x k per
    source. A bin never runs out within the first k taken unless the source has no more of it, so the order's first
    m records do not depend on k >= m."""
    out: dict[str, list[SampledRecord]] = {}
    for source in sources:
        shards = [(source, shard) for shard in ws.record_shards(source)]
        heaps: list[list[tuple[int, int, int]]] = [[] for _ in range(len(edges[source]) + 1)]
        for si, (_, shard) in enumerate(shards):
            row0 = 0
            for batch in pq.ParquetFile(shard).iter_batches(batch_size=8192, columns=["id", "n_tokens"]):
                d = batch.to_pydict()
                for i, (rid, n_tok) in enumerate(zip(d["id"], d["n_tokens"])):
                    if rid in taken[source]:
                        continue
                    heap = heaps[length_bin(n_tok, edges[source])]
                    entry = (-_priority(seed, source, rid), si, row0 + i)  # a max-heap of the k lowest
                    if len(heap) < k:
                        heapq.heappush(heap, entry)
                    elif entry > heap[0]:
                        heapq.heapreplace(heap, entry)
                row0 += batch.num_rows
        ranked = sorted((-neg, si, row) for heap in heaps for neg, si, row in heap)
        records = _read_rows(shards, {(si, row) for _, si, row in ranked})
        out[source] = _binned_order([records[(si, row)] for _, si, row in ranked], edges[source])
    return out


def _priority(seed: int, source: str, record_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{seed}:{source}:{record_id}".encode(), digest_size=8).digest(), "little")


def length_bin(n_tokens: int, edges: list[float]) -> int:
    return bisect.bisect_right(edges, n_tokens)


def _quantile_edges(lengths: list[int], bins: int) -> list[float]:
    """Inner bin edges (bins - 1 of them, duplicates removed) of the token-count distribution."""
    if len(lengths) < 2 or bins < 2:
        return []
    ordered = sorted(lengths)
    edges = [ordered[min(len(ordered) - 1, (len(ordered) * q) // bins)] for q in range(1, bins)]
    return sorted(set(edges))


def _interleave(queues: list[list[SampledRecord]], n: int) -> list[SampledRecord]:
    """Take one from each queue in turn until n are taken or every queue is empty."""
    queues = [list(q) for q in queues]
    out: list[SampledRecord] = []
    while len(out) < n and any(queues):
        for q in queues:
            if q and len(out) < n:
                out.append(q.pop(0))
    return out

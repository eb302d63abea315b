"""Exact and near-duplicate detection across all sources.

Per record (in the parallel per-shard pass): a hash of the normalized text, and a MinHash signature of its word
n-gram set (datasketch). Then one pass over every shard in config order decides: the first occurrence of a text
is kept and later ones are exact duplicates; a record whose signature collides in the LSH index with an earlier kept
record is a near duplicate of that record's cluster. "First in config order" makes the choice reproducible and lets a
user rank sources by listing the preferred one first.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np

_WORD = re.compile(r"\w+")
MAX_CHARS = 100_000  # signatures from the first 100k characters: near-duplicates agree long before that
SEED = 1
SCHEME = "affine32"  # datasketch's default: 32-bit hash values, so a signature is stored as uint32


def text_hash(text: str) -> str:
    """Case- and whitespace-insensitive identity of a text."""
    norm = " ".join(text.lower().split())
    return hashlib.blake2b(norm.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()


def shingles(text: str, n: int) -> set[bytes]:
    words = _WORD.findall(text[:MAX_CHARS].lower())
    if len(words) < n:
        return {" ".join(words).encode()} if words else {b""}
    return {" ".join(words[i:i + n]).encode() for i in range(len(words) - n + 1)}


def signatures(texts: list[str], n: int, num_perm: int) -> np.ndarray:
    """-> uint32 [len(texts), num_perm] MinHash signatures (one shared permutation set for the batch)."""
    from datasketch import MinHash

    if not texts:
        return np.zeros((0, num_perm), np.uint32)
    hashes = MinHash.bulk([shingles(t, n) for t in texts], num_perm=num_perm, seed=SEED, scheme=SCHEME)
    return np.stack([h.hashvalues for h in hashes]).astype(np.uint32)


class DuplicateIndex:
    """The global pass: feed records in config order, get each one's verdict."""

    def __init__(self, threshold: float, num_perm: int, near: bool = True):
        from datasketch import MinHashLSH

        self.num_perm = num_perm
        self.lsh = MinHashLSH(threshold=threshold, num_perm=num_perm) if near else None
        self._permutations = None  # drawn once: a MinHash built without them draws them again (0.2 ms per record)
        self.first_of_hash: dict[str, str] = {}
        self.cluster_of: dict[str, str] = {}  # kept record id -> its near-duplicate cluster id
        self.clusters: set[str] = set()  # clusters with at least one near duplicate
        self._order: dict[str, int] = {}  # kept record id -> position in config order

    def add(self, record_id: str, h: str, signature: np.ndarray) -> tuple[str | None, str | None]:
        """-> (exact duplicate of, near duplicate of): ids of the earlier records, or None."""
        from datasketch import LeanMinHash, MinHash

        first = self.first_of_hash.get(h)
        if first is not None:
            return first, None
        self.first_of_hash[h] = record_id
        if self.lsh is None:
            return None, None
        mh = MinHash(num_perm=self.num_perm, seed=SEED, hashvalues=signature.astype(np.uint64), scheme=SCHEME,
                     permutations=self._permutations)
        self._permutations = mh.permutations
        mh = LeanMinHash(mh)
        hits = self.lsh.query(mh)
        if hits:
            host = min(hits, key=self._order.__getitem__)
            cluster = self.cluster_of[host]
            self.clusters.add(cluster)
            return None, cluster
        self._order[record_id] = len(self._order)
        self.cluster_of[record_id] = record_id
        self.lsh.insert(record_id, mh)
        return None, None

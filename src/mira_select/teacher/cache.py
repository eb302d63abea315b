"""sqlite response cache: a re-run of any stage makes zero teacher calls for what was already answered.

Keyed by a hash of (backend kind, model, request, prompt version), so changing the model, a prompt file or a
sampling parameter misses the cache, and nothing else does. WAL mode keeps it consistent across ``kill -9`` and lets
several processes read while one writes; each write is its own short transaction.

A second table holds *decisions*: results of floating-point steps whose output becomes part of a teacher prompt
(which judgment points form a cluster, which anchors merge). Embeddings and KMeans differ in their last bits between
CPUs (the distilled embedder is computed by torch/MKL, KMeans runs on BLAS kernels chosen per CPU), and KMeans's
best-of-n_init turns such noise into a different partition: every cluster's prompt, then every label prompt, then
misses the cache. Recorded once, keyed by the step's exact inputs, the decision makes a cached run replay on any
machine.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable

import orjson


def cache_key(backend: str, model: str, request_fields: dict[str, Any]) -> str:
    payload = orjson.dumps({"backend": backend, "model": model, **request_fields}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(payload).hexdigest()


class ResponseCache:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, timeout=60, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, model TEXT, response BLOB, created REAL)"
        )
        self._conn.execute("CREATE TABLE IF NOT EXISTS decisions (key TEXT PRIMARY KEY, kind TEXT, value BLOB, "
                           "created REAL)")

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
        return orjson.loads(row[0]) if row else None

    def put(self, key: str, model: str, response: dict[str, Any]) -> None:
        blob = orjson.dumps(response)
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO responses (key, model, response, created) VALUES (?, ?, ?, ?)",
                (key, model, blob, time.time()),
            )

    @staticmethod
    def decision_key(kind: str, inputs: Any) -> str:
        return hashlib.sha256(orjson.dumps({"kind": kind, "inputs": inputs}, option=orjson.OPT_SORT_KEYS
                                           | orjson.OPT_SERIALIZE_NUMPY)).hexdigest()

    def decision(self, kind: str, inputs: Any, compute: Callable[[], Any]) -> Any:
        """The recorded result of a floating-point step with these exact inputs, or ``compute()``, recorded (JSON)."""
        key = self.decision_key(kind, inputs)
        with self._lock:
            row = self._conn.execute("SELECT value FROM decisions WHERE key = ?", (key,)).fetchone()
        if row:
            return orjson.loads(row[0])
        value = compute()
        blob = orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO decisions (key, kind, value, created) VALUES (?, ?, ?, ?)",
                               (key, kind, blob, time.time()))
        return orjson.loads(blob)

    def __len__(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._conn.close()

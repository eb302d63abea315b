"""Records of the bundled demo corpus for the benchmarks (and the teacher tests): the first n of each source."""

from __future__ import annotations

import io
from pathlib import Path

import orjson
import zstandard

DEMO_CORPUS = Path(__file__).resolve().parents[1] / "data" / "demo" / "corpus"
PREFIX_FORMAT = {"agent": "agent", "code": "code", "qa": "qa", "text": "text", "think": "qa_think"}


def corpus_records(per_source: dict[str, int]) -> list[tuple[str, str, str]]:
    """(id, format, text) of the first records of demo sources; format from the file-name prefix."""
    out = []
    for name, n in per_source.items():
        with open(DEMO_CORPUS / f"{name}.jsonl.zst", "rb") as fh:
            reader = io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(fh), encoding="utf-8")
            for _, line in zip(range(n), reader):
                r = orjson.loads(line)
                out.append((r["id"], PREFIX_FORMAT[name.split("_")[0]], r["text"]))
    return out

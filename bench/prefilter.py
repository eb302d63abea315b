"""Prefilter throughput: our per-record rules vs datatrove's own pipeline running the same filters, same records.

    python bench/prefilter.py [--records 3000]

Both sides run in one process on the text records of the demo corpus (Gopher repetition, Gopher quality, C4
quality, FineWeb quality; datatrove's classes with the same settings). Ours evaluates every rule on every record
(a record keeps all its flags: a flag is a student feature and a report row); datatrove's pipeline drops a document
at its first failing filter, so later filters see fewer documents — its figure is the cheaper of the two by design.
A second row times our whole `mira prefilter` rule pass over every format (text, code, agent, QA rules + dedup keys).
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import orjson
import zstandard

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mira_select.config import PrefilterConfig  # noqa: E402
from mira_select.prefilter.dedup import signatures, text_hash  # noqa: E402
from mira_select.prefilter.rules import record_flags, rules_batch  # noqa: E402

CORPUS = ROOT / "data" / "demo" / "corpus"
TEXT = ["text_django_docs", "text_manpages_debian", "text_python_pkg_docs", "text_tldr_pages",
        "text_changelogs_licenses"]
ALL = {"text": TEXT, "code": ["code_python_pypi", "code_javascript_npm", "code_c_curl"],
       "agent": ["agent_glaive_toolcall", "agent_fireact_react"], "qa": ["qa_gpteacher_codegen"]}


def read(names: list[str], n: int) -> list[dict]:
    out = []
    per = max(1, n // len(names))
    for name in names:
        with open(CORPUS / f"{name}.jsonl.zst", "rb") as fh:
            reader = io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(fh), encoding="utf-8")
            for _, line in zip(range(per), reader):
                r = orjson.loads(line)
                out.append({"id": r["id"], "text": r["text"]})
    return out


def ours(records: list[dict], fmt: str, cfg: PrefilterConfig, dedup: bool = False) -> float:
    start = time.perf_counter()
    for i in range(0, len(records), 256):  # as stages/prefilter.py: one tokenizer memory zone per batch
        with rules_batch():
            for r in records[i:i + 256]:
                record_flags(r["text"], fmt, cfg)
    if dedup:
        texts = [r["text"] for r in records]
        [text_hash(t) for t in texts]
        signatures(texts, cfg.rules.near_dup.ngram, cfg.rules.near_dup.num_perm)
    return time.perf_counter() - start


def datatrove_pipeline(records: list[dict]) -> float:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter, GopherQualityFilter,
                                            GopherRepetitionFilter)
    from datatrove.pipeline.readers import JsonlReader

    tmp = Path(tempfile.mkdtemp(prefix="mira-bench-prefilter-"))
    (tmp / "in").mkdir()
    (tmp / "in" / "docs.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    pipeline = [JsonlReader(str(tmp / "in")), GopherRepetitionFilter(), GopherQualityFilter(),
                C4QualityFilter(filter_no_terminal_punct=False), FineWebQualityFilter()]
    ex = LocalPipelineExecutor(pipeline=pipeline, tasks=1, workers=1, logging_dir=str(tmp / "logs"))
    start = time.perf_counter()
    ex.run()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=3000)
    args = ap.parse_args()
    cfg = PrefilterConfig()
    text = read(TEXT, args.records)
    mb = sum(len(r["text"].encode()) for r in text) / 1e6
    ours(text[:50], "text", cfg)  # warm: datatrove's filters and spaCy load once
    t_ours = ours(text, "text", cfg)
    t_dt = datatrove_pipeline(text)
    print(f"\nprefilter text rules on {len(text):,} demo text records ({mb:.1f} MB), 1 process\n")
    print(f"{'implementation':<44} {'records/s':>10} {'MB/s':>7}")
    print(f"{'mira: all 4 rules on every record (flags)':<44} {len(text) / t_ours:>10,.0f} {mb / t_ours:>7.2f}")
    print(f"{'datatrove pipeline: reader + same 4 filters':<44} {len(text) / t_dt:>10,.0f} {mb / t_dt:>7.2f}")
    rows = []
    for fmt, names in ALL.items():
        recs = read(names, args.records // 2)
        size = sum(len(r["text"].encode()) for r in recs) / 1e6
        t = ours(recs, fmt, cfg, dedup=True)
        rows.append((fmt, len(recs), size, t))
    print("\nmira prefilter, every rule of the format + dedup keys (normalized hash, MinHash 128), 1 process\n")
    print(f"{'format':<8} {'records':>8} {'MB':>6} {'records/s':>10} {'MB/s':>7}")
    for fmt, n, size, t in rows:
        print(f"{fmt:<8} {n:>8,} {size:>6.1f} {n / t:>10,.0f} {size / t:>7.2f}")


if __name__ == "__main__":
    main()

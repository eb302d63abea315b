"""End to end on the bundled real corpus: every source ingested, formats detected as the corpus says."""

import collections
import json

import pyarrow.parquet as pq

from .conftest import DEMO_CORPUS

GROUP_TO_FORMAT = {"text": "text", "code": "code", "qa": "qa", "qa_think": "qa_think", "agent": "agent"}


def test_every_source_has_records_and_tokens(demo_ws):
    m = json.loads((demo_ws / "manifest.json").read_text())
    names = sorted(p.name.removesuffix(".jsonl.zst") for p in DEMO_CORPUS.glob("*.jsonl.zst"))
    assert sorted(m["sources"]) == names and len(names) == 22
    for name, s in m["sources"].items():
        assert s["records"] > 0 and s["tokens"] > 0, name
        assert s["input_lines"] == s["records"] + s["quarantined"] + s["dropped"], name
        assert s["quarantined"] == 0, (name, s["quarantine_reasons"])  # the demo corpus is clean JSONL
    assert m["tokenizer"]["name"] == "qwen2.5-coder" and len(m["tokenizer"]["sha256"]) == 64
    # chars per token on this mix: a real BPE lands between 2.5 and 5 (chars/4 guesses would not vary by source)
    ratio = m["totals"]["bytes"] / m["totals"]["tokens"]
    assert 2.5 < ratio < 5


def test_formats_match_the_corpus_ground_truth(demo_ws, ground_truth):
    m = json.loads((demo_ws / "manifest.json").read_text())
    right = total = 0
    per_group = collections.Counter()
    for name in m["sources"]:
        truth = ground_truth(name)
        expected = GROUP_TO_FORMAT[next(iter(truth.values()))["group"]]
        assert m["sources"][name]["format"] == expected, (name, m["sources"][name]["formats"])
        table = pq.read_table(demo_ws / "records" / name / "part-00000.parquet", columns=["id", "format"])
        for rid, fmt in zip(*(table.column(c).to_pylist() for c in ("id", "format"))):
            ok = fmt == GROUP_TO_FORMAT[truth[rid]["group"]]
            right += ok
            total += 1
            per_group[(truth[rid]["group"], ok)] += 1
    assert right / total >= 0.98, per_group


def test_ground_truth_fields_never_reach_the_workspace(demo_ws):
    for shard in (demo_ws / "records").rglob("part-*.parquet"):
        for meta in pq.read_table(shard, columns=["meta"]).column("meta").to_pylist():
            row = json.loads(meta)
            assert "group" not in row and "format" not in row
            assert "lowq_kind" not in (row.get("meta") or {})

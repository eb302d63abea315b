"""Bad input never crashes and never silently drops: every rejected line is quarantined with file, line, reason."""

import json
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import zstandard

from mira_select.config import load_config
from mira_select.stages.ingest import IngestStage

from .conftest import write_config, write_jsonl


def _quarantine(ws: Path, source: str) -> list[dict]:
    return [json.loads(l) for l in (ws / "quarantine" / f"{source}.jsonl").read_text().splitlines()]


def test_each_kind_of_bad_line_is_quarantined_with_a_reason(tmp_path: Path):
    big = "x" * (10 * 1024 * 1024)
    lines = [
        orjson.dumps({"id": "ok-1", "text": "fine record"}),
        b'{"id": "trunc", "text": "cut off in the mid',  # truncated JSON
        b'{"id": "bad-utf8", "text": "caf\xe9 au lait"}',  # latin-1 byte, not UTF-8
        orjson.dumps({"id": "empty", "text": "   "}),
        orjson.dumps({"id": "huge", "text": big}),
        orjson.dumps({"text": "no id here"}),  # gets <source>/<file>/<line>
        orjson.dumps({"id": "ok-1", "text": "duplicate id"}),
        b'["a", "list"]',
        b"42",
        b"",  # blank line: dropped and counted
        orjson.dumps({"id": "no-text", "body": "wrong field"}),
        orjson.dumps({"id": "num-text", "text": 7}),
        orjson.dumps({"id": "ok-2", "text": "another fine record"}),
    ]
    write_jsonl(tmp_path / "in" / "bad.jsonl", lines)
    # A truncated .zst file: first half of a compressed stream of 5000 good lines.
    good = b"".join(orjson.dumps({"id": f"z{i}", "text": f"line {i} " * 20}) + b"\n" for i in range(5000))
    comp = zstandard.ZstdCompressor().compress(good)
    (tmp_path / "in" / "cut.jsonl.zst").write_bytes(comp[: len(comp) // 2])

    cfg = load_config(write_config(tmp_path, [
        {"name": "bad", "paths": ["in/bad.jsonl"]},
        {"name": "cut", "paths": ["in/cut.jsonl.zst"]},
    ], ingest={"max_record_chars": 1_000_000}))
    result = IngestStage(cfg).run()
    ws = tmp_path / "ws"

    bad = result.manifest["sources"]["bad"]
    assert bad["input_lines"] == len(lines)
    assert bad["input_lines"] == bad["records"] + bad["quarantined"] + bad["dropped"]
    assert (bad["records"], bad["dropped"]) == (3, 1)
    q = {row["line"]: row["reason"] for row in _quarantine(ws, "bad")}
    assert "invalid JSON" in q[2]
    assert "invalid UTF-8" in q[3]
    assert "empty text" in q[4]
    assert "too long" in q[5] or "too large" in q[5]
    assert "duplicate id 'ok-1' (first at line 1)" in q[7]
    assert "not an object" in q[8] and "not an object" in q[9]
    assert "missing text field" in q[11]
    assert "not a string" in q[12]
    assert len(q) == bad["quarantined"] == 9
    ids = pq.read_table(ws / "records" / "bad" / "part-00000.parquet").column("id").to_pylist()
    assert ids == ["ok-1", "bad/bad.jsonl/6", "ok-2"]
    assert bad["ids_assigned"] == 1
    for row in _quarantine(ws, "bad"):
        assert row["file"] == "bad.jsonl" and len(row["raw"]) <= 2000

    cut = result.manifest["sources"]["cut"]
    assert 0 < cut["records"] < 5000
    assert cut["input_lines"] == cut["records"] + cut["quarantined"] + cut["dropped"]
    (tail,) = [r for r in _quarantine(ws, "cut") if "unreadable rest of file" in r["reason"]]
    assert "truncated" in tail["reason"]


def test_duplicate_ids_across_files_keep_first_in_file_order(tmp_path: Path):
    write_jsonl(tmp_path / "d" / "a.jsonl", [{"id": "x", "text": "first"}, {"id": "y", "text": "y"}])
    write_jsonl(tmp_path / "d" / "b.jsonl", [{"id": "x", "text": "second"}, {"id": "z", "text": "z"}])
    cfg = load_config(write_config(tmp_path, [{"name": "s", "paths": ["d/*.jsonl"]}], executor={"workers": 2}))
    m = IngestStage(cfg).run().manifest["sources"]["s"]
    assert (m["input_lines"], m["records"], m["quarantined"]) == (4, 3, 1)
    ws = tmp_path / "ws"
    texts = [pq.read_table(p).column("text").to_pylist() for p in sorted((ws / "records" / "s").glob("*.parquet"))]
    assert texts == [["first", "y"], ["z"]]
    (row,) = _quarantine(ws, "s")
    assert row["file"] == "b.jsonl" and "first in a.jsonl" in row["reason"]


def test_rename_policy_keeps_duplicates_under_new_ids(tmp_path: Path):
    write_jsonl(tmp_path / "d" / "a.jsonl", [{"id": "x", "text": "1"}, {"id": "x", "text": "2"}])
    write_jsonl(tmp_path / "d" / "b.jsonl", [{"id": "x", "text": "3"}])
    cfg = load_config(write_config(tmp_path, [{"name": "s", "paths": ["d"]}],
                                   ingest={"on_duplicate_id": "rename"}))
    m = IngestStage(cfg).run().manifest["sources"]["s"]
    assert (m["records"], m["quarantined"]) == (3, 0)
    ids = [i for p in sorted((tmp_path / "ws" / "records" / "s").glob("*.parquet"))
           for i in pq.read_table(p).column("id").to_pylist()]
    assert ids == ["x", "x#line2", "x#b.jsonl:1"]

"""Units smaller than files: a split file ingests to exactly what one unit would write, on one worker or two, and
repeated ids are found across units by merging their sorted id runs (same rules as one sequential pass)."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from mira_select.config import load_config
from mira_select.errors import ConfigError
from mira_select.io.splits import scan
from mira_select.stages.ingest import IngestStage
from mira_select.workspace import file_digest

from .conftest import DEMO_CORPUS, write_config

EXCLUDE = ["group", "format", "meta.lowq_kind"]


def corpus_lines(name: str, n: int) -> list[bytes]:
    with open(DEMO_CORPUS / f"{name}.jsonl.zst", "rb") as fh:
        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(fh)).read().splitlines()[:n]


def plain_source(dst: Path) -> dict[str, int]:
    """Real records as plain JSONL: a.jsonl with a malformed line, a blank line and two repeats of earlier ids (one
    from its first unit), b.jsonl repeating an id of a.jsonl and one of its own; -> line numbers of interest."""
    py = corpus_lines("code_python_pypi", 400)
    a, b = py[:240], py[240:]
    a.insert(180, b'{"id": "broken", "text": "cut off')
    a.insert(120, b"")
    a.insert(200, py[3])
    b.insert(100, py[7])
    b.insert(130, py[250])
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "a.jsonl").write_bytes(b"\n".join(a) + b"\n")
    (dst / "b.jsonl").write_bytes(b"\n".join(b))  # no newline at the end
    return {"malformed": 182, "blank": 121, "repeat_a": 201, "repeat_b_of_a": 101, "repeat_b": 131, "first_b": 11}


def ingest(d: Path, workers: int = 1, **ingest_cfg) -> dict:
    cfg = load_config(write_config(d, [{"name": "s", "paths": ["in/*.jsonl"]}], executor={"workers": workers},
                                   ingest={"exclude_fields": EXCLUDE, **ingest_cfg}))
    return IngestStage(cfg).run().manifest["sources"]["s"]


def records(ws: Path) -> list[dict]:
    return [r for p in sorted((ws / "records" / "s").glob("part-*.parquet")) for r in pq.read_table(p).to_pylist()]


def quarantine(ws: Path) -> list[dict]:
    return [json.loads(line) for line in (ws / "quarantine" / "s.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("policy", ["quarantine", "rename"])
def test_a_split_file_ingests_to_what_one_unit_writes(tmp_path: Path, policy: str):
    lines = plain_source(tmp_path / "whole" / "in")
    shutil.copytree(tmp_path / "whole" / "in", tmp_path / "split" / "in")
    whole = ingest(tmp_path / "whole", on_duplicate_id=policy)
    split = ingest(tmp_path / "split", on_duplicate_id=policy, unit_bytes=25_000)
    shards = sorted(p.name for p in (tmp_path / "split" / "ws" / "records" / "s").glob("*.parquet"))
    assert whole["units"] == 2 and split["units"] == len(shards) >= 10
    assert sum(n.startswith("part-00000-") for n in shards) >= 5 and "part-00000-00000.parquet" in shards

    rows = records(tmp_path / "split" / "ws")
    assert rows == records(tmp_path / "whole" / "ws")  # same ids, texts, fields and order
    assert quarantine(tmp_path / "split" / "ws") == quarantine(tmp_path / "whole" / "ws")
    assert {k: v for k, v in split.items() if k != "units"} == {k: v for k, v in whole.items() if k != "units"}
    assert split["input_lines"] == split["records"] + split["dropped"] + split["quarantined"]

    # line numbers are the whole file's, in every unit
    by_line = {(r["file"], r["line"]): r for r in rows}
    assert (("a.jsonl", lines["malformed"]) not in by_line) and ("a.jsonl", lines["blank"]) not in by_line
    assert max(line for f, line in by_line if f == "a.jsonl") == 243
    q = {(r["file"], r["line"]): r["reason"] for r in quarantine(tmp_path / "split" / "ws")}
    assert "invalid JSON" in q[("a.jsonl", lines["malformed"])]
    first_a = by_line[("a.jsonl", 4)]["id"]
    if policy == "quarantine":
        assert q[("a.jsonl", lines["repeat_a"])] == f"duplicate id {first_a!r} (first at line 4)"
        assert "(first in a.jsonl)" in q[("b.jsonl", lines["repeat_b_of_a"])]
        assert "(first at line 11)" in q[("b.jsonl", lines["repeat_b"])]
        assert split["quarantined"] == 4 and len({r["id"] for r in rows}) == len(rows)
    else:
        assert by_line[("a.jsonl", lines["repeat_a"])]["id"] == f"{first_a}#line{lines['repeat_a']}"
        assert by_line[("b.jsonl", lines["repeat_b_of_a"])]["id"].endswith(f"#b.jsonl:{lines['repeat_b_of_a']}")
        assert by_line[("b.jsonl", lines["repeat_b"])]["id"].endswith(f"#line{lines['repeat_b']}")
        assert split["quarantined"] == 1


def test_a_parquet_file_splits_by_row_groups(tmp_path: Path):
    rows = [orjson.loads(line) for line in corpus_lines("text_tldr_pages", 300)]
    rows[250]["id"] = rows[20]["id"]  # a repeat in a later row group
    for d in ("whole", "split"):
        (tmp_path / d / "in").mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(rows), tmp_path / d / "in" / "t.parquet", row_group_size=25)
    cfg = {"exclude_fields": EXCLUDE}
    for d, unit_bytes in (("whole", 1 << 30), ("split", 30_000)):
        write_config(tmp_path / d, [{"name": "s", "paths": ["in/t.parquet"]}], ingest={**cfg, "unit_bytes": unit_bytes})
    whole = IngestStage(load_config(tmp_path / "whole" / "mira.yaml")).run().manifest["sources"]["s"]
    split = IngestStage(load_config(tmp_path / "split" / "mira.yaml")).run().manifest["sources"]["s"]
    assert whole["units"] == 1 and split["units"] >= 3
    assert records(tmp_path / "split" / "ws") == records(tmp_path / "whole" / "ws")
    (dup,) = quarantine(tmp_path / "split" / "ws")
    assert dup["line"] == 251 and "(first at line 21)" in dup["reason"] and dup["raw"]
    assert quarantine(tmp_path / "whole" / "ws") == [dup]


def test_two_workers_ingest_the_units_of_one_file_byte_identical(tmp_path: Path):
    for d in ("one", "two"):
        plain_source(tmp_path / d / "in")
        (tmp_path / d / "in" / "b.jsonl").unlink()  # a single input file
    one = ingest(tmp_path / "one", workers=1, unit_bytes=40_000)
    two = ingest(tmp_path / "two", workers=2, unit_bytes=40_000)
    assert one["units"] == two["units"] >= 6
    shards = {d: sorted((tmp_path / d / "ws" / "records" / "s").glob("*.parquet")) for d in ("one", "two")}
    assert [p.name for p in shards["one"]] == [p.name for p in shards["two"]]
    for a, b in zip(shards["one"], shards["two"]):
        assert a.read_bytes() == b.read_bytes(), a.name
    assert (tmp_path / "one" / "ws" / "quarantine" / "s.jsonl").read_bytes() == \
        (tmp_path / "two" / "ws" / "quarantine" / "s.jsonl").read_bytes()
    assert one == two


def test_a_changed_file_redoes_its_units_and_the_repeats_it_decided(tmp_path: Path):
    """The id b.jsonl repeated from a.jsonl leaves a.jsonl: b's record comes back, as a clean run has it."""
    lines = plain_source(tmp_path / "inc" / "in")
    ingest(tmp_path / "inc", unit_bytes=25_000)
    ws = tmp_path / "inc" / "ws"
    b_shards = {p: p.stat().st_mtime_ns for p in (ws / "records" / "s").glob("part-00001-*.parquet")}
    a = tmp_path / "inc" / "in" / "a.jsonl"
    kept = a.read_bytes().split(b"\n")
    a.write_bytes(b"\n".join(kept[:7] + kept[8:]))  # drop line 8: the record b.jsonl repeats
    again = ingest(tmp_path / "inc", unit_bytes=25_000)

    rewritten = sorted(p.name for p, t in b_shards.items() if p.stat().st_mtime_ns != t)
    assert len(rewritten) == 1  # the one b.jsonl unit whose duplicate disappeared; its other units were current
    clean = tmp_path / "clean"
    shutil.copytree(tmp_path / "inc" / "in", clean / "in")
    assert again == ingest(clean, unit_bytes=25_000)
    assert records(ws) == records(clean / "ws")
    assert quarantine(ws) == quarantine(clean / "ws")
    assert ("b.jsonl", lines["repeat_b_of_a"]) in {(r["file"], r["line"]) for r in records(ws)}


def test_cut_points_follow_newlines_and_count_lines(tmp_path: Path):
    data = b"".join(corpus_lines("text_tldr_pages", 200)[i] + b"\n" for i in range(200))
    data += b'{"text": "' + b"x" * 50_000 + b'"}\n' + b'{"text": "last line, no newline"}'
    path = tmp_path / "t.jsonl"
    path.write_bytes(data)
    for unit_bytes in (1, 4096, 30_000, len(data) - 10, len(data) + 1):
        digest, splits = scan(path, "jsonl", unit_bytes)
        assert digest == file_digest(path)
        assert splits[0].start == 0 and (splits[-1].end in (None, len(data)))
        for s, nxt in zip(splits, splits[1:]):
            assert s.end == nxt.start and data[nxt.start - 1:nxt.start] == b"\n"
            assert nxt.first_line == data[:nxt.start].count(b"\n")
        assert sum(s.size for s in splits) == len(data)
    assert len(scan(path, "jsonl", 1)[1]) == data.count(b"\n") + 1  # a unit per line at the extreme
    (tmp_path / "arr.json").write_bytes(orjson.dumps([{"text": "x" * 100}] * 100))
    assert len(scan(tmp_path / "arr.json", "jsonl", 100)[1]) == 1  # a JSON array stays whole
    (tmp_path / "t.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(data))
    assert len(scan(tmp_path / "t.jsonl.zst", "jsonl", 100)[1]) == 1  # compressed files stay whole


@pytest.mark.parametrize("value, message", [(0, "greater than 0"), ("lots", "expected a size"),
                                            (True, "expected a size")])
def test_a_bad_unit_size_is_a_config_error_naming_the_field(tmp_path: Path, value, message):
    path = write_config(tmp_path, [{"name": "s", "paths": ["in"]}], ingest={"unit_bytes": value})
    with pytest.raises(ConfigError, match=rf"ingest\.unit_bytes: .*{message}"):
        load_config(path)
    path = write_config(tmp_path, [{"name": "s", "paths": ["in"]}], ingest={"unit_bytes": "64MiB"})
    assert load_config(path).ingest.unit_bytes == 64 << 20


def test_switching_the_duplicate_policy_redoes_only_the_shards_with_repeats(tmp_path: Path):
    plain_source(tmp_path / "inc" / "in")
    ingest(tmp_path / "inc", unit_bytes=25_000)
    ws = tmp_path / "inc" / "ws"
    before = {p: p.stat().st_mtime_ns for p in (ws / "records" / "s").glob("*.parquet")}
    ingest(tmp_path / "inc", unit_bytes=25_000, on_duplicate_id="rename")
    rewritten = [p.name for p, t in before.items() if p.stat().st_mtime_ns != t]
    assert 1 <= len(rewritten) <= 3  # the shards holding a repeat; the units without one stay as they were
    shutil.copytree(tmp_path / "inc" / "in", tmp_path / "clean" / "in")
    ingest(tmp_path / "clean", unit_bytes=25_000, on_duplicate_id="rename")
    assert records(ws) == records(tmp_path / "clean" / "ws")
    assert quarantine(ws) == quarantine(tmp_path / "clean" / "ws")


def test_equal_hashes_of_different_ids_are_not_duplicates(tmp_path: Path):
    """Runs are compared by hash first; a collision (forged here: blake2b-64 collisions are too rare to find) must
    not cost a record, while a real repeat next to it is still found."""
    from mira_select.stages.ingest_dedup import RunRef, RunWriter, decide, find_repeats

    for name, ids in (("a", ["x", "y", "z"]), ("b", ["w", "x"])):
        run = RunWriter()
        run.add(ids, list(range(1, len(ids) + 1)))
        run.write(tmp_path / f"{name}.ids.parquet")
    a = pq.read_table(tmp_path / "a.ids.parquet")
    b = pq.read_table(tmp_path / "b.ids.parquet").to_pydict()
    y_hash = a.column("hash")[a.column("id").to_pylist().index("y")].as_py()
    b["hash"][b["id"].index("w")] = y_hash  # "w" now shares y's hash
    order = sorted(range(2), key=lambda i: b["hash"][i])
    pq.write_table(pa.table({k: [v[i] for i in order] for k, v in b.items()}, schema=a.schema),
                   tmp_path / "b.ids.parquet")
    runs = [RunRef(0, "a.jsonl", "part-00000", tmp_path / "a.ids.parquet"),
            RunRef(1, "b.jsonl", "part-00001", tmp_path / "b.ids.parquet")]
    found = find_repeats(runs)
    assert sorted(e.id for e in found) == ["w", "x", "x", "y"]  # candidates by hash
    decisions = decide(found, {0: "a.jsonl", 1: "b.jsonl"}, "quarantine")
    assert list(decisions) == ["part-00001"]
    assert list(decisions["part-00001"].drops.values()) == [(2, "duplicate id 'x' (first in a.jsonl)", True)]


def test_row_groups_end_at_the_character_cap(tmp_path: Path):
    """Long agent trajectories: a row group closes at ``ingest.row_group_chars`` (what bounds every shard reader's
    memory), long before ``row_group_records``; the records are the same whatever the cap."""
    lines = corpus_lines("agent_minisweagent_gemini3pro", 120)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    shards = {}
    for cap in (1 << 20, 64 << 20):
        root = tmp_path / str(cap)
        root.mkdir()
        cfg = write_config(root, [{"name": "a", "paths": [str(tmp_path / "in" / "a.jsonl")]}],
                           ingest={"row_group_chars": cap, "exclude_fields": ["group", "format", "meta.lowq_kind"]})
        IngestStage(load_config(cfg)).run()
        (shard,) = (root / "ws" / "records" / "a").glob("part-*.parquet")
        meta = pq.ParquetFile(shard).metadata
        texts = pq.read_table(shard, columns=["id", "text", "meta"])
        shards[cap] = texts
        sizes = []  # per row group: characters of text + meta of each record, in order
        for g in range(meta.num_row_groups):
            t = pq.ParquetFile(shard).read_row_group(g, columns=["text", "meta"])
            sizes.append([len(x) + len(m) for x, m in zip(t.column("text").to_pylist(), t.column("meta").to_pylist())])
        if cap == 1 << 20:
            assert meta.num_row_groups >= 3
            # a group closes on the record that reached the cap: before that record it was under the cap
            assert all(sum(g[:-1]) < cap for g in sizes) and all(sum(g) >= cap for g in sizes[:-1])
        else:
            assert meta.num_row_groups == 1
    assert shards[1 << 20].equals(shards[64 << 20])

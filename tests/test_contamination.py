"""Contamination guard: records overlapping a benchmark solution are flagged by the prefilter pass and never
selected, whether the prefilter's rules are on or not."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from mira_select.benchmarks import load_benchmarks, load_folder
from mira_select.stages.select import ScoreShard, select_units

from .conftest import REPO, demo_slice, run_mira, write_config, write_jsonl


def test_bundled_benchmarks_match_the_shipped_folders():
    bundled = load_benchmarks("bundled")
    raw = load_folder(REPO / "data" / "benchmarks")
    assert [b.id for b in bundled] == [b.id for b in raw]
    counts = {name: sum(b.benchmark == name for b in bundled) for name in ("mbppplus", "spider", "bird")}
    assert counts == {"mbppplus": 378, "spider": 1034, "bird": 1534}
    sql = next(b for b in bundled if b.benchmark == "bird")
    assert "CREATE TABLE" in sql.prompt and "-- Question:" in sql.prompt and sql.solution.upper().startswith("SELECT")


@pytest.mark.parametrize("rules_on", [True, False])
def test_prefilter_flags_records_that_contain_benchmark_solutions(tmp_path, rules_on):
    bench = load_benchmarks("bundled")
    mbpp = [b for b in bench if b.benchmark == "mbppplus" and len(b.solution.split()) > 20][:3]
    spider = [b for b in bench if b.benchmark == "spider" and len(b.solution.split()) > 12][:2]
    demo_slice(tmp_path / "clean", ["code_python_pypi"], 40)
    leaks = [{"id": f"leak{i}", "text": f"# my solutions\n{b.solution}\n# done"} for i, b in enumerate(mbpp)]
    leaks += [{"id": f"sql{i}", "text": f"Answer: {b.solution.lower()}  -- from a forum"} for i, b in enumerate(spider)]
    # half of a solution is not enough (threshold 0.5 of its 13-grams would need more than this fragment)
    frag = mbpp[0].solution.split()
    leaks.append({"id": "fragment", "text": " ".join(frag[: max(1, len(frag) // 4)])})
    leaks.append({"id": "fragment-again", "text": " ".join(frag[: max(1, len(frag) // 4)])})  # an exact duplicate
    write_jsonl(tmp_path / "leaky.jsonl", leaks)
    cfg = write_config(tmp_path, [{"name": "clean", "paths": ["clean/code_python_pypi.jsonl.zst"]},
                                  {"name": "leaky", "paths": ["leaky.jsonl"]}],
                       ingest={"exclude_fields": ["group", "format", "meta.lowq_kind"]},
                       prefilter={"enabled": rules_on})
    run_mira("ingest", "-c", str(cfg), "-q", check=True)
    out = run_mira("prefilter", "-c", str(cfg), check=True)
    assert "contaminated" in out.stdout
    summary = json.loads((tmp_path / "ws" / "prefilter" / "summary.json").read_text())
    assert summary["sources"]["leaky"]["contaminated"] == 5
    assert summary["sources"]["clean"]["contaminated"] == 0
    assert summary["totals"]["contaminated"] == 5
    t = pq.read_table(tmp_path / "ws" / "prefilter" / "leaky" / "part-00000.parquet",
                      columns=["id", "contaminated", "drop"])
    flags = dict(zip(t.column("id").to_pylist(), t.column("contaminated").to_pylist()))
    assert flags.pop("fragment") is False and flags.pop("fragment-again") is False and all(flags.values())
    # the rules (here exact dedup) run only when enabled; the guard runs either way
    assert any(t.column("drop").to_pylist()) is rules_on


def test_the_old_ingest_contamination_key_names_its_new_place(tmp_path):
    cfg = write_config(tmp_path, [{"name": "a", "paths": ["x.jsonl"]}], ingest={"contamination": {"n": 13}})
    proc = run_mira("ingest", "-c", str(cfg))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "mira.yaml:" in proc.stderr and "ingest.contamination moved to prefilter.contamination" in proc.stderr


def test_select_never_keeps_excluded_records_and_leaves_them_out_of_the_budget():
    score = np.array([9.0, 8.0, 1.0, 0.5])
    tokens = np.array([100, 100, 100, 100])
    shard = ScoreShard("s", None, score, tokens, excluded=np.array([True, False, False, False]))
    keep, units = select_units([shard], lambda s: s, 0.5)
    assert not keep[0][0] and keep[0][1]
    assert units["s"]["tokens"] == 300 and units["s"]["excluded_records"] == 1
    assert units["s"]["kept_tokens"] >= 150


def test_flags_of_a_large_batch_are_those_of_each_text_alone():
    """The index hashes ~1 M characters at a time (memory); a leak after several MB of clean text is still found,
    and every flag equals the text's flag when checked alone."""
    from mira_select.contamination import build_index

    index = build_index("bundled")
    sol = next(b.solution for b in load_benchmarks("bundled") if b.benchmark == "mbppplus"
               and len(b.solution.split()) > 30)
    filler = "plain words of a clean record that copies nothing " * 8_000  # ~400 k characters
    texts = [filler] * 8 + [f"notes\n{sol}\nend"] + [filler] * 2 + [sol[: len(sol) // 5]]
    flags = index.flags(texts)
    assert flags == [index.flags([t])[0] for t in texts]
    assert flags[8] is True and sum(flags) == 1


def test_word_hashes_are_the_word_tokens_of_tokenize_batch():
    """The guard hashes words alone; they must be exactly tokenize_batch's WORD tokens (same values, same
    documents), documents that touch without a separator and empty ones included."""
    from mira_select.hashing import WORD, tokenize_batch, word_hashes

    texts = ["", "abc", "x..y", "ab", "cd ef", " ", "日本語 テスト", "Déjà-vu\nNEXT", "", "tail"]
    texts += [load_benchmarks("bundled")[i].solution for i in range(50)]
    tb = tokenize_batch(texts, lower=True)
    keep = tb.classes == WORD
    hashes, doc = word_hashes(texts, lower=True)
    assert len(hashes) > 100
    assert np.array_equal(hashes, tb.hashes[keep]) and np.array_equal(doc, tb.doc[keep])


def test_a_prefilter_sidecar_from_before_the_guard_moved_is_refused_by_name(tmp_path):
    """A workspace whose prefilter ran before the guard moved there has sidecars without ``contaminated``: select
    must say which file and what to run, not fail inside pyarrow."""
    import pyarrow as pa

    from mira_select.errors import MiraError
    from mira_select.stages.prefilter import excluded_mask, prefilter_path
    from mira_select.workspace import Workspace

    ws = Workspace(tmp_path / "ws")
    shard = ws.root / "records" / "s" / "part-00000.parquet"
    shard.parent.mkdir(parents=True)
    pq.write_table(pa.table({"id": ["a", "b"]}), shard)
    side = prefilter_path(ws, "s", shard)
    side.parent.mkdir(parents=True)
    pq.write_table(pa.table({"id": ["a", "b"], "drop": [False, True]}), side)
    with pytest.raises(MiraError, match=r"part-00000.parquet has no column 'contaminated'.*run `mira prefilter`"):
        excluded_mask(ws, "s", shard, ["a", "b"], drops=True)
    pq.write_table(pa.table({"id": ["a", "b"], "drop": [False, True], "contaminated": [True, False]}), side)
    assert excluded_mask(ws, "s", shard, ["a", "b"], drops=True).tolist() == [True, True]
    assert excluded_mask(ws, "s", shard, ["a", "b"], drops=False).tolist() == [True, False]

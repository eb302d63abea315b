"""The README's "Run it on your own data" quickstart, as a user would do it.

Three sources in three input kinds and two formats, made from real records of the bundled corpus: a JSONL of
documents (text), a Parquet file and a `datasets.save_to_disk` directory of instruction/response pairs (qa).
`mira init` writes the config and marks the lines to edit; the test makes those edits (teacher, small sizes) and
runs `mira run` twice: once with the real local teacher (SmolLM2-135M, no judge, but real calls that fill the
workspace's teacher cache), then in a fresh workspace with `backend: replay` and `teacher.warm_cache` pointing at
that cache, which must reach the report without a single teacher call.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
import zstandard

from .conftest import DEMO_CORPUS, run_mira
from .teacher_helpers import SMOL_THREADS, smol_path

pytest.importorskip("model2vec", reason="needs the [embed] extra (make test installs it)")
pytest.importorskip("matplotlib")
pytestmark = pytest.mark.slow
N = 45  # records per source
SOURCES = {"docs": "text", "codegen": "qa", "toolformer_hf": "qa"}


def _corpus_rows(name: str, n: int) -> list[dict]:
    rows = []
    with open(DEMO_CORPUS / f"{name}.jsonl.zst", "rb") as fh:
        for line in io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(fh), encoding="utf-8"):
            rows.append(orjson.loads(line))
            if len(rows) == n:
                return rows
    raise AssertionError(f"{name} has fewer than {n} records")


def _qa(row: dict) -> dict:
    """A GPTeacher record ("### Instruction ... ### Response ...") as the instruction/response columns a user has."""
    question, sep, answer = row["text"].partition("\n\n### Response\n")
    assert sep and question.startswith("### Instruction\n"), row["id"]
    return {"instruction": question.removeprefix("### Instruction\n"), "response": answer}


def _write_inputs(data: Path) -> None:
    import datasets

    data.mkdir()
    docs = [{"id": r["id"], "text": r["text"], "path": r["path"]} for r in _corpus_rows("text_tldr_pages", N)]
    (data / "docs.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in docs))
    pq.write_table(pa.Table.from_pylist([_qa(r) for r in _corpus_rows("qa_gpteacher_codegen", N)]),
                   data / "codegen.parquet")
    datasets.Dataset.from_list([_qa(r) for r in _corpus_rows("qa_gpteacher_toolformer", N)]).save_to_disk(
        str(data / "toolformer_hf"))


# What the test sets on top of the generated config: the marked teacher lines, and sizes that keep the live run
# to a few dozen calls of the tiny model (logprobs off: SmolLM2 generates its answers; far faster on 2 cores).
SMALL = {
    "executor": {"workers": 1},
    "groups": {"k": 2, "sample_per_source": 8},
    "discover": {"records_per_group": 2, "anchors": 2, "spare_anchors": 0, "points_per_anchor": 3},
    "label": {"records_per_group": 8, "chunk": 4, "min_val": 2, "twins": False, "explained": 0, "min_std": 0},
    "student": {"min_n": 2},
}


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    d = tmp_path_factory.mktemp("quickstart")
    _write_inputs(d / "data")
    out = run_mira("init", "data/docs.jsonl", "data/codegen.parquet", "data/toolformer_hf", "-o", "mira.yaml",
                   cwd=d, check=True)
    generated = (d / "mira.yaml").read_text()

    cfg = yaml.safe_load(generated)
    cfg.update(SMALL)
    cfg["teacher"].update(model=str(smol_path()), max_record_tokens=96, threads=SMOL_THREADS, logprobs=False)
    live = {**cfg, "workspace": "ws_live"}
    (d / "live.yaml").write_text(yaml.safe_dump(live, sort_keys=False))
    run_mira("run", "-c", "live.yaml", cwd=d, check=True, timeout=1500)

    replay = {**cfg, "workspace": "ws_replay",
              "teacher": {**cfg["teacher"], "backend": "replay", "replay_as": "local", "warm_cache": "ws_live/cache"}}
    (d / "replay.yaml").write_text(yaml.safe_dump(replay, sort_keys=False))
    replayed = run_mira("run", "-c", "replay.yaml", cwd=d, check=True, timeout=600)
    return d, out.stdout, generated, replayed.stdout


def test_init_marks_what_to_edit_and_reads_every_input_kind(quickstart):
    d, stdout, generated, _ = quickstart
    assert "3 source(s)" in stdout and "# EDIT:" in stdout
    lines = generated.splitlines()
    marked = [ln.split("#")[0].strip() for ln in lines if "# EDIT:" in ln and not ln.lstrip().startswith("#")]
    # one `fields:` line per source (listing the first record's fields), the excluded fields and the teacher
    fields = [ln for ln in lines if ln.strip().startswith("fields:")]
    assert len(fields) == 3 and all("# EDIT:" in ln for ln in fields)
    assert "(first record: id, text, path)" in fields[0]  # JSONL
    assert fields[1].count("instruction, response") == 1 and fields[2].count("instruction, response") == 1
    assert "id: null" in fields[1] and "id: id" in fields[0]  # no id column: ids are assigned
    assert {"exclude_fields: []", "backend: local", "model: qwen2.5-coder-1.5b-instruct"} <= set(marked)
    assert any(ln.lstrip().startswith("# base_url:") and "# EDIT" in ln for ln in lines)

    from mira_select.config import load_config

    cfg = load_config(d / "mira.yaml")  # the generated file is a valid config as written
    assert [s.name for s in cfg.sources] == list(SOURCES)
    assert [s.paths for s in cfg.sources] == [["data/docs.jsonl"], ["data/codegen.parquet"], ["data/toolformer_hf"]]
    assert cfg.teacher.backend == "local" and cfg.teacher.base_url is None


def test_live_run_ingests_three_formats_and_fills_the_teacher_cache(quickstart):
    d, *_ = quickstart
    ws = d / "ws_live"
    manifest = json.loads((ws / "manifest.json").read_text())["sources"]
    assert {name: s["records"] for name, s in manifest.items()} == {name: N for name in SOURCES}
    for name, fmt in SOURCES.items():
        assert manifest[name]["formats"] == {fmt: N}, (name, manifest[name]["formats"])
    assert json.loads((ws / "groups.json").read_text())["groups"] == {"qa": ["codegen", "toolformer_hf"],
                                                                      "text": ["docs"]}
    last = json.loads((ws / "run" / "last.json").read_text())
    assert last["teacher"]["calls"] > 0  # the cache the replay run reads was made here, by real calls
    assert (ws / "cache" / "teacher.sqlite").exists() and (ws / "report" / "index.html").exists()


def test_replay_run_reaches_the_report_with_no_teacher_call(quickstart):
    d, _, _, stdout = quickstart
    ws, live = d / "ws_replay", d / "ws_live"
    last = json.loads((ws / "run" / "last.json").read_text())
    assert [s["stage"] for s in last["stages"]] == ["ingest", "prefilter", "group", "discover", "label", "train",
                                                   "score", "select", "check"]
    assert last["teacher"]["calls"] == 0 and last["teacher"]["cache_hits"] > 0
    # a replay miss is dead-lettered as "no cached answer": none, so every answer came from the live run's cache
    for p in [*ws.glob("rubrics/*.json"), *ws.glob("discover/*/dead_letter.jsonl"), *ws.glob("labels/*/*.jsonl")]:
        assert "no cached answer" not in p.read_text(), p
    # ... and they are the same answers: rubrics and labels equal the live workspace's
    for group in ("qa", "text"):
        assert json.loads((ws / "rubrics" / f"{group}.json").read_text())["anchors"] == \
            json.loads((live / "rubrics" / f"{group}.json").read_text())["anchors"]
        for split in ("train", "val"):
            assert pq.read_table(ws / "labels" / group / f"{split}.parquet").to_pylist() == \
                pq.read_table(live / "labels" / group / f"{split}.parquet").to_pylist()
    page = (ws / "report" / "index.html").read_text()
    corpus = re.search(r'data-section="corpus">(.*?)</section>', page, flags=re.S).group(1)
    for name in SOURCES:
        assert name in corpus, name
    assert "report: " in stdout and "index.html" in stdout

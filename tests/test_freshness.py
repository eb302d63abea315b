"""One freshness rule, end to end on real processes: what a change redoes, what it leaves, and kill -9 resumes.

A small two-group workspace runs `mira run --until select` with the tiny real model in-process (SmolLM2-135M:
no judge, but real calls into the teacher cache). Then the same questions a user asks: change nothing → no work;
change the student config → train, score, select redo and nothing upstream; change one source file → only that
source's units and what depends on them. `mira status` must predict exactly what `mira run` then does. Finally a
run killed with SIGKILL at three random points (teacher replayed from the first run's cache, so answers are the
same) resumes to outputs byte-identical to a clean run.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from .conftest import demo_slice, run_mira
from .teacher_helpers import SMOL_THREADS, smol_path

pytest.importorskip("model2vec", reason="needs the [embed] extra (make test installs it)")
GROUPS = {"agent": ["agent_glaive_toolcall"], "code": ["code_python_pypi", "code_shell_ohmyzsh"]}
UNTIL_SELECT = ("ingest", "prefilter", "group", "discover", "label", "train", "score", "select")


def _config(d: Path, teacher: dict) -> dict:
    return {
        "workspace": "ws",
        "sources": [{"name": s, "paths": [f"corpus/{s}/"]} for members in GROUPS.values() for s in members],
        "ingest": {"exclude_fields": ["group", "format", "meta.lowq_kind"]},
        "executor": {"workers": 1},
        "groups": {"k": 2, "sample_per_source": 8, "override": {s: g for g, m in GROUPS.items() for s in m}},
        "teacher": teacher,
        "discover": {"records_per_group": 3, "anchors": 2, "spare_anchors": 0, "points_per_anchor": 3},
        "label": {"records_per_group": 6, "chunk": 3, "min_val": 2, "twins": False, "explained": 0, "min_std": 0},
        "student": {"kind": "hashed_linear", "min_n": 2},
        "budget": {"compare": ["random"]},
    }


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A finished workspace (ingest → select); every source split over two files."""
    d = tmp_path_factory.mktemp("fresh")
    demo_slice(d / "all", [s for m in GROUPS.values() for s in m], 24)
    for members in GROUPS.values():
        for s in members:
            lines = (d / "all" / f"{s}.jsonl.zst").read_bytes()
            (d / "corpus" / s).mkdir(parents=True)
            import zstandard

            rows = zstandard.ZstdDecompressor().stream_reader(lines).read().splitlines(keepends=True)
            (d / "corpus" / s / "a.jsonl").write_bytes(b"".join(rows[:12]))
            (d / "corpus" / s / "b.jsonl").write_bytes(b"".join(rows[12:]))
    teacher = {"backend": "local", "model": str(smol_path()), "max_record_tokens": 96, "threads": SMOL_THREADS}
    (d / "mira.yaml").write_text(yaml.safe_dump(_config(d, teacher), sort_keys=False))
    _run(d)
    return d


def _run(d: Path) -> dict:
    run_mira("run", "-c", str(d / "mira.yaml"), "--until", "select", "--no-report", check=True, timeout=900)
    return json.loads((d / "ws" / "run" / "last.json").read_text())


def _ran(last: dict) -> set[str]:
    return {s["stage"] for s in last["stages"] if s["did_work"]}


def _status(d: Path) -> dict[str, dict[str, str]]:
    """stage -> unit key -> state, from the same code `mira status` prints."""
    from mira_select.config import load_config
    from mira_select.status import workspace_status

    return {st.stage: {k: v.state for k, v in st.units} for st in workspace_status(load_config(d / "mira.yaml"),
                                                                                    UNTIL_SELECT)}


def _not_current(status: dict[str, dict[str, str]]) -> dict[str, set[str]]:
    return {stage: {k for k, s in units.items() if s != "current"} for stage, units in status.items()
            if any(s != "current" for s in units.values())}


def _copy(base: Path, dst: Path) -> Path:
    shutil.copytree(base, dst, symlinks=True)
    return dst


def test_nothing_changed_means_no_work_and_status_agrees(base, tmp_path):
    d = _copy(base, tmp_path / "same")
    assert _not_current(_status(d)) == {}
    last = _run(d)
    assert _ran(last) == set() and last["teacher"]["calls"] == 0
    out = run_mira("status", "-c", str(d / "mira.yaml"), check=True)
    assert "ingest" in out.stdout and "would start at check" in out.stdout  # only check/eval never ran here


def test_student_config_change_redoes_train_score_select_only(base, tmp_path):
    d = _copy(base, tmp_path / "student")
    cfg = yaml.safe_load((d / "mira.yaml").read_text())
    cfg["student"]["trim"] = 0.0  # was the default (0.1): the aggregated score changes, nothing upstream does
    cfg["student"]["min_n"] = 3
    (d / "mira.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    stale = _not_current(_status(d))
    assert set(stale) == {"train", "score", "select"}, stale
    assert stale["train"] == {"agent", "code"}
    last = _run(d)
    assert _ran(last) == {"train", "score", "select"}
    assert last["teacher"]["calls"] == 0
    assert _not_current(_status(d)) == {}


def test_a_setting_only_the_label_final_pass_reads_does_not_rerun_its_chunks(base, tmp_path):
    """How anchors are chosen or flagged, or labels split, is decided after every teacher call: such a change
    re-runs the final pass over the finished chunks, not the chunks through the teacher cache; and a report flag,
    which no label, split or active anchor depends on, refits no student."""
    d = _copy(base, tmp_path / "final-only")
    chunks = sorted((d / "ws").glob("_work/label/*/chunk-*.parquet")) + \
        sorted((d / "ws").glob("_done/label/*/chunk-*.json"))
    assert len(chunks) >= 4
    before = {p: p.stat().st_mtime_ns for p in chunks}
    students = sorted((d / "ws" / "students").rglob("*.*"))
    students_before = {p: p.stat().st_mtime_ns for p in students}
    cfg = yaml.safe_load((d / "mira.yaml").read_text())
    cfg["label"]["end_share_flag"] = 0.9  # a report flag (was the default 0.6): only anchors.json's flags change
    (d / "mira.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert _not_current(_status(d)) == {"label": {"agent/_final", "code/_final"}}  # the students stay current
    last = _run(d)
    assert _ran(last) == {"label"} and last["teacher"]["calls"] == 0
    flags = json.loads((d / "ws" / "labels" / "agent" / "anchors.json").read_text())
    assert flags["end_flag"] == 0.9
    assert {p: p.stat().st_mtime_ns for p in students} == students_before  # nothing refitted
    assert _not_current(_status(d)) == {}

    cfg["label"]["val_share"] = 0.3  # the split: the students are fitted on other records
    (d / "mira.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    stale = _not_current(_status(d))
    assert stale["label"] == {"agent/_final", "code/_final"} and stale["train"] == {"agent", "code"}
    last = _run(d)
    assert _ran(last) == {"label", "train", "score", "select"} and last["teacher"]["calls"] == 0
    assert {p: p.stat().st_mtime_ns for p in chunks} == before  # no chunk written or marked again
    assert _not_current(_status(d)) == {}


def test_one_changed_source_file_redoes_that_source_and_its_dependents_only(base, tmp_path):
    d = _copy(base, tmp_path / "source")
    ws = d / "ws"
    other = sorted((ws / "scores" / "agent_glaive_toolcall").glob("*.parquet"))
    kept_mtimes = {p: p.stat().st_mtime_ns for p in other}
    f = d / "corpus" / "code_shell_ohmyzsh" / "b.jsonl"
    rows = f.read_bytes().splitlines(keepends=True)
    f.write_bytes(b"".join(rows[:-1]))  # one record fewer; same file name, new content

    stale = _not_current(_status(d))
    assert stale["ingest"] == {"code_shell_ohmyzsh/part-00001", "code_shell_ohmyzsh/_source"}, stale
    assert stale["prefilter"] == {"code_shell_ohmyzsh/part-00001", "_summary"}
    assert stale["group"] == {"all"}
    assert stale["discover"] == {"code"} and stale["label"] == {"code/_final"}
    assert stale["train"] == {"code"}  # through the code group's labels; agent's student stays
    assert stale["score"] == {f"{s}/part-0000{i}" for s in GROUPS["code"] for i in (0, 1)}
    assert stale["select"] == {"group", "random"}
    last = _run(d)
    assert _ran(last) == set(UNTIL_SELECT)
    assert _not_current(_status(d)) == {}
    for p, mtime in kept_mtimes.items():  # the untouched group's scores were not rewritten
        assert p.stat().st_mtime_ns == mtime, p
    marker = json.loads((ws / "_done" / "ingest" / "code_shell_ohmyzsh" / "part-00001.json").read_text())
    assert marker["counts"]["n_in"] == len(rows) - 1


def test_moved_corpus_with_the_same_files_stays_current(base, tmp_path):
    """The config names the corpus where it now lies (absolute paths, another folder): same files, same content,
    so no stage has work; a source whose folder now holds one more file is redone."""
    d = _copy(base, tmp_path / "moved")
    (d / "corpus").rename(d / "elsewhere")
    cfg = yaml.safe_load((d / "mira.yaml").read_text())
    for src in cfg["sources"]:
        src["paths"] = [f"{d / 'elsewhere' / src['name']}/"]
    (d / "mira.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert _not_current(_status(d)) == {}
    extra = d / "elsewhere" / "code_shell_ohmyzsh" / "c.jsonl"
    extra.write_bytes((d / "elsewhere" / "code_shell_ohmyzsh" / "a.jsonl").read_bytes().splitlines(True)[0])
    stale = _not_current(_status(d))
    assert "code_shell_ohmyzsh/_source" in stale["ingest"] and "agent_glaive_toolcall/_source" not in stale["ingest"]


TIMINGS = {"fit_s", "seconds", "wall_s"}


def _untimed(obj):
    if isinstance(obj, dict):
        return {k: _untimed(v) for k, v in obj.items() if k not in TIMINGS}
    return [_untimed(v) for v in obj] if isinstance(obj, list) else obj


def _outputs(ws: Path) -> dict[str, bytes]:
    """Every artifact a stage writes, minus run bookkeeping (markers, accounting, caches, the config echo with its
    absolute paths) and wall-clock timings inside JSON files; everything else must match byte for byte."""
    skip = ("_done", "_work", "run", "teacher", "cache", "report", "mira.yaml")
    out = {}
    for p in sorted(ws.rglob("*")):
        rel = p.relative_to(ws)
        if p.is_file() and rel.parts[0] not in skip and not p.name.startswith(".tmp-"):
            data = p.read_bytes()
            out[str(rel)] = json.dumps(_untimed(json.loads(data))).encode() if p.suffix == ".json" else data
    return out


def test_kill_9_at_three_random_points_resumes_byte_identical(base, tmp_path):
    cache = base / "ws" / "cache"
    assert cache.exists()
    runs = {}
    for name in ("clean", "killed"):
        d = tmp_path / name
        d.mkdir()
        shutil.copytree(base / "corpus", d / "corpus")
        cfg = yaml.safe_load((base / "mira.yaml").read_text())
        cfg["teacher"].update({"backend": "replay", "replay_as": "local", "warm_cache": str(cache)})
        (d / "mira.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        runs[name] = d
    _run(runs["clean"])

    d = runs["killed"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    markers = sorted(p.relative_to(runs["clean"] / "ws") for p in (runs["clean"] / "ws" / "_done").rglob("*.json"))
    # three random points of the run: right after the k-th unit of work completes (k drawn from the clean run's)
    points = sorted(random.Random(20261130).sample(range(2, len(markers) - 1), 3))
    kills = []
    for k in points:
        proc = subprocess.Popen([sys.executable, "-m", "mira_select", "run", "-c", str(d / "mira.yaml"), "--until",
                                 "select", "--no-report"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.time() + 300
        while proc.poll() is None and time.time() < deadline and \
                len(list((d / "ws" / "_done").rglob("*.json"))) < k:
            time.sleep(0.005)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills.append(len(list((d / "ws" / "_done").rglob("*.json"))))
        proc.wait()
    assert len(kills) == 3 and kills[-1] < len(markers), (kills, len(markers))
    last = _run(d)
    assert last["teacher"]["calls"] == 0
    a, b = _outputs(d / "ws"), _outputs(runs["clean"] / "ws")
    assert sorted(a) == sorted(b)
    differ = [k for k in a if a[k] != b[k]]
    assert differ == [], differ

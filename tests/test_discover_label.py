"""discover + label on a small slice of the real corpus with a real (tiny) model in-process.

SmolLM2-135M is no judge: these tests check the machinery (sampling, clustering into anchors, determinism, chunked
resumable labeling, splits, counts). Rubric quality on the demo is measured with the 1.5B teacher (issue notes).
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from .conftest import demo_slice, run_mira
from .teacher_helpers import SMOL_THREADS, smol_path

pytest.importorskip("model2vec", reason="needs the [embed] extra (make test installs it)")
SOURCES = ["agent_glaive_toolcall", "agent_fireact_react", "code_python_pypi", "code_shell_ohmyzsh"]


@pytest.fixture(scope="module")
def small_ws(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("small")
    demo_slice(d / "corpus", SOURCES, 30)
    demo_slice(d / "tiny", ["text_tldr_pages"], 3)  # a group smaller than the discovery sample
    cfg = {
        "workspace": "ws",
        "sources": [{"name": s, "paths": [f"corpus/{s}.jsonl.zst"]} for s in SOURCES]
        + [{"name": "tiny_text", "paths": ["tiny/text_tldr_pages.jsonl.zst"]}],
        "ingest": {"exclude_fields": ["group", "format", "meta.lowq_kind"]},
        "executor": {"workers": 1},
        "groups": {"k": 3, "sample_per_source": 20},
        "teacher": {"backend": "local", "model": str(smol_path()), "max_record_tokens": 128,
                    "threads": SMOL_THREADS},
        # 2 + 3 spare clusters per group: SmolLM leaves some criteria empty (which drafts, depends on the CPU's float
        # kernels), so a group needs a few clusters to keep one anchor on every machine
        "discover": {"records_per_group": 4, "anchors": 2, "spare_anchors": 3, "points_per_anchor": 4},
        "label": {"records_per_group": 8, "chunk": 4, "min_val": 2, "twins": False, "explained": 0, "min_std": 0},
    }
    (d / "mira.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    run_mira("ingest", "-c", str(d / "mira.yaml"), "-q", check=True)
    run_mira("prefilter", "-c", str(d / "mira.yaml"), check=True)
    run_mira("group", "-c", str(d / "mira.yaml"), check=True)
    return d


def test_discover_builds_anchor_sets_per_group_deterministically(small_ws):
    # SmolLM2 fills every string to its schema length: 13 judgments + 9 anchors of ~500 tokens each
    out = run_mira("discover", "-c", str(small_ws / "mira.yaml"), check=True, timeout=1500)
    ws = small_ws / "ws"
    groups = json.loads((ws / "groups.json").read_text())["groups"]
    assert set(groups) == {"agent", "code", "text"}
    rubrics = {g: json.loads((ws / "rubrics" / f"{g}.json").read_text()) for g in groups}
    assert rubrics["text"]["n_records"] == 3
    assert "3 records, fewer than the 4 requested" in rubrics["text"]["notes"][0]
    assert "fewer than the 4 requested" in out.stdout
    for g, r in rubrics.items():
        assert 1 <= len(r["anchors"]) <= 5 and r["n_records"] == (3 if g == "text" else 4)  # 2 + 3 spare
        assert r["n_judged"] + r["n_dead"] == r["n_records"]
        for a in r["anchors"]:
            assert a["name"].strip() and a["definition"].strip() and a["cluster_size"] >= 1
            assert set(a["levels"]) == {"0", "5", "10"} and all(v.strip() for v in a["levels"].values())
        # every point belongs to at most one anchor (merged clusters add up; a cluster whose anchor died is lost)
        assert sum(a["cluster_size"] for a in r["anchors"]) <= r["n_points"]
        points = (ws / "discover" / g / "judgments.jsonl").read_text().splitlines()
        assert len(points) == r["n_points"]
    assert "teacher (local:" in out.stdout

    # Same seed + cache: identical rubric, zero new calls.
    before = {g: (ws / "rubrics" / f"{g}.json").read_text() for g in groups}
    again = run_mira("discover", "-c", str(small_ws / "mira.yaml"), "--force", check=True)
    assert {g: (ws / "rubrics" / f"{g}.json").read_text() for g in groups} == before
    assert " 0 calls" in again.stdout

    show = run_mira("rubric", "show", "agent", "-c", str(small_ws / "mira.yaml"), check=True)
    assert rubrics["agent"]["anchors"][0]["name"][:10] in show.stdout


def test_label_is_resumable_after_kill_and_splits_per_source(small_ws):
    ws = small_ws / "ws"
    if not (ws / "rubrics" / "agent.json").exists():
        run_mira("discover", "-c", str(small_ws / "mira.yaml"), check=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "mira_select", "label", "-c", str(small_ws / "mira.yaml")],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    markers = ws / "_done" / "label"
    deadline = time.time() + 600
    while time.time() < deadline and len(list(markers.rglob("chunk-*.json"))) < 1:
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_chunks = len(list(markers.rglob("chunk-*.json")))
    assert done_chunks >= 1

    out = run_mira("label", "-c", str(small_ws / "mira.yaml"), check=True)
    acct = json.loads((ws / "teacher" / "accounting.json").read_text())["label"]
    assert acct["requests"] == 19 - 4 * done_chunks  # finished chunks are not asked again
    for g in ("agent", "code", "text"):
        n = 3 if g == "text" else 8
        train = pq.read_table(ws / "labels" / g / "train.parquet")
        val = pq.read_table(ws / "labels" / g / "val.parquet")
        ids = train.column("id").to_pylist() + val.column("id").to_pylist()
        dead = (ws / "labels" / g / "dead_letter.jsonl").read_text().splitlines()
        assert len(ids) == len(set(ids)) and len(ids) + len(dead) == n
        for src in set(val.column("source").to_pylist()):
            assert src in set(train.column("source").to_pylist())
            assert 0 < val.column("source").to_pylist().count(src) <= train.column("source").to_pylist().count(src)
        anchors = json.loads((ws / "rubrics" / f"{g}.json").read_text())["anchors"]
        for a in anchors:
            col = train.column(f"score:{a['id']}").to_pylist()
            assert all(0 <= v <= 10 for v in col)
        choice = json.loads((ws / "labels" / g / "anchors.json").read_text())
        assert 1 <= len(choice["active"]) <= 2 and set(choice["active"]) <= {a["id"] for a in anchors}
        assert set(train.column("split").to_pylist()) == {"train"}
    assert "labeled" in out.stdout

    # A finished label stage: no calls at all.
    again = run_mira("label", "-c", str(small_ws / "mira.yaml"), check=True)
    assert "teacher: not needed" in again.stdout


def test_a_run_the_cache_answers_needs_no_llm_engine(small_ws, tmp_path):
    """`make demo` does not install llama-cpp-python: relabeling from the cache must not import it, and a real miss
    must say in one line what to install."""
    ws = small_ws / "ws"
    if not (ws / "rubrics" / "agent.json").exists():
        run_mira("discover", "-c", str(small_ws / "mira.yaml"), check=True)
    if not (ws / "labels" / "agent" / "train.parquet").exists():
        run_mira("label", "-c", str(small_ws / "mira.yaml"), check=True)
    blocked = tmp_path / "blocked" / "llama_cpp"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ImportError('llama_cpp is blocked by the test')\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(blocked.parent), os.environ.get("PYTHONPATH", "")])}
    run = lambda *a: subprocess.run([sys.executable, "-m", "mira_select", *a], env=env, capture_output=True,
                                    text=True, timeout=600)
    cached = run("label", "-c", str(small_ws / "mira.yaml"), "--force")
    assert cached.returncode == 0, cached.stderr
    assert " 0 calls" in cached.stdout
    cfg = yaml.safe_load((small_ws / "mira.yaml").read_text())
    cfg["label"]["records_per_group"] = 9  # one record more per group: a cache miss
    (small_ws / "more.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    miss = run("label", "-c", str(small_ws / "more.yaml"))
    assert miss.returncode == 2 and "make venv-teacher" in miss.stderr and "Traceback" not in miss.stderr


def test_dataman_baseline_labels_with_the_fixed_rubric_and_selects_globally(small_ws, tmp_path):
    import shutil

    d = tmp_path / "dm"
    shutil.copytree(small_ws, d, ignore=shutil.ignore_patterns("labels", "students"))
    cfg = yaml.safe_load((d / "mira.yaml").read_text())
    cfg["label"]["records_per_group"] = 1  # x 3 groups = 3 DataMan labels (~25 s each with SmolLM on one thread)
    cfg["baselines"] = {"dataman_max_record_tokens": 64}
    (d / "mira.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    out = run_mira("dataman", "-c", str(d / "mira.yaml"), check=True)
    labels = d / "ws" / "baselines" / "dataman" / "labels"
    train, val = pq.read_table(labels / "train.parquet"), pq.read_table(labels / "val.parquet")
    dead = (labels / "dead_letter.jsonl").read_text().splitlines()
    assert train.num_rows + val.num_rows + len(dead) == 3 and train.num_rows >= 1
    assert "score:overall" in train.column_names and "score:sensitivity" in train.column_names
    assert "dataman student" in out.stdout
    sel = run_mira("select", "-c", str(d / "mira.yaml"), "--variant", "dataman", check=True)
    summary = json.loads((d / "ws" / "selection" / "dataman" / "summary.json").read_text())
    assert set(summary["units"]) == {"all"} and summary["totals"]["kept_records"] > 0
    assert "selection dataman" in sel.stdout


def test_an_empty_group_is_an_error_naming_it(small_ws, tmp_path):
    import shutil

    d = tmp_path / "proj"
    shutil.copytree(small_ws / "corpus", d / "corpus")
    (d / "empty.jsonl").write_text('{"id": "x", "text": "   "}\n')
    cfg = yaml.safe_load((small_ws / "mira.yaml").read_text())
    cfg["sources"] = [s for s in cfg["sources"] if s["name"] != "tiny_text"]
    cfg["sources"].append({"name": "blank", "paths": ["empty.jsonl"]})
    cfg["groups"]["override"] = {"blank": "hollow"}
    (d / "mira.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    run_mira("ingest", "-c", str(d / "mira.yaml"), "-q", check=True)
    run_mira("group", "-c", str(d / "mira.yaml"), check=True)
    proc = run_mira("discover", "-c", str(d / "mira.yaml"))
    assert proc.returncode == 2 and "group 'hollow' has no records" in proc.stderr


def test_anchors_from_repeated_judgments_do_not_break_clustering(small_ws):
    from mira_select.config import load_config
    from mira_select.stages.discover import DiscoverStage

    cfg = load_config(small_ws / "mira.yaml")
    cfg.discover = cfg.discover.model_copy(update={"anchors": 5, "merge_similarity": 1.0})
    points = [{"record_id": f"r{i}", "source": "s", "part": "combined", "name": n, "reason": r, "score": 5}
              for i, (n, r) in enumerate([("clarity", "clear")] * 6 + [("tool use", "calls the right tool")] * 4)]
    notes: list[str] = []
    anchors, projection = DiscoverStage(cfg)._anchors("g", points, with_parts=False, notes=notes, fmt="agent")
    assert len(anchors) <= 2 and sum(a["cluster_size"] for a in anchors) == 10  # two clusters, largest first
    assert anchors[0]["member_names"] == ["clarity"]
    assert "2 distinct" in notes[0] and len(projection["x"]) == 10


def test_a_part_whose_criteria_all_fail_the_generality_check_keeps_the_drafts_marked(small_ws, monkeypatch):
    """Every cluster whose criterion was rejected as record-specific is written again from masked points. A part
    with no anchor cannot be labeled: if every rewrite fails too, the well-formed drafts stay, each marked with its
    problem and a note; a part with one good criterion keeps only it, plus the rewrites that passed."""
    from mira_select.config import load_config
    from mira_select.stages.discover import DiscoverStage

    cfg = load_config(small_ws / "mira.yaml")
    cfg.discover = cfg.discover.model_copy(update={"anchors": 5, "merge_similarity": 1.0})
    points = [{"record_id": f"r{i}", "source": "s", "part": "combined", "name": n, "reason": n, "score": 5}
              for i, n in enumerate(["covers distcc"] * 3 + ["covers ohmyzsh"] * 3)]

    calls: list[bool] = []

    def drafts(good: bool, masked_good: bool = False):
        def write(self, group, fmt, pts, clusters, vocab, masked=False):
            calls.append(masked)
            out = []
            for ci, (part, members, _shown) in enumerate(clusters):
                w = {"name": f"Topic {ci}", "definition": f"about subject number {ci}", "cluster_size": len(members),
                     "part": part, "merged": [], "_members": members, "levels": {"0": "a", "5": "b", "10": "c"}}
                if not (good and 0 in members) and not (masked and masked_good):
                    w["_problem"] = f"invalid after repair: it names 'thing{ci}'"
                    self._dropped.append({"cluster": f"{group}/c{ci}" + ("-masked" if masked else ""), "error": "x"})
                out.append(w)
            return out
        return write

    monkeypatch.setattr(DiscoverStage, "_write", drafts(good=False))
    notes: list[str] = []
    anchors, _ = DiscoverStage(cfg)._anchors("g", points, with_parts=False, notes=notes, fmt="text")
    assert calls == [False, True]  # the part's clusters were written again from masked points, in vain
    assert len(anchors) == 2 and all("thing" in a["problem"] for a in anchors)
    assert any("no criterion passed the generality check" in n for n in notes)
    assert not any("_problem" in a for a in anchors)

    calls.clear()
    monkeypatch.setattr(DiscoverStage, "_write", drafts(good=False, masked_good=True))
    stage, notes = DiscoverStage(cfg), []
    anchors, _ = stage._anchors("g", points, with_parts=False, notes=notes, fmt="text")
    assert calls == [False, True] and len(anchors) == 2 and not any("problem" in a for a in anchors)
    assert any("written again from points with the record-specific terms masked" in n for n in notes)

    calls.clear()
    monkeypatch.setattr(DiscoverStage, "_write", drafts(good=True))
    notes = []
    anchors, _ = DiscoverStage(cfg)._anchors("g", points, with_parts=False, notes=notes, fmt="text")
    assert calls == [False, True]  # the failed cluster alone was written again, in vain
    assert len(anchors) == 1 and "problem" not in anchors[0] and "_problem" not in anchors[0]
    assert any("1 cluster(s) failed the generality check" in n and "0 passed" in n for n in notes)

    calls.clear()
    monkeypatch.setattr(DiscoverStage, "_write", drafts(good=True, masked_good=True))
    anchors, _ = DiscoverStage(cfg)._anchors("g", points, with_parts=False, notes=[], fmt="text")
    assert calls == [False, True] and len(anchors) == 2 and not any("problem" in a for a in anchors)



def test_discover_and_label_name_an_unknown_group_before_any_teacher_call(small_ws):
    """`-g` names groups to run (a long teacher job does the ones it needs first); a name that is no group is one
    error line listing the groups, with no traceback."""
    groups = sorted(json.loads((small_ws / "ws" / "groups.json").read_text())["groups"])
    for stage in ("discover", "label"):
        proc = run_mira(stage, "-c", str(small_ws / "mira.yaml"), "-g", groups[0], "-g", "no_such_group")
        assert proc.returncode == 2 and "unknown group(s) no_such_group" in proc.stderr, proc.stderr
        assert ", ".join(groups) in proc.stderr and "Traceback" not in proc.stderr


def test_a_per_group_setting_for_a_group_that_does_not_exist_stops_the_stage(small_ws):
    """``label.groups.<name>`` for a name that is no group would never apply: one error line, no teacher call."""
    cfg = yaml.safe_load((small_ws / "mira.yaml").read_text())
    cfg["label"]["groups"] = {"no_such_group": {"max_record_tokens": 64}}
    (small_ws / "mira-override.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    proc = run_mira("label", "-c", str(small_ws / "mira-override.yaml"))
    assert proc.returncode == 2 and "label.groups names unknown group(s) no_such_group" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr

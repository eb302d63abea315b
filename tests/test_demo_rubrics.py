"""Self-anchored rubrics on the whole demo corpus, replayed from the shipped teacher cache (1.5B teacher answers).

`backend: replay` answers only from the cache, so these tests prove the shipped cache covers the demo's discovery
and that the rubrics it yields are group-specific and reproducible — without spending an hour of model time.
"""

from __future__ import annotations

import json
import shutil

import pytest

from mira_select.stages.discover import name_key

from .conftest import replay_config, run_mira

pytest.importorskip("model2vec", reason="needs the [embed] extra (make test installs it)")


@pytest.fixture(scope="module")
def replayed(demo_ws, tmp_path_factory):
    d = tmp_path_factory.mktemp("rubrics")
    replay_config(demo_ws, d)
    (d / "ws").mkdir()
    for name in ("manifest.json", "records", "_done"):
        src = demo_ws / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, d / "ws" / name)
    run_mira("group", "-c", str(d / "mira.yaml"), check=True)
    out = run_mira("discover", "-c", str(d / "mira.yaml"), check=True)
    return d, out


def _names(ws, group):
    return {name_key(a["name"]) for a in json.loads((ws / "rubrics" / f"{group}.json").read_text())["anchors"]}


def test_demo_groups_and_rubrics_are_group_specific(replayed):
    d, out = replayed
    ws = d / "ws"
    groups = json.loads((ws / "groups.json").read_text())["groups"]
    assert set(groups) == {"agent", "code", "qa", "qa_think", "text"}
    assert all(s.startswith("agent_") for s in groups["agent"])
    assert all(s.startswith("think_") for s in groups["qa_think"])
    for g in groups:
        rubric = json.loads((ws / "rubrics" / f"{g}.json").read_text())
        assert len(rubric["anchors"]) >= 8 and rubric["n_judged"] + rubric["n_dead"] == rubric["n_records"]
        assert all(a["name"].strip() and a["definition"].strip() for a in rubric["anchors"])
    agent = _names(ws, "agent")
    assert any("tool" in n for n in agent) and any("error" in n for n in agent)
    for other in ("code", "text"):
        names = _names(ws, other)
        assert not any("tool" in n for n in names)
        assert len(agent & names) / len(agent | names) <= 0.2, (agent, names)
    parts = {a["part"] for a in json.loads((ws / "rubrics" / "qa_think.json").read_text())["anchors"]}
    assert parts == {"think", "combined", "answer"}
    assert " 0 calls" in out.stdout  # every judgment came from the shipped cache


def test_rediscovery_with_the_same_seed_and_cache_is_identical(replayed):
    d, _ = replayed
    ws = d / "ws"
    before = {p.name: p.read_bytes() for p in (ws / "rubrics").glob("*.json")}
    run_mira("discover", "-c", str(d / "mira.yaml"), "--force", check=True)
    assert {p.name: p.read_bytes() for p in (ws / "rubrics").glob("*.json")} == before

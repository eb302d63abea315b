"""Source grouping on the real demo corpus."""

import json
import shutil
from pathlib import Path

import pytest

from mira_select.config import load_config
from mira_select.stages.group import GroupStage

pytest.importorskip("model2vec", reason="needs the [embed] extra (make test installs it)")


def _cfg(demo_ws: Path, tmp_path: Path, **groups):
    ws = tmp_path / "ws"
    ws.mkdir()
    shutil.copy(demo_ws / "manifest.json", ws / "manifest.json")
    (ws / "records").symlink_to(demo_ws / "records")
    cfg = load_config(demo_ws.parent / "mira.yaml")
    cfg.workspace = str(ws)
    cfg.groups = cfg.groups.model_copy(update=groups)
    return cfg


def test_groups_follow_capabilities(demo_ws, tmp_path, ground_truth):
    cfg = _cfg(demo_ws, tmp_path)
    result = GroupStage(cfg).run()
    info = json.loads((tmp_path / "ws" / "groups.json").read_text())
    assert len(result.groups) >= 3
    for members in result.groups.values():  # every group is pure in the corpus' own ground truth
        truth = {next(iter(ground_truth(s).values()))["group"] for s in members}
        assert len(truth) == 1, members
    agents = [s for s in info["sources"] if s.startswith("agent_")]
    assert len({info["assignments"][s] for s in agents}) == 1
    n = len(info["sources"])
    sim = info["similarity"]
    assert len(sim) == n and all(abs(sim[i][i] - 1) < 1e-3 for i in range(n))
    assert info["embedder"].startswith("minilm-static@") and info["overridden"] is False
    # same inputs -> no work the second time
    assert GroupStage(cfg).run().skipped


def test_override_changes_groups_and_is_recorded(demo_ws, tmp_path):
    cfg = _cfg(demo_ws, tmp_path, override={"qa_gpteacher_toolformer": "agent", "text_tldr_pages": "cheatsheets"})
    GroupStage(cfg).run()
    info = json.loads((tmp_path / "ws" / "groups.json").read_text())
    assert info["overridden"] is True
    assert info["assignments"]["qa_gpteacher_toolformer"] == "agent"
    assert info["automatic_assignments"]["qa_gpteacher_toolformer"] == "qa"
    assert info["groups"]["cheatsheets"] == ["text_tldr_pages"]


def test_k_spreads_over_formats_and_is_deterministic(demo_ws, tmp_path):
    cfg = _cfg(demo_ws, tmp_path, k=7)
    first = GroupStage(cfg).run(force=True).groups
    assert len(first) == 7
    again = GroupStage(cfg).run(force=True).groups
    assert again == first


def test_only_groups_keeps_the_asked_order_and_names_unknown_groups():
    from mira_select.errors import MiraError
    from mira_select.stages.group import only_groups

    groups = {"agent": ["a"], "code": ["c"], "text": ["t"]}
    assert list(only_groups(groups, ["text", "agent"])) == ["text", "agent"]
    assert only_groups(groups, None) == groups and only_groups(groups, []) == groups
    with pytest.raises(MiraError, match=r"unknown group\(s\) nope; groups are agent, code, text"):
        only_groups(groups, ["code", "nope"])


def test_grouping_replays_from_the_recorded_decision(demo_ws, tmp_path, monkeypatch):
    """The automatic grouping is recorded in the workspace cache by the sampled texts: a forced re-run (another CPU's
    last bits could move KMeans) reads it back without embedding; a different sample is clustered anew."""
    cfg = _cfg(demo_ws, tmp_path)
    first = GroupStage(cfg).run(force=True).groups
    calls = []

    def clustering_is_not_expected(self, *args):
        calls.append(args)
        raise AssertionError("the recorded grouping should have been used")

    real = GroupStage._cluster
    monkeypatch.setattr(GroupStage, "_cluster", clustering_is_not_expected)
    assert GroupStage(cfg).run(force=True).groups == first and not calls
    monkeypatch.setattr(GroupStage, "_cluster", lambda self, *a: calls.append(a) or real(self, *a))
    other = cfg.model_copy(update={"groups": cfg.groups.model_copy(update={"sample_per_source": 5})})
    GroupStage(other).run(force=True)
    assert len(calls) == 1  # a new sample -> new inputs -> clustered (and recorded)

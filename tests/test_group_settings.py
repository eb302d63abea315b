"""Per-group settings (``discover.groups`` / ``label.groups``): checked like the section, applied to that group
only, and invisible to the fingerprints of every other group (adding one redoes one group's work)."""

from __future__ import annotations

import asyncio

import pytest

from mira_select.config import parse_config
from mira_select.errors import ConfigError, MiraError
from mira_select.stages.group import check_group_overrides
from mira_select.stages.label import LabelStage
from mira_select.teacher.types import Anchor
from mira_select.workspace import Workspace, write_json

BASE = """\
workspace: ws
sources:
  - {name: a, paths: [a.jsonl]}
  - {name: b, paths: [b.jsonl]}
teacher: {backend: replay, model: m, max_record_tokens: 512, datamark: false}
"""


def _cfg(tmp_path, extra: str = ""):
    return parse_config(BASE + extra, base_dir=tmp_path)


def test_an_override_is_checked_like_its_section_and_named_with_its_line(tmp_path):
    with pytest.raises(ConfigError) as exc:
        _cfg(tmp_path, "label:\n  groups:\n    think: {max_record_tokenz: 1024, records_per_group: 0}\n")
    msg = str(exc.value)
    assert "label" in msg and "groups.think" in msg and "max_record_tokenz" in msg
    assert "records_per_group" in msg and "greater than 0" in msg
    with pytest.raises(ConfigError, match="injection_check cannot differ per group"):
        _cfg(tmp_path, "label:\n  groups:\n    think: {injection_check: true}\n")
    with pytest.raises(ConfigError, match="unsafe group name"):
        _cfg(tmp_path, "discover:\n  groups:\n    ../up: {records_per_group: 8}\n")


def test_overrides_apply_to_their_group_only(tmp_path):
    cfg = _cfg(tmp_path, "label:\n  max_record_tokens: 256\n  groups:\n    think: {max_record_tokens: 1024}\n"
                         "discover:\n  groups:\n    think: {records_per_group: 32}\n")
    assert cfg.label.for_group("think").max_record_tokens == 1024
    assert cfg.label.for_group("text").max_record_tokens == 256
    assert cfg.discover.for_group("think").records_per_group == 32
    assert cfg.discover.for_group("text").records_per_group == 64
    plain = _cfg(tmp_path, "label:\n  max_record_tokens: 256\n")
    # the settings a group without an override runs with: exactly the section as it was before overrides existed
    assert cfg.label.settings_dump("text") == plain.label.settings_dump("text")
    assert "groups" not in cfg.label.settings_dump("think")
    assert cfg.label.settings_dump("think") != plain.label.settings_dump("think")


def _label_stage(tmp_path, extra: str) -> LabelStage:
    cfg = _cfg(tmp_path, extra)
    ws = Workspace(cfg.workspace_path)
    write_json(ws.root / "groups.json", {"groups": {"text": ["a"], "think": ["b"]}, "embedder": "x"})
    return LabelStage(cfg, ws)


def test_label_fingerprints_and_cut_follow_the_groups_settings(tmp_path):
    rubric = {"anchors": [{"id": "a01", "name": "n", "definition": "d"}]}
    plain = _label_stage(tmp_path / "p", "label:\n  max_record_tokens: 256\n")
    over = _label_stage(tmp_path / "o", "label:\n  max_record_tokens: 256\n  groups:\n"
                                        "    think: {max_record_tokens: 1024, records_per_group: 50}\n")
    # paths differ between the two workspaces; compare what the group's labels depend on besides the records
    strip = lambda d: {k: v for k, v in d.items() if k != "records"}  # noqa: E731
    assert strip(over.inputs("text", ["a"], rubric)) == strip(plain.inputs("text", ["a"], rubric))
    think = strip(over.inputs("think", ["b"], rubric))
    assert think["cut"] == 1024 and think["n"] == 50 and think != strip(plain.inputs("think", ["b"], rubric))
    assert over.record_cut("text") == 256 and over.n_twins("think") == round(0.15 * 50)


def test_a_groups_teacher_cuts_records_to_its_own_length(tmp_path):
    stage = _label_stage(tmp_path, "label:\n  max_record_tokens: 64\n  groups:\n    think: {max_record_tokens: 512}\n")
    anchors = [Anchor("a01", "Clarity", "How clear the record is.")]
    text = " ".join(f"word{i}" for i in range(2000))
    short = stage.group_teacher("text")
    long = stage.group_teacher("think")
    assert short is stage.teacher() and long is not short
    assert long.cache is short.cache and long.acct is short.acct and long.backend is short.backend
    req_short = short._label_request("r", "text", text, anchors, explain=False, use_lp=False)
    req_long = long._label_request("r", "text", text, anchors, explain=False, use_lp=False)
    body = lambda req: req.messages[-1]["content"]  # noqa: E731
    assert "tokens omitted" in body(req_short) and "tokens omitted" in body(req_long)
    assert body(req_long).count("word") > 5 * body(req_short).count("word")
    # a miss on the replay backend is accounted on the shared counters, whichever view asked
    asyncio.run(long.label("r", "text", text, anchors))
    assert stage.teacher().acct.requests == 1


def test_an_override_for_a_group_the_corpus_lacks_is_an_error_naming_the_groups(tmp_path):
    cfg = _cfg(tmp_path, "label:\n  groups:\n    thinking: {max_record_tokens: 1024}\n"
                         "discover:\n  groups:\n    think: {records_per_group: 8}\n")
    groups = {"text": ["a"], "think": ["b"]}
    with pytest.raises(MiraError, match=r"label.groups names unknown group\(s\) thinking; groups are text, think"):
        check_group_overrides("label", cfg.label, groups)
    check_group_overrides("discover", cfg.discover, groups)  # a group the corpus has: fine

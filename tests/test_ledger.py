"""The freshness rule itself (ledger.py): verdicts, the names of changed inputs, references between units."""

from __future__ import annotations

import shutil
from pathlib import Path

from mira_select.ledger import CURRENT, MISSING, STALE, Ledger, Ref, Unit
from mira_select.workspace import Counts, Workspace


def _record(ledger: Ledger, unit: Unit) -> None:
    for p in unit.outputs:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("out")
    ledger.record(unit, Counts(1, 1, 0, 0))


def test_verdicts_name_the_inputs_that_changed(tmp_path: Path):
    ws = Workspace(tmp_path / "ws")
    ledger = Ledger(ws)
    data = tmp_path / "in.txt"
    data.write_text("a")
    out = ws.root / "out.txt"

    def unit(cfg: dict) -> Unit:
        return Unit.of("s", "k", {"config": cfg, "data": data, "logic": 1}, [out])

    assert ledger.verdict(unit({"x": 1})).state == MISSING
    _record(ledger, unit({"x": 1}))
    assert ledger.verdict(unit({"x": 1})).state == CURRENT
    assert ledger.verdict(unit({"x": 2})).changed == ("config",)
    data.write_text("b")  # same name and size, new content
    v = Ledger(ws).verdict(unit({"x": 2}))
    assert v.state == STALE and v.changed == ("config", "data") and "config, data changed" in v.describe()
    data.write_text("a")
    out.unlink()
    assert Ledger(ws).verdict(unit({"x": 1})).state == MISSING  # recorded, but its output is gone


def test_files_count_by_content_so_a_copied_workspace_stays_current(tmp_path: Path):
    a = tmp_path / "a"
    (a / "ws").mkdir(parents=True)
    (a / "model.bin").write_bytes(b"weights")
    ledger = Ledger(Workspace(a / "ws"))
    _record(ledger, ledger.unit("s", "k", {"nested": {"model": a / "model.bin"}}))
    b = tmp_path / "b"
    shutil.copytree(a, b)
    moved = Ledger(Workspace(b / "ws"))
    assert moved.is_current(moved.unit("s", "k", {"nested": {"model": b / "model.bin"}}))
    (b / "model.bin").write_bytes(b"other weights")
    assert not moved.is_current(moved.unit("s", "k", {"nested": {"model": b / "model.bin"}}))


def test_refs_stand_for_the_upstream_fingerprint_and_are_dependencies(tmp_path: Path):
    ws = Workspace(tmp_path / "ws")
    ledger = Ledger(ws)
    up = Unit.of("up", "u1", {"v": 1})
    _record(ledger, up)
    down = ledger.unit("down", "d1", {"inputs": {"u": Ref("up", "u1")}, "missing": Ref("up", "never")})
    assert down.deps == (("up", "u1"), ("up", "never"))
    _record(ledger, down)
    assert ledger.is_current(ledger.unit("down", "d1", {"inputs": {"u": Ref("up", "u1")},
                                                        "missing": Ref("up", "never")}))
    _record(ledger, Unit.of("up", "u1", {"v": 2}))  # upstream redone with new inputs
    again = ledger.unit("down", "d1", {"inputs": {"u": Ref("up", "u1")}, "missing": Ref("up", "never")})
    assert ledger.verdict(again).changed == ("inputs",)


def test_a_marker_from_before_the_ledger_is_stale_not_current(tmp_path: Path):
    ws = Workspace(tmp_path / "ws")
    ws.mark_done("s", "k", Counts(1, 1, 0, 0), fingerprint="old-style")
    v = Ledger(ws).verdict(Unit.of("s", "k", {"a": 1}))
    assert v.state == STALE and "did not record its inputs" in v.why


def test_private_inputs_redo_the_unit_but_leave_what_dependents_see(tmp_path: Path):
    ledger = Ledger(Workspace(tmp_path / "ws"))

    def up(flag: float, split: float) -> Unit:
        return ledger.unit("up", "k", {"config": {"split": split}, "report": {"flag": flag}},
                           private=frozenset({"report"}))

    _record(ledger, up(0.6, 0.2))
    down = ledger.unit("down", "k", {"up": Ref("up", "k")})
    _record(ledger, down)

    flagged = up(0.9, 0.2)
    verdict = ledger.verdict(flagged)
    assert verdict.state == STALE and verdict.changed == ("report",)
    assert not verdict.reaches_dependents(flagged)
    assert flagged.fingerprint == up(0.6, 0.2).fingerprint
    _record(ledger, flagged)
    assert ledger.verdict(ledger.unit("down", "k", {"up": Ref("up", "k")})).state == CURRENT

    split = up(0.9, 0.3)
    assert ledger.verdict(split).reaches_dependents(split) and split.fingerprint != flagged.fingerprint
    _record(ledger, split)
    assert ledger.verdict(ledger.unit("down", "k", {"up": Ref("up", "k")})).changed == ("up",)

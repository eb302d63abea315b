"""Reading a selection back (`io.kept`): streamed in selection order, sampled by seeded keys without holding the
selection, and never another record's text when the records changed after the selection."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml

from mira_select.errors import MiraError
from mira_select.io import kept as kept_io
from mira_select.workspace import Workspace

from .conftest import load_ground_truth, run_mira
from .select_helpers import GROUPS, build_workspace


@pytest.fixture(scope="module")
def selected(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("kept")
    cfg = build_workspace(root, load_ground_truth, files_per_source=2, per_file=40, labels_per_source=40,
                          extra={"eval": {"holdout_share": 0.1}})
    run_mira("train", "-c", str(cfg), check=True)
    run_mira("score", "-c", str(cfg), check=True)
    run_mira("select", "-c", str(cfg), "--variant", "group", check=True)
    return root


def _texts_by_id(ws: Workspace, kept) -> dict[str, str]:
    """The kept texts found the slow way: every record shard filtered by the kept ids."""
    out = {}
    for source in set(kept.column("source").to_pylist()):
        for shard in ws.record_shards(source):
            t = pq.read_table(shard, columns=["id", "text"])
            t = t.filter(pc.is_in(t.column("id"), value_set=kept.column("id")))
            out.update(zip(t.column("id").to_pylist(), t.column("text").to_pylist()))
    return out


def test_streamed_texts_are_the_kept_records_in_selection_order(selected, monkeypatch):
    ws = Workspace(selected / "ws")
    kept = pq.read_table(kept_io.kept_path(ws, "group"))
    assert {"shard", "row", "n_bytes"} <= set(kept.column_names)
    truth = _texts_by_id(ws, kept)
    monkeypatch.setattr(kept_io, "BATCH", 7)  # runs of one shard cut across location batches
    streamed = list(kept_io.iter_kept_texts(ws, "group"))
    assert streamed == [truth[i] for i in kept.column("id").to_pylist()]
    assert kept.column("n_bytes").to_pylist() == [len(t.encode()) for t in streamed]


def test_sample_covers_the_byte_budget_and_depends_on_the_seed(selected, monkeypatch):
    ws = Workspace(selected / "ws")
    kept = pq.read_table(kept_io.kept_path(ws, "group"))
    truth = set(_texts_by_id(ws, kept).values())
    total = sum(kept.column("n_bytes").to_pylist())
    monkeypatch.setattr(kept_io, "BATCH", 16)  # candidates are cut back after every batch
    budget = total // 5
    a = kept_io.kept_sample(ws, "group", budget, seed=0)
    assert set(a) <= truth and len(set(a)) == len(a)
    sizes = [len(t.encode()) + 1 for t in a]
    assert sum(sizes) >= budget > sum(sizes) - sizes[-1]  # stops at the record that crosses the budget
    assert kept_io.kept_sample(ws, "group", budget, seed=0) == a  # reproducible
    monkeypatch.setattr(kept_io, "BATCH", 65_536)
    assert kept_io.kept_sample(ws, "group", budget, seed=0) == a  # batch size does not change the draw
    b = kept_io.kept_sample(ws, "group", budget, seed=1)
    assert set(b) != set(a)
    # more than the selection: all of it
    assert sorted(kept_io.kept_sample(ws, "group", 10 * total, seed=0)) == sorted(truth)
    # uniform: over 40 seeds every kept record is drawn about as often as its share says (a fifth of the bytes)
    counts = {}
    for seed in range(40):
        for t in kept_io.kept_sample(ws, "group", budget, seed=seed):
            counts[t] = counts.get(t, 0) + 1
    assert len(counts) > 0.9 * len(truth)
    assert 0.1 < np.mean(list(counts.values())) / 40 < 0.35


def test_records_changed_after_the_selection_are_an_error_not_other_texts(selected, tmp_path):
    copy = tmp_path / "ws"
    shutil.copytree(selected / "ws", copy)
    ws = Workspace(copy)
    kept = pq.read_table(kept_io.kept_path(ws, "group"))
    source, shard = kept.column("source")[0].as_py(), kept.column("shard")[0].as_py()
    path = ws.records_dir(source) / shard
    t = pq.read_table(path)
    pq.write_table(t.take(list(reversed(range(t.num_rows)))), path)  # same records, other rows
    with pytest.raises(MiraError, match=shard):
        list(kept_io.iter_kept_texts(ws, "group"))
    with pytest.raises(MiraError, match="changed after the selection"):
        kept_io.kept_sample(ws, "group", 10 ** 9, seed=0)
    conf = yaml.safe_load((selected / "mira.yaml").read_text())
    (selected / "changed.yaml").write_text(yaml.safe_dump({**conf, "workspace": str(copy)}, sort_keys=False))
    out = run_mira("export", "-c", str(selected / "changed.yaml"), "--variant", "group")
    assert out.returncode == 2 and shard in out.stderr and "Traceback" not in out.stderr


def test_holdout_sample_is_uncontaminated_held_out_and_capped(selected):
    from mira_select.config import load_config
    from mira_select.evaluate.run import EvalRunner
    from mira_select.holdout import holdout_mask, id_buckets

    cfg = load_config(selected / "mira.yaml")
    runner = EvalRunner(cfg, holdout_records=5)
    ws = runner.ws
    sources = GROUPS["code"]
    held = {}
    for s in sources:
        for shard in ws.record_shards(s):
            t = pq.read_table(shard, columns=["id", "text"])
            m = holdout_mask(cfg, id_buckets(t.column("id").to_pylist()))
            flags = pq.read_table(ws.root / "prefilter" / s / shard.name, columns=["id", "contaminated"])
            assert flags.column("id").equals(t.column("id"))
            m &= ~flags.column("contaminated").to_numpy(zero_copy_only=False)
            held.update((i, x) for i, x, k in zip(t.column("id").to_pylist(), t.column("text").to_pylist(), m) if k)
    texts = runner.holdout_texts(sources)
    assert len(held) > 5 and len(texts) == 5 and set(texts) <= set(held.values())
    assert runner.holdout_texts(sources) == texts
    assert EvalRunner(cfg, holdout_records=1000).holdout_texts(sources).__len__() == len(held)


def test_long_runs_are_read_in_pieces_of_bounded_text(selected, monkeypatch):
    """A run of one shard is cut by bytes of text as well as by rows, and the pieces still add up to the selection."""
    ws = Workspace(selected / "ws")
    kept = pq.read_table(kept_io.kept_path(ws, "group"))
    monkeypatch.setattr(kept_io, "RUN_BYTES", 20_000)
    pieces = list(kept_io.iter_kept_records(ws, "group", ["id", "text"]))
    ids = [i for t in pieces for i in t.column("id").to_pylist()]
    assert ids == kept.column("id").to_pylist()
    longest = max(kept.column("n_bytes").to_pylist())
    assert max(sum(len(x.encode()) for x in t.column("text").to_pylist()) for t in pieces) < 20_000 + longest
    assert len(pieces) > len({(s, h) for s, h in zip(kept.column("source").to_pylist(),
                                                     kept.column("shard").to_pylist())})

"""`mira run` end to end on the whole demo corpus (teacher replayed from the shipped cache) and `mira report`.

Checks that one command runs every stage, that the page shows the numbers of *this* workspace in every section,
that it is self-contained, and that a second `mira run` does no work and makes no teacher call.
"""

from __future__ import annotations

from markupsafe import escape
import json
import re
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mira_select.anchor_choice import label_dimensionality

from .conftest import replay_config, run_mira

pytest.importorskip("model2vec", reason="needs the [embed] extra (make test installs it)")
pytest.importorskip("matplotlib")

def _esc(text: str) -> str:
    """As the report's templates escape (markupsafe: ' becomes &#39;, not html.escape's &#x27;)."""
    return str(escape(text))


TINY_EVAL = {"seeds": [0], "train_bytes": 20_000, "context": 64, "layers": 1, "width": 32, "heads": 2, "batch": 4,
             "variants": ["group", "random"], "holdout_share": 0.02, "threads": 1}


CHECK_PAIRS = 10  # not the default 24: the run must take the count from check.pairs_per_format


@pytest.fixture(scope="module")
def finished(demo_ws, tmp_path_factory):
    d = tmp_path_factory.mktemp("run")
    replay_config(demo_ws, d, student={"kind": "hashed_linear"}, budget={"compare": ["source", "global", "random"]},
                  eval=TINY_EVAL, check={"pairs_per_format": CHECK_PAIRS})
    (d / "corpus").symlink_to(demo_ws.parent / "corpus")
    # The session's ingest of the demo corpus, copied: a workspace moved to another path stays current (freshness
    # is by content), and the ~40 s ingest is not paid twice per test session.
    shutil.copytree(demo_ws, d / "ws")  # ingest's outputs only: records, quarantine, id runs, markers, manifest
    first = run_mira("run", "-c", str(d / "mira.yaml"), "--eval", check=True)
    return d, d / "ws", first


def test_check_interval_is_wilsons():
    """Reference values of the Wilson score interval (z = 1.96); a tie's half win is kept, not rounded."""
    from mira_select.stages.check import wilson_interval

    assert wilson_interval(21, 24) == pytest.approx((0.690, 0.957), abs=1e-3)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.278), abs=1e-3)
    assert wilson_interval(10, 10)[1] == 1.0 and wilson_interval(10, 10)[0] == pytest.approx(0.722, abs=1e-3)
    assert wilson_interval(11.5, 24) != wilson_interval(12, 24) and wilson_interval(3, 0) is None


def test_run_executes_every_stage_and_prints_the_summary(finished):
    d, ws, first = finished
    last = json.loads((ws / "run" / "last.json").read_text())
    assert [s["stage"] for s in last["stages"]] == ["ingest", "prefilter", "group", "discover", "label", "train",
                                                   "score", "select", "check", "eval"]
    ran = {s["stage"]: s["did_work"] for s in last["stages"]}
    assert ran.pop("ingest") is False and all(ran.values()), ran  # ingest: the copied workspace is current
    labels = sum(len(pq.read_table(p, columns=["id"])) for p in (ws / "labels").glob("*/*.parquet"))
    assert last["teacher"]["calls"] == 0 and last["teacher"]["cache_hits"] > labels  # replayed, every answer
    # every answer the demo asks for is in the shipped cache: a replay miss would be dead-lettered with this error
    # (discovery's own dead answers, invalid after repair, are the teacher's and are replayed as such)
    for p in [*ws.glob("rubrics/*.json"), *ws.glob("discover/*/dead_letter.jsonl"), *ws.glob("labels/*/*.jsonl")]:
        assert "no cached answer" not in p.read_text(), p
    assert next(s for s in last["stages"] if s["stage"] == "label")["teacher"]["dead"] == 0
    assert last["check"]["per_format"] and "mira check" in first.stdout
    check = json.loads((ws / "check" / "scorer.json").read_text())
    listed = check["pair_results"]  # every pair, readable: its accuracy per format is the listed wins' mean
    assert len(listed) == check["pairs"] > 0
    for fmt, row in check["per_format"].items():
        wins = [r["scorer_win"] for r in listed if r["format"] == fmt]
        assert len(wins) == row["pairs"] and abs(sum(wins) / len(wins) - row["accuracy"]) < 1e-9
        assert row["pairs"] <= CHECK_PAIRS
        lo, hi = row["accuracy_ci95"]
        assert lo <= row["accuracy"] <= hi and hi - lo > 0.1  # 10 pairs decide little, and the interval says so
    assert max(r["pairs"] for r in check["per_format"].values()) == CHECK_PAIRS
    summary = json.loads((ws / "selection" / "group" / "summary.json").read_text())
    for group, g in summary["per_group"].items():
        assert f"{g['kept_tokens']:,}" in first.stdout, group  # per-group tokens kept are printed
    for source in summary["per_source"]:
        assert source in first.stdout
    assert "report: " in first.stdout and (ws / "report" / "index.html").exists()


def test_second_run_does_no_work_and_calls_no_teacher(finished):
    d, ws, _ = finished
    watched = [ws / "selection" / "group" / "kept.parquet", ws / "students" / "code" / "weights.npz",
               ws / "labels" / "code" / "train.parquet", ws / "rubrics" / "code.json", ws / "eval" / "results.json"]
    before = {p: p.stat().st_mtime_ns for p in watched}
    again = run_mira("run", "-c", str(d / "mira.yaml"), "--eval", "--no-report", check=True)
    last = json.loads((ws / "run" / "last.json").read_text())
    assert not last["did_work"], last["stages"]
    assert last["teacher"] == {k: 0 for k in last["teacher"]}
    assert "nothing to do" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in watched} == before


def test_replayed_teacher_labels_drive_the_selection(finished):
    """The chain the product exists for, on real teacher answers (replayed, not a function of the text): labels →
    student → score → selection. Per group, the records the teacher rated higher get higher scores, and the
    labeled records MIRA-Group keeps carry higher teacher labels than the ones it drops."""
    from scipy.stats import spearmanr

    _, ws, _ = finished
    kept = set(pq.read_table(ws / "selection" / "group" / "kept.parquet", columns=["id"]).column("id").to_pylist())
    score_of = {}
    for path in (ws / "scores").glob("*/*.parquet"):
        t = pq.read_table(path, columns=["id", "score"])
        score_of.update(zip(t.column("id").to_pylist(), t.column("score").to_pylist()))
    gaps = {}
    for group_dir in sorted((ws / "labels").iterdir()):
        active = json.loads((group_dir / "anchors.json").read_text())["active"]
        t = pq.read_table(group_dir / "train.parquet").to_pylist() + pq.read_table(group_dir / "val.parquet").to_pylist()
        rows = [r for r in t if "~" not in r["id"] and r["id"] in score_of]  # corpus records, not twins
        teacher = [sum(r[f"score:{a}"] for a in active) / len(active) for r in rows]
        rho = spearmanr(teacher, [score_of[r["id"]] for r in rows]).statistic
        assert rho > 0.3, (group_dir.name, rho)
        kept_t = [v for r, v in zip(rows, teacher) if r["id"] in kept]
        dropped_t = [v for r, v in zip(rows, teacher) if r["id"] not in kept]
        gaps[group_dir.name] = sum(kept_t) / max(len(kept_t), 1) - sum(dropped_t) / max(len(dropped_t), 1)
    assert len(gaps) == 5 and sum(g > 0 for g in gaps.values()) >= 4, gaps


def test_from_and_until_select_a_window_of_stages(finished):
    d, ws, _ = finished
    out = run_mira("run", "-c", str(d / "mira.yaml"), "--from", "train", "--until", "score", "--no-report",
                   check=True)
    stages = [s["stage"] for s in json.loads((ws / "run" / "last.json").read_text())["stages"]]
    assert stages == ["train", "score"]
    bad = run_mira("run", "-c", str(d / "mira.yaml"), "--from", "score", "--until", "train")
    assert bad.returncode == 2 and "comes after" in bad.stderr and "Traceback" not in bad.stderr
    assert "train" in out.stdout


def test_report_sections_show_this_workspaces_numbers(finished):
    d, ws, _ = finished
    page = (ws / "report" / "index.html").read_text()
    sections = dict(re.findall(r'data-section="(\w+)">(.*?)</section>', page, flags=re.S))
    assert set(sections) >= {"corpus", "groups", "rubrics", "labels", "selection", "examples", "eval", "run"}
    # corpus: total records and every source's token count
    manifest = json.loads((ws / "manifest.json").read_text())
    assert f"{sum(s['records'] for s in manifest['sources'].values()):,} records" in sections["corpus"]
    for name, s in manifest["sources"].items():
        assert name in sections["corpus"] and f"{s['tokens']:,}" in sections["corpus"]
    # groups: every group with its members
    groups = json.loads((ws / "groups.json").read_text())["groups"]
    for g, members in groups.items():
        assert f"<b>{g}</b>" in sections["groups"] and all(m in sections["groups"] for m in members)
    # rubrics: every anchor's name, its 0/5/10 levels and its share of labels at the scale's ends, per group
    for g in groups:
        rubric = json.loads((ws / "rubrics" / f"{g}.json").read_text())
        choice = json.loads((ws / "labels" / g / "anchors.json").read_text())
        assert f"{g} — {len(rubric['anchors'])} anchors from {rubric['n_points']} judgment points" in sections["rubrics"]
        for a in rubric["anchors"]:
            assert _esc(a["name"]) in sections["rubrics"]
            assert _esc(a["levels"]["10"]) in sections["rubrics"]
            st = choice["stats"][a["id"]]
            assert f"{100 * st['bottom_share']:.1f}% / {100 * st['top_share']:.1f}%" in sections["rubrics"]
    # labels: the student's validation Spearman as metrics.json has it
    for g in groups:
        m = json.loads((ws / "students" / g / "metrics.json").read_text())
        n = sum(len(pq.read_table(ws / "labels" / g / f"{s}.parquet", columns=["id"])) for s in ("train", "val"))
        assert f"{g} — {n} labeled records; student {m['kind']}: ρ = {m['overall']['spearman']:.3f}" in sections["labels"]
    # labels: how many separate judgments the active anchors' labels carry, recomputed from the label files
    shown = 0
    for g in groups:
        t = pa.concat_tables([pq.read_table(ws / "labels" / g / f"{s}.parquet") for s in ("train", "val")])
        active = json.loads((ws / "labels" / g / "anchors.json").read_text())["active"]
        clean = [not tw for tw in t.column("twin").to_pylist()]
        scores = np.column_stack([t.column(f"score:{a}").to_numpy(zero_copy_only=False) for a in active])[clean]
        dims = label_dimensionality(scores, [s for s, k in zip(t.column("source").to_pylist(), clean) if k])
        if dims:
            assert (f"first principal component of the {len(active)} anchors' scores holds "
                    f"{100 * dims['pc1_share']:.1f}% of their variance within sources") in sections["labels"]
            shown += 1
    assert shown
    # labels: the record cut the labels were asked with and, per source, the share of labeled records above it
    from mira_select.config import load_config

    cfg = load_config(d / "mira.yaml")
    for g in groups:
        t = pa.concat_tables([pq.read_table(ws / "labels" / g / f"{s}.parquet") for s in ("train", "val")])
        cut = cfg.label.for_group(g).max_record_tokens or cfg.teacher.max_record_tokens
        rows = [(s, n) for s, n, tw in zip(*(t.column(c).to_pylist() for c in ("source", "n_tokens", "twin"))) if not tw]
        assert f"Record cut for labeling: {cut:,} tokens" in sections["labels"]
        for src in {s for s, _ in rows}:
            share = np.mean([n > cut for s, n in rows if s == src])
            assert f"{src} {100 * share:.1f}%" in sections["labels"], (g, src)
    # selection: kept tokens of the main variant and every compared variant's row
    sel = json.loads((ws / "selection" / "group" / "summary.json").read_text())
    assert f"keeps {sel['totals']['kept_tokens']:,} of {sel['totals']['tokens']:,} tokens" in sections["selection"]
    for v in ("group", "source", "global", "random"):
        assert f"<td>{v}</td>" in sections["selection"]
    # examples: the best-scored record of a group's explained sample, with its evidence quote and rationale
    t = pq.read_table(ws / "labels" / "agent" / "train.parquet").to_pylist() + \
        pq.read_table(ws / "labels" / "agent" / "val.parquet").to_pylist()
    active = json.loads((ws / "labels" / "agent" / "anchors.json").read_text())["active"]
    explained = [r for r in t if r[f"rationale:{active[0]}"]]
    assert explained
    best = max(explained, key=lambda r: sum(r[f"score:{a}"] for a in active) / len(active))
    assert best["id"] in sections["examples"]
    assert _esc(best[f"rationale:{active[0]}"]) in sections["examples"]
    # eval: the table holds the numbers of results.json
    res = json.loads((ws / "eval" / "results.json").read_text())
    tr = res["variants"]["random"]["transformer"]["mean"]["macro"]
    assert f"{tr:.3f}" in sections["eval"]
    # self-contained: every image inline, nothing fetched from the network
    imgs = re.findall(r'<img [^>]*src="([^"]+)"', page)
    assert len(imgs) >= 5 + 2 * len(groups) and all(src.startswith("data:image/png;base64,") for src in imgs)
    assert not re.search(r'(src|href)="https?://', page)

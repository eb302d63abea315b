"""Fault injection (fake server, faults only): every request ends ok, repaired or dead-lettered, as counted."""

import random
import shutil
from pathlib import Path

import orjson
import pytest

from mira_select.config import TeacherConfig, load_config
from mira_select.teacher.check import run_check
from mira_select.teacher.client import Teacher
from mira_select.teacher.types import Anchor
from mira_select.workspace import Workspace

from .teacher_helpers import FaultServer, chat_payload

ANCHORS = [Anchor("a1", "clarity", "clear"), Anchor("a2", "correctness", "right")]
GOOD = orjson.dumps({"a1": {"rationale": "clear", "score": 7}, "a2": {"rationale": "ok", "score": 6}}).decode()


def _scores(v1, v2=5) -> str:
    return orjson.dumps({"a1": {"rationale": "r", "score": v1}, "a2": {"rationale": "r", "score": v2}}).decode()


def answer_for(fault: str, n: int, repair: bool, body: dict):
    ok = (200, {}, chat_payload(GOOD), 0.0)
    if fault == "ok":
        return ok
    if fault == "e500x2":
        return (500, {}, b"upstream exploded", 0.0) if n <= 2 else ok
    if fault == "e429":
        return (429, {"Retry-After": "0"}, b"slow down", 0.0) if n == 1 else ok
    if fault == "timeout":
        return (200, {}, chat_payload(GOOD), 1.5) if n == 1 else ok
    if fault == "truncbody":
        return (200, {}, chat_payload(GOOD)[:37], 0.0) if n == 1 else ok
    if fault == "nonjson":
        return ok if repair else (200, {}, chat_payload("I would say about a 7 overall."), 0.0)
    if fault == "eleven":
        return ok if repair else (200, {}, chat_payload(_scores(11)), 0.0)
    if fault == "seven":
        return ok if repair else (200, {}, chat_payload(_scores("seven")), 0.0)
    if fault == "negative":
        return 200, {}, chat_payload(_scores(-1)), 0.0
    if fault == "missing":
        return 200, {}, chat_payload(orjson.dumps({"a1": {"rationale": "r", "score": 3}}).decode()), 0.0
    if fault == "always500":
        return 503, {}, b"down", 0.0
    if fault == "e400":
        return 400, {}, b"bad request", 0.0
    raise AssertionError(fault)


EXPECTED = {"ok": "ok", "e500x2": "ok", "e429": "ok", "timeout": "ok", "truncbody": "ok",
            "nonjson": "repaired", "eleven": "repaired", "seven": "repaired",
            "negative": "dead", "missing": "dead", "always500": "dead", "e400": "dead"}


@pytest.fixture
def fault_server():
    srv = FaultServer(answer_for)
    yield srv
    srv.stop()


def test_faults_are_retried_repaired_or_dead_lettered_exactly(tmp_path: Path, fault_server):
    cfg = TeacherConfig(backend="openai", base_url=fault_server.base_url, model="fake", timeout_s=0.5,
                        max_retries=3, backoff_base_s=0.01, backoff_max_s=0.05, concurrency=4, logprobs=False)
    teacher = Teacher(cfg, Workspace(tmp_path / "ws"), stage="label")
    items = [(f"r-{f}", "text", f"A record. FAULT:{f} end") for f in EXPECTED]
    results = teacher.run(lambda i, f, t: teacher.score(i, f, t, ANCHORS), items)
    got = {r.record_id.removeprefix("r-"): r.status for r in results}
    assert got == EXPECTED
    acct = teacher.save_accounting()
    assert acct["requests"] == len(EXPECTED) == acct["ok"] + acct["repaired"] + acct["dead"]
    assert (acct["ok"], acct["repaired"], acct["dead"]) == (5, 3, 4)
    by_id = {r.record_id: r for r in results}
    assert "gave up after 4 attempts" in by_id["r-always500"].error
    assert "HTTP 400" in by_id["r-e400"].error and fault_server.attempts["e400"] == 1  # 4xx: no retry
    assert "outside 0-10" in by_id["r-negative"].error and "missing" in by_id["r-missing"].error
    assert fault_server.attempts["e500x2"] == 3 and fault_server.attempts["e429"] == 2
    assert acct["retries"] >= 2 + 1 + 1 + 1 + 3  # e500x2, e429, timeout, truncbody, always500
    assert by_id["r-seven"].data["a1"]["score"] == 7.0 and by_id["r-seven"].readout == "greedy"

    # Re-run: everything that produced an answer is cached; only failed calls are retried.
    again = Teacher(cfg, Workspace(tmp_path / "ws"), stage="label")
    before = dict(fault_server.attempts)
    results2 = again.run(lambda i, f, t: again.score(i, f, t, ANCHORS), items)
    assert {r.record_id.removeprefix("r-"): r.status for r in results2} == EXPECTED
    new_calls = {k: fault_server.attempts[k] - before.get(k, 0) for k in fault_server.attempts}
    assert {k for k, v in new_calls.items() if v} == {"always500", "e400"}


def test_teacher_check_warns_about_a_teacher_that_scores_at_random(tmp_path: Path, demo_ws):
    rng = random.Random(7)

    def random_scores(fault, n, repair, body):
        ids = list(body["response_format"]["json_schema"]["schema"]["properties"]) if "response_format" in body \
            else ["overall", "coherence", "usefulness"]
        answer = {i: {"rationale": "r", "score": rng.randint(0, 10)} for i in ids}
        return 200, {}, chat_payload(orjson.dumps(answer).decode()), 0.0

    srv = FaultServer(random_scores)
    try:
        cfg = load_config(demo_ws.parent / "mira.yaml")
        cfg.teacher = cfg.teacher.model_copy(update={"backend": "openai", "base_url": srv.base_url, "model": "dice",
                                                     "logprobs": False})
        ws = Workspace(tmp_path / "ws")
        shutil.copytree(demo_ws / "records", ws.root / "records")
        summary = run_check(cfg, ws, per_format=20, seed=0)
    finally:
        srv.stop()
    assert set(summary["per_format"]) == {"text", "code", "qa", "qa_think", "agent"}
    accs = [row["accuracy"] for row in summary["per_format"].values()]
    assert all(row["pairs"] == 20 for row in summary["per_format"].values())
    assert sum(accs) / len(accs) < 0.7
    assert len(summary["warnings"]) >= 4 and all("< 80%" in w for w in summary["warnings"])
    assert (ws.root / "teacher" / "check.json").exists()


def test_a_criterion_rejected_only_by_the_check_comes_back_as_a_draft(tmp_path: Path):
    """An anchor answer that is well-formed but fails the caller's check twice is dead, and carries the draft (the
    discover stage keeps such drafts when no criterion of a part passes); a malformed one carries none."""
    anchor = {"name": "Covers distcc", "definition": "the page covers distcc", "score_0": "no", "score_5": "some",
              "score_10": "all of distcc"}

    def answers(fault: str, n: int, repair: bool, body: dict):
        return 200, {}, chat_payload(orjson.dumps(anchor).decode() if fault == "specific" else "not json"), 0.0

    srv = FaultServer(answers)
    try:
        cfg = TeacherConfig(backend="openai", base_url=srv.base_url, model="fake", timeout_s=2, max_retries=0,
                            concurrency=2, logprobs=False)
        teacher = Teacher(cfg, Workspace(tmp_path / "ws"), stage="discover")
        items = [(f"g/cluster-{f}", "text", [{"name": "topic", "score": 5, "reason": f"FAULT:{f} end"}], None)
                 for f in ("specific", "broken")]
        check = lambda a: ["it names 'distcc'"] if "distcc" in a["definition"] else []
        specific, broken = teacher.run(lambda *it: teacher.write_anchor(*it, check=check), items)
    finally:
        srv.stop()
    assert specific.status == "dead" and "distcc" in specific.error
    assert specific.extra["draft"]["name"] == "Covers distcc" and "response" not in specific.extra
    assert broken.status == "dead" and "draft" not in broken.extra
    assert srv.attempts == {"specific": 2, "broken": 2}  # one answer + one repair each


def test_discovery_mends_a_repeated_middle_level_and_drops_specific_or_flat_criteria(tmp_path: Path):
    """What discover keeps of criteria that fail its check twice (one answer + one repair): a general criterion whose
    5 repeats its 10 keeps its two ends and gets the neutral middle; one naming a judged record's subject, or whose
    0 and 10 say the same, or whose repeated middle is not its only fault (the masked rewrite's "…" copied in), yields
    no anchor (its cluster is listed as unusable)."""
    import numpy as np

    from mira_select.specificity import MIDDLE_LEVEL, GroupVocabulary
    from mira_select.stages.discover import DiscoverStage

    answers = {
        "middle": ("Step clarity", "Every step of the record is explained.",
                   "No step is explained.", "Every step is explained.", "Every step is explained."),
        "flat": ("Step order", "The steps come in order.", "Steps are in order.", "Steps are in order.",
                 "Steps are in order."),
        "topic": ("Covers distcc", "The page explains distcc in depth.", "It never explains distcc.",
                  "It explains distcc in part.", "It explains all of distcc."),
        "copied": ("Step depth", "The record explains the … of each step.", "No step is explained.",
                   "Every step is explained.", "Every step is explained."),
    }
    fields = ("name", "definition", "score_0", "score_5", "score_10")
    srv = FaultServer(lambda fault, n, repair, body: (
        200, {}, chat_payload(orjson.dumps(dict(zip(fields, answers[fault]))).decode()), 0.0))
    page = "distcc distributes builds: run distcc on each host, then point make at distcc."
    vocab = GroupVocabulary.from_texts([page] + [f"Manual page {i}: options and examples." for i in range(20)],
                                       {"r0": ["Coverage It explains distcc well"]}, ["docs"] * 21,
                                       {"r0": ("docs", page)})
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "mira.yaml").write_text(
        f"workspace: ws\nsources: [{{name: docs, paths: [empty.jsonl]}}]\n"
        f"teacher: {{backend: openai, base_url: '{srv.base_url}', model: fake, logprobs: false, max_retries: 0}}\n")
    points = [{"record_id": "r0", "name": f, "score": 5, "reason": f"FAULT:{f} end"} for f in answers]
    clusters = [("combined", np.array([i]), np.array([i])) for i in range(len(points))]
    try:
        stage = DiscoverStage(load_config(tmp_path / "mira.yaml"))
        stage._dropped = []
        written = stage._write("docs", "text", points, clusters, vocab)
    finally:
        srv.stop()
    by_name = {w["name"]: w for w in written}
    kept = by_name["Step clarity"]
    assert kept["levels"] == {"0": "No step is explained.", "5": MIDDLE_LEVEL, "10": "Every step is explained."}
    assert kept["levels_mended"] and "_problem" not in kept
    assert "distcc" in by_name["Covers distcc"]["_problem"] and "say the same" in by_name["Step order"]["_problem"]
    assert "…" in by_name["Step depth"]["_problem"] and "levels_mended" not in by_name["Step depth"]
    assert len(stage._dropped) == 3 and srv.attempts == {"middle": 2, "flat": 2, "topic": 2, "copied": 2}

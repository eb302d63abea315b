"""The teacher against REAL models: llama.cpp's OpenAI-compatible server and the in-process backend.

SmolLM2-135M is a useless judge but a real model: these tests check plumbing (grammar-constrained JSON for every
anchor, logprob read-out, caching, key hygiene), not judgement quality.
"""

import logging
from pathlib import Path

import pytest

from mira_select.config import TeacherConfig
from mira_select.teacher.client import Teacher
from mira_select.teacher.types import Anchor
from mira_select.workspace import Workspace

from .teacher_helpers import SMOL_THREADS, LlamaServer, corpus_records, smol_path

ANCHORS = [Anchor("a1", "clarity", "is it easy to follow"), Anchor("a2", "correctness", "is it right"),
           Anchor("a3", "usefulness", "would a model learn from it")]
SECRET = "sk-test-DO-NOT-LEAK-7f3a9c1e"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = LlamaServer(smol_path(), tmp_path_factory.mktemp("llama") / "server.log")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def records():
    return corpus_records({"code_python_pypi": 2, "qa_gpteacher_codegen": 1, "think_gsm8k_train": 1,
                           "text_tldr_pages": 1})


def _score_all(teacher, records):
    return teacher.run(lambda i, f, t: teacher.score(i, f, t, ANCHORS), records)


def test_openai_backend_on_real_server_then_all_cache_hits(tmp_path: Path, server, records, monkeypatch, caplog,
                                                         capfd):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("MIRA_TEST_KEY", SECRET)
    cfg = TeacherConfig(backend="openai", base_url=server.base_url, model="smollm2", api_key_env="MIRA_TEST_KEY",
                        max_record_tokens=256, concurrency=2, response_format="json_schema")
    ws = Workspace(tmp_path / "ws")
    teacher = Teacher(cfg, ws, stage="label")
    results = _score_all(teacher, records)
    assert len(results) == 5
    for r in results:
        assert r.status in ("ok", "repaired"), r.error
        assert set(r.data) == {"a1", "a2", "a3"}
        for item in r.data.values():
            assert 0 <= item["score"] <= 10 and isinstance(item["greedy"], int)
    assert {r.readout for r in results} == {"expected"}  # the server returned top log-probs
    first = teacher.save_accounting()
    assert first["calls"] >= 5 and first["prompt_tokens"] > 0 and first["cache_hits"] == 0

    again = Teacher(cfg, ws, stage="label")
    results2 = _score_all(again, records)
    acct = again.save_accounting()
    assert acct["calls"] == 0 and acct["cache_hits"] == first["calls"]
    assert [r.data for r in results2] == [r.data for r in results]
    assert all(r.cached for r in results2)

    out, err = capfd.readouterr()
    for blob in (out, err, caplog.text):
        assert SECRET not in blob
    for f in ws.root.rglob("*"):
        if f.is_file():
            assert SECRET.encode() not in f.read_bytes(), f


def test_local_backend_scores_the_same_records_in_process(tmp_path: Path, records):
    cfg = TeacherConfig(backend="local", model=str(smol_path()), max_record_tokens=256, n_ctx=4096,
                        threads=SMOL_THREADS)
    teacher = Teacher(cfg, Workspace(tmp_path / "ws"), stage="label")
    results = _score_all(teacher, records)
    valid = [r for r in results if r.status in ("ok", "repaired")]
    # A 135M model under a grammar still occasionally stalls mid-JSON; those must be dead-lettered with a reason.
    assert len(valid) >= 3, [r.error for r in results]
    for r in valid:
        assert set(r.data) == {"a1", "a2", "a3"} and r.readout == "expected"
    for r in results:
        assert r.status != "dead" or r.error
    acct = teacher.save_accounting()
    assert acct["requests"] == 5 and acct["model"].startswith("local:")
    perf = teacher.backend.perf()
    assert perf["n_p_eval"] > 0


def test_replay_backend_answers_only_from_cache(tmp_path: Path, server, records):
    ws = Workspace(tmp_path / "ws")
    live = TeacherConfig(backend="openai", base_url=server.base_url, model="smollm2", max_record_tokens=256)
    t = Teacher(live, ws, stage="label")
    _score_all(t, records[:2])
    replay = Teacher(TeacherConfig(backend="replay", model="smollm2", replay_as="openai", max_record_tokens=256),
                     ws, stage="label")
    results = _score_all(replay, records[:3])
    assert [r.status for r in results[:2]] != ["dead", "dead"]
    assert results[2].status == "dead" and "no cached answer" in results[2].error
    assert replay.save_accounting()["calls"] == 0


def test_scores_only_logit_read_out_matches_grammar_generation(tmp_path: Path, records):
    """With sequential slots the local backend writes a scores-only answer itself and reads each digit from the
    logits. On real records with a real model it must give the answer grammar-constrained greedy generation gives
    (same JSON), with an expected score per anchor, through the same client path (cache, validation)."""
    from mira_select.teacher.local import LocalBackend

    anchors = [Anchor("a1", "clarity", "is it easy to follow", levels=("unreadable", "readable", "crystal clear")),
               Anchor("a2", "correctness", "is it right")]
    answers = {}
    for mode in ("logits", "generate"):
        cfg = TeacherConfig(backend="local", model=str(smol_path()), max_record_tokens=256, threads=SMOL_THREADS,
                            local_scores=mode, score_slots="sequential")
        teacher = Teacher(cfg, Workspace(tmp_path / mode), stage="label", backend=LocalBackend(cfg))
        res = teacher.run(lambda i, f, t: teacher.label(i, f, t, anchors), records[:2])
        assert all(r.status == "ok" and r.readout == "expected" for r in res), [r.error for r in res]
        answers[mode] = [{a: (r.data[a]["greedy"], r.data[a]["score"]) for a in ("a1", "a2")} for r in res]
        for r in res:
            for a in ("a1", "a2"):
                assert 0 <= r.data[a]["score"] <= 10 and isinstance(r.data[a]["greedy"], int)
        teacher.close()
    for lo, gen in zip(answers["logits"], answers["generate"]):
        for a in ("a1", "a2"):
            assert lo[a][0] == gen[a][0]  # same greedy digit
            # the same slot's distribution; generation may tokenize the JSON around it a little differently
            # (measured: 0.26 apart at most with this 135M model, 0.03 with the 1.5B teacher)
            assert abs(lo[a][1] - gen[a][1]) < 1.0


def test_independent_slots_read_each_score_from_the_prompt_alone(tmp_path: Path, records):
    """Independent slots (the local default): a criterion's score is read right after the prompt and its own key,
    whatever the other criteria scored. So it equals a sequential read of the same prompt that asks for that slot
    first, and the first slot equals the sequential answer's first slot. The expected score splits P("1") into 1
    and 10 by the next token's probability for every slot (the read-out records it)."""
    import dataclasses

    from mira_select.teacher.local import LocalBackend

    anchors = [Anchor("a1", "clarity", "is it easy to follow"), Anchor("a2", "correctness", "is it right"),
               Anchor("a3", "usefulness", "would a model learn from it")]
    cfg = TeacherConfig(backend="local", model=str(smol_path()), max_record_tokens=256, threads=SMOL_THREADS)
    assert cfg.score_slots == "independent"
    backend = LocalBackend(cfg)
    teacher = Teacher(cfg, Workspace(tmp_path / "ws"), stage="label", backend=backend)
    rid, fmt, text = records[0]
    req = teacher.prompts.label(fmt, rid, text, anchors, logprobs=True, independent_slots=backend.reads_slots)
    assert req.independent_slots and req.cache_fields()["slots"] == "independent"
    both = backend._complete_sync(req)
    assert len(both.digit_probs) == 2 * len(anchors)  # a digit distribution and P("0" after "1") per slot
    seq = backend._complete_sync(dataclasses.replace(req, independent_slots=False))
    assert seq.digit_probs[0][1] == pytest.approx(both.digit_probs[0][1], abs=1e-6)
    for k, aid in enumerate(("a2", "a3"), start=1):
        alone = backend._complete_sync(dataclasses.replace(req, independent_slots=False, score_ids=(aid,)))
        assert alone.digit_probs[0][1] == pytest.approx(both.digit_probs[2 * k][1], abs=1e-6), aid
    # through the client: cached under its own key, every slot with an expected score
    res = teacher.run(lambda i, f, t: teacher.label(i, f, t, anchors), records[:1])
    assert res[0].status == "ok" and res[0].readout == "expected"
    assert teacher.save_accounting()["calls"] == 1
    teacher.close()


def test_reviewer_address_question_extends_the_label_prompt_and_is_cached(tmp_path: Path, records):
    """The injection check (label.injection_check) is one more user turn after the record's label prompt: the label
    messages are its prefix (a local model answers it from the KV cache the label left), its answer is read like one
    0-10 slot, and it is cached under its own key, so a re-run costs no call."""
    cfg = TeacherConfig(backend="local", model=str(smol_path()), max_record_tokens=256, threads=SMOL_THREADS)
    rid, fmt, text = records[0]

    def run_both(ws: Path):
        teacher = Teacher(cfg, Workspace(ws), stage="label")

        async def both(i, f, t):
            return await teacher.label(i, f, t, ANCHORS), await teacher.addressed(i, f, t, ANCHORS)

        out = teacher.run(both, [(rid, fmt, text)])[0]
        return out, teacher.save_accounting(), teacher

    (label, check), acct, teacher = run_both(tmp_path / "ws")
    label_req = teacher.prompts.label(fmt, rid, text, ANCHORS, logprobs=True, independent_slots=True)
    check_req = teacher.prompts.addressed(label_req)
    assert check_req.messages[:-1] == label_req.messages and check_req.score_ids == ("addressed",)
    assert "addressed to its reviewer" in check_req.messages[-1]["content"]
    assert label.status == "ok" and check.status == "ok" and check.readout == "expected"
    assert 0.0 <= check.data["addressed"]["score"] <= 10.0
    assert acct["calls"] == 2
    teacher.close()
    (_, check2), acct2, teacher2 = run_both(tmp_path / "ws")
    assert acct2["calls"] == 0 and check2.data["addressed"]["score"] == check.data["addressed"]["score"]
    teacher2.close()

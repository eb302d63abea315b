"""The student's structural signals (students/structure.py): each prefilter-derived signal moves the right way on
a real corpus record and its planted defect, so a learned weight on it can tell them apart."""

from __future__ import annotations

import random

import numpy as np

from mira_select.students.structure import FEATURES, structural_features
from mira_select.teacher.twins import repeat_failing_call, shuffle_lines

from .test_prefilter import CLEAN_PY, _corpus


def _signal(name: str, texts: list[str]) -> np.ndarray:
    return structural_features(texts)[:, FEATURES.index(name)]


def test_parse_error_share_rises_when_code_is_shuffled():
    rng = random.Random(0)
    clean = [t for t in _corpus("code_python_pypi", 40) if t.count("\n") > 20][:10] + [CLEAN_PY * 4]
    broken = [shuffle_lines(t, rng) or t for t in clean]
    before, after = _signal("parse_error_share", clean), _signal("parse_error_share", broken)
    assert before[-1] == 0.0  # a clean file parses with its grammar
    assert (after > before).sum() >= 0.8 * len(clean)


def test_parse_grammar_guess_follows_the_language_not_the_line_order():
    """The grammar a file is parsed with is voted by its lines: right for C and shell files (a first-match guess on
    the head found 16 of the first 40 oh-my-zsh files to be shell; 32 of 40 curl files kept their guess when
    shuffled), and the same for a file and its shuffled copy, so the
    parse-error signal compares like with like."""
    from mira_select.prefilter.rules import guess_language

    rng = random.Random(1)
    for source, lang, need in (("code_c_curl", "c", 38), ("code_shell_ohmyzsh", "bash", 34),
                               ("code_python_pypi", "python", 32)):
        texts = _corpus(source, 40)
        assert sum(guess_language(t) == lang for t in texts) >= need, source
        shuffled = [(t, s) for t in texts if (s := shuffle_lines(t, rng))]
        assert sum(guess_language(t) == guess_language(s) for t, s in shuffled) >= 0.95 * len(shuffled), source


def test_action_repeats_and_unfinished_trajectories_are_seen():
    rng = random.Random(0)
    real = _corpus("agent_fireact_react", 20)
    looped = [repeat_failing_call(t, rng) for t in real]
    pairs = [(a, b) for a, b in zip(real, looped) if b is not None]
    assert len(pairs) >= 10
    before = _signal("action_repeats_log", [a for a, _ in pairs])
    after = _signal("action_repeats_log", [b for _, b in pairs])
    assert (after >= before).all() and (after > before).mean() >= 0.8
    unfinished = "<|user|>\nFind the file.\n\n<|assistant|>\nAction: search[file]\n\n<|user|>\nObservation: x\n"
    flags = _signal("no_final_answer", [unfinished, unfinished + "\n<|assistant|>\nAction: finish[x]\n"])
    assert flags.tolist() == [1.0, 0.0]


def test_answer_share_sees_an_emptied_answer():
    q = "### Instruction\nWrite a function that reverses a string in Python.\n\n### Response\n"
    share = _signal("answer_share", [q + "def rev(s):\n    return s[::-1]\n", q + "ok", "plain prose, no answer"])
    assert share[0] > share[1] > 0.0 and share[2] == 0.0


def test_answer_overlap_sees_an_answer_written_for_another_question():
    from mira_select.teacher.twins import mismatch_answer

    rng = random.Random(0)
    texts = _corpus("qa_gpteacher_codegen", 60)
    pairs = [(t, m) for i, t in enumerate(texts) if (m := mismatch_answer(t, texts[(i + 7) % len(texts)], rng))]
    own, swapped = _signal("answer_overlap", [t for t, _ in pairs]), _signal("answer_overlap", [m for _, m in pairs])
    assert len(pairs) >= 50 and (own > swapped).mean() >= 0.85
    assert _signal("answer_overlap", ["just prose, no question and answer"])[0] == 0.5


def test_embedding_tier_with_structure_ranks_a_shuffled_file_below_it_and_reloads(tmp_path):
    """The embedding of a shuffled file sits beside the file's own; with the structural block the student learns the
    teacher's low score for such twins and keeps that after save/load (the mean and spread travel with it)."""
    from mira_select.students.registry import load_student, make_student

    rng = random.Random(1)
    clean = [t for t in _corpus("code_python_pypi", 200) if t.count("\n") > 20][:40]
    broken = [shuffle_lines(t, rng) or t for t in clean]
    texts, y = clean + broken, np.r_[np.full(len(clean), 8.0), np.full(len(broken), 2.0)][:, None]
    fit_on = list(range(0, 30)) + list(range(40, 70))
    held = list(range(30, 40))
    scores = {}
    for structure in (False, True):
        student = make_student("embed_heads", ["a01"], structure=structure)
        student.fit([texts[i] for i in fit_on], y[fit_on], ["s"] * len(fit_on))
        student.save(tmp_path / str(structure))
        again = load_student(tmp_path / str(structure))
        pred = again.predict([texts[i] for i in held] + [texts[i + 40] for i in held])[:, 0]
        assert np.allclose(pred, student.predict([texts[i] for i in held] + [texts[i + 40] for i in held])[:, 0])
        scores[structure] = float((pred[:10] > pred[10:]).mean())
    assert scores[True] >= 0.9 and scores[True] > scores[False]


def test_answer_signals_see_an_answer_that_contradicts_its_trace():
    """Real reasoning records: the answer's number is one the trace ends on; the same record with its final answer
    moved (teacher/twins.wrong_final_answer) is not. Records without a trace get the neutral 0.5."""
    from mira_select.teacher.twins import wrong_final_answer

    rng = random.Random(0)
    clean = _corpus("think_gsm8k_train", 30)
    broken = [t for t in (wrong_final_answer(c, rng) for c in clean) if t]
    before, after = _signal("answer_matches_trace", clean), _signal("answer_matches_trace", broken)
    assert before.mean() >= 0.95 and after.mean() <= 0.1  # a moved answer can land on a trace number
    assert set(_signal("answer_matches_trace", _corpus("code_python_pypi", 10)).tolist()) == {0.5}
    code = "Question: add\n<think>\nsum them\n</think>\n\nAnswer: ```python\ndef add(a, b):\n    return a + b\n```"
    cut = code.replace("    return a + b\n", "    return (a +\n")
    errors = _signal("answer_code_error_share", [code, cut])
    assert errors[0] == 0.0 and errors[1] > 0.0


def test_missing_return_sees_a_function_that_cannot_return_what_it_promises():
    from mira_select.prefilter.rules import code_parser
    from mira_select.students.structure import missing_return_share as share_of_tree

    def missing_return_share(code: str) -> float:
        return share_of_tree(code_parser("python").parse(code.encode()))

    good = "class S:\n    def f(self, x: int) -> int:\n        if x:\n            return 1\n        raise ValueError\n"
    dropped = "class S:\n    def f(self, x: int) -> int:\n        y = x + 1\n        def g() -> int:\n            return y\n"
    assert missing_return_share(good) == 0.0
    assert missing_return_share(dropped) == 0.5  # f never returns (g's return is g's); g does
    assert missing_return_share("def f(x) -> None:\n    print(x)\n") == 0.0
    record = "Q\n<think>\nuse a loop\n</think>\n\nAnswer: ```python\n" + dropped + "```"
    assert _signal("answer_missing_return", [record])[0] == 0.5


def test_structure_signals_read_the_end_of_a_long_trajectory():
    """A long real trajectory is judged finished or not by its end (beyond the 8k-character head the statistics
    read), and its repeated-call twin by the loop wherever it sits."""
    from mira_select.prefilter.rules import no_final_answer

    long = [t for t in _corpus("agent_minisweagent_gemini3pro", 40) if len(t) > 20_000]
    got = _signal("no_final_answer", long)
    want = np.asarray([float(no_final_answer(t, None) is not None) for t in long])
    head_only = np.asarray([float(no_final_answer(t[:8_000], None) is not None) for t in long])
    assert (got == want).all()
    assert want.mean() < 0.2 and head_only.mean() > 0.3  # most finish; their first 8k characters do not show it


def test_signals_are_computed_once_per_text_inside_remembered(monkeypatch):
    from mira_select.students import structure

    texts = _corpus("code_python_pypi", 6)
    plain = structural_features(texts)
    calls = []
    real = structure._one
    monkeypatch.setattr(structure, "_one", lambda *a: calls.append(1) or real(*a))
    with structure.remembered():
        first, again = structural_features(texts), structural_features(texts[::-1])
    assert len(calls) == len(set(texts)) and (first == plain).all() and (again == plain[::-1]).all()
    structural_features(texts)  # outside: nothing is kept
    assert len(calls) == len(set(texts)) + len(texts)


def test_tree_tier_and_blend_rank_a_shuffled_file_below_it_and_reload_exactly(tmp_path):
    """`embed_trees` (LightGBM on embedding + length + structural signals) learns the teacher's low score for
    shuffled files; its boosters travel as LightGBM text in weights.npz (no pickle) and reload to the same scores.
    A `blend` is the mean of its members, saved and reloaded through the registry like any tier."""
    from mira_select.students.registry import load_student, make_student, saved_student_needs_gpu

    rng = random.Random(1)
    clean = [t for t in _corpus("code_python_pypi", 200) if t.count("\n") > 20][:40]
    broken = [shuffle_lines(t, rng) or t for t in clean]
    texts, y = clean + broken, np.r_[np.full(len(clean), 8.0), np.full(len(broken), 2.0)][:, None]
    fit_on = list(range(0, 30)) + list(range(40, 70))
    held = [texts[i] for i in range(30, 40)] + [texts[i + 40] for i in range(30, 40)]
    fit_texts, fit_y = [texts[i] for i in fit_on], y[fit_on]
    members = [["hashed_linear", {"structure": True}], ["embed_trees", {}]]
    preds = {}
    for kind, params in (("embed_trees", {}), ("hashed_linear", {"structure": True}), ("blend", {"members": members})):
        student = make_student(kind, ["a01"], **params).fit(fit_texts, fit_y, ["s"] * len(fit_on))
        student.save(tmp_path / kind)
        assert not saved_student_needs_gpu(tmp_path / kind)
        preds[kind] = load_student(tmp_path / kind).predict(held)[:, 0]
        np.testing.assert_allclose(preds[kind], student.predict(held)[:, 0], atol=1e-5)
    assert (preds["embed_trees"][:10] > preds["embed_trees"][10:]).mean() >= 0.8  # 60 labels; untrained: ~0.5
    np.testing.assert_allclose(preds["blend"], (preds["embed_trees"] + preds["hashed_linear"]) / 2, atol=1e-4)
    with np.load(tmp_path / "embed_trees" / "weights.npz", allow_pickle=False) as w:
        assert w["booster_0"].dtype == np.uint8 and b"tree" in w["booster_0"].tobytes()

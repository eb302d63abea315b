"""Contrast twins (teacher/twins.py) on real demo-corpus records plus small synthetic layouts."""

from __future__ import annotations

import io
import json
import random
import re
from collections import Counter
from pathlib import Path

import pytest
import zstandard

from mira_select.teacher.twins import (
    CORRUPTIONS,
    SPAM_SNIPPETS,
    Twin,
    make_twins,
    mismatch_answer,
    repeat_failing_call,
    shuffle_lines,
    splice_spam,
    wrong_final_answer,
)

CORPUS = Path(__file__).resolve().parents[1] / "data" / "demo" / "corpus"
PREFIX_FORMAT = {"agent": "agent", "code": "code", "qa": "qa", "text": "text", "think": "qa_think"}
PER_FILE = 25
TURN = re.compile(r"(?m)^<\|([a-z_]+)\|>\n")
ERROR_MARK = re.compile(r"(?i)error|invalid action|nothing happened|timed out|could not find|returncode>1")


def _read_head(path: Path, n: int) -> list[dict]:
    with path.open("rb") as fh, zstandard.ZstdDecompressor().stream_reader(fh) as raw:
        lines = io.TextIOWrapper(raw, encoding="utf-8")
        return [json.loads(line) for _, line in zip(range(n), lines)]


@pytest.fixture(scope="module")
def demo() -> dict[str, list[tuple[str, str, str]]]:
    """source file stem -> (id, format, text) for the first records of each demo file.

    The format comes from the file-name prefix; label fields are never read."""
    files = sorted(CORPUS.glob("*.jsonl.zst"))
    if not files:
        pytest.skip("demo corpus not present")
    out = {}
    for f in files:
        fmt = PREFIX_FORMAT[f.name.split("_")[0]]
        out[f.name.removesuffix(".jsonl.zst")] = [(r["id"], fmt, r["text"]) for r in _read_head(f, PER_FILE)]
    return out


@pytest.fixture(scope="module")
def records(demo) -> list[tuple[str, str, str]]:
    return [r for recs in demo.values() for r in recs]


def _texts(demo, prefix: str) -> list[tuple[str, str]]:
    return [(src, t) for src, recs in demo.items() if src.startswith(prefix) for _, _, t in recs]


def test_corruption_table():
    assert CORRUPTIONS == {
        "text": ["shuffle_lines", "splice_spam"], "code": ["shuffle_lines", "splice_spam"],
        "qa": ["mismatch_answer", "splice_spam"], "qa_think": ["wrong_final_answer"],
        "agent": ["repeat_failing_call"],
    }


@pytest.mark.parametrize("fmt", sorted(CORRUPTIONS))
def test_make_twins_per_format(records, fmt):
    twins = [t for t in make_twins(records, per_format=8, seed=3) if t.format == fmt]
    assert len(twins) == 8
    by_id = {rid: text for rid, f, text in records if f == fmt}
    assert len({t.clean_id for t in twins}) == 8  # a record is used once
    for t in twins:
        assert isinstance(t, Twin) and t.kind in CORRUPTIONS[fmt]
        assert t.clean == by_id[t.clean_id]
        assert t.corrupted != t.clean and t.corrupted.strip()
    assert {t.kind for t in twins} == set(CORRUPTIONS[fmt])  # kinds are cycled


def test_make_twins_deterministic(records):
    a = make_twins(records, per_format=5, seed=11)
    assert a == make_twins(records, per_format=5, seed=11)
    shuffled = records[:]
    random.Random(0).shuffle(shuffled)
    assert make_twins(shuffled, per_format=5, seed=11) == a  # input order does not matter
    assert make_twins(records, per_format=5, seed=12) != a


def test_make_twins_format_isolation(records):
    """Adding or removing another format's records leaves a format's twins unchanged."""
    only_qa = [r for r in records if r[1] == "qa"]
    full = [t for t in make_twins(records, per_format=4, seed=1) if t.format == "qa"]
    assert make_twins(only_qa, per_format=4, seed=1) == full


def test_make_twins_skips_unusable_records():
    recs = [("a", "text", "short"), ("b", "text", "tiny"), ("c", "mystery", "x" * 500), ("d", "qa", "no layout")]
    assert make_twins(recs, per_format=3, seed=0) == []
    long_doc = "\n".join(f"Line {i} of a long document about a topic." for i in range(12))
    twins = make_twins(recs + [("e", "text", long_doc)], per_format=3, seed=0)
    assert [t.clean_id for t in twins] == ["e"]
    assert make_twins(recs + [("e", "text", long_doc)], per_format=0, seed=0) == []


def test_shuffle_lines_on_real_records(demo):
    done = 0
    for _, text in _texts(demo, "text_") + _texts(demo, "code_"):
        out = shuffle_lines(text, random.Random(5))
        if sum(1 for ln in text.split("\n") if ln.strip()) < 8:
            assert out is None
            continue
        if out is None:  # e.g. a file of identical lines cannot be visibly shuffled
            continue
        done += 1
        assert out != text
        assert Counter(out.split("\n")) == Counter(text.split("\n"))
        assert shuffle_lines(text, random.Random(5)) == out
    assert done >= 50


def test_splice_spam_on_real_records(demo):
    done = 0
    for _, text in _texts(demo, "text_") + _texts(demo, "code_") + _texts(demo, "qa_"):
        out = splice_spam(text, random.Random(9))
        if out is None:
            assert len(text.strip()) < 80
            continue
        done += 1
        assert 2 <= sum(s in out for s in SPAM_SNIPPETS) <= 4
        kept = [ln for ln in out.split("\n") if ln.strip() and ln not in SPAM_SNIPPETS]
        assert kept == [ln for ln in text.split("\n") if ln.strip()]  # the original, in order
    assert done >= 100


def test_mismatch_answer_instruction_layout(demo):
    qa = [t for _, t in _texts(demo, "qa_")]
    assert len(qa) >= 20
    for text, other in zip(qa, qa[1:] + qa[:1]):
        out = mismatch_answer(text, other, random.Random(0))
        assert out is not None
        prompt = text[: text.index("### Response\n") + len("### Response\n")]
        assert out.startswith(prompt)  # this record's instruction, unchanged
        assert out[len(prompt):] == other.split("### Response\n", 1)[1]  # the other record's response


def test_mismatch_answer_chat_layout():
    text = "<|system|>\nBe brief.\n\n<|user|>\nCapital of France?\n\n<|assistant|>\nParis."
    other = "<|user|>\nSort [3, 1, 2].\n\n<|assistant|>\n[1, 2, 3]\n\n<|user|>\nThanks\n\n<|assistant|>\nWelcome!"
    out = mismatch_answer(text, other, random.Random(0))
    assert out == "<|system|>\nBe brief.\n\n<|user|>\nCapital of France?\n\n<|assistant|>\n[1, 2, 3]"
    assert mismatch_answer(text, text, random.Random(0)) is None  # same answer: no contrast
    assert mismatch_answer("just prose", other, random.Random(0)) is None
    assert mismatch_answer(text, "no layout here", random.Random(0)) is None


def _split_think(text: str) -> tuple[str, str]:
    head, sep, tail = text.rpartition("</think>")
    return head + sep, tail


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wrong_final_answer_on_real_records(demo, seed):
    done = 0
    for src, text in _texts(demo, "think_"):
        out = wrong_final_answer(text, random.Random(seed))
        if out is None:
            assert not re.search(r"\d|```", _split_think(text)[1])  # e.g. "Answer: None"
            continue
        done += 1
        head, tail = _split_think(text)
        new_head, new_tail = _split_think(out)
        assert new_head == head  # question and reasoning trace untouched
        assert new_tail != tail
        if "```" in tail:  # code answer: still a code answer, but different code
            assert new_tail.startswith("\n\nAnswer: ```python\n") and new_tail.rstrip().endswith("```")
        else:
            old_num, new_num = re.findall(r"-?[\d,.]+", tail)[-1], re.findall(r"-?[\d,.]+", new_tail)[-1]
            assert old_num != new_num and new_tail.replace(new_num, "") == tail.replace(old_num, "")
    assert done >= 80


def test_wrong_final_answer_edge_cases():
    base = "Question: How much?\n\n<think>\nIt costs 70,000 in total.\n</think>\n\nAnswer: "
    out = wrong_final_answer(base + "70,000", random.Random(3))
    assert out is not None and out.startswith(base)
    assert re.fullmatch(r"\d{1,3}(,\d{3})*", out[len(base):]) and out[len(base):] != "70,000"
    out = wrong_final_answer(base + "2.5", random.Random(3))
    assert out is not None and re.fullmatch(r"\d+\.\d", out[len(base):]) and out[len(base):] != "2.5"
    assert wrong_final_answer("Question: q\n\nAnswer: 4", random.Random(0)) is None  # no think block
    assert wrong_final_answer(base + "unknown", random.Random(0)) is None
    code = "def add(a, b):\n    s = a + b\n    if s > 10:\n        return s\n    return 0\n"
    outs = {wrong_final_answer(f"{base}```python\n{code}```", random.Random(s)) for s in range(30)}
    assert None not in outs and len(outs) >= 3  # drop a return / swap an operator / truncate
    assert all(o.startswith(base + "```python\n") and o.endswith("```") for o in outs)  # type: ignore[union-attr]


def _turns(text: str) -> list[tuple[str, str]]:
    parts = TURN.split(text)
    return [(r, b.rstrip("\n")) for r, b in zip(parts[1::2], parts[2::2])]


def _assert_loops(clean: str, out: str) -> None:
    """Some error line was added and now appears >= 3 times (later turns may be cut, so no global diff)."""
    assert out != clean
    before = Counter(clean.split("\n"))
    errors = Counter(ln for ln in out.split("\n") if ERROR_MARK.search(ln))
    assert any(c >= 3 and c > before[ln] for ln, c in errors.items())


@pytest.mark.parametrize("seed", [0, 1])
def test_repeat_failing_call_chat_trajectories(demo, seed):
    done = 0
    for src, text in _texts(demo, "agent_"):
        if text.lstrip().startswith("{"):
            continue
        out = repeat_failing_call(text, random.Random(seed))
        assert out is not None
        _assert_loops(text, out)
        turns = _turns(out)
        action, count = Counter(b for r, b in turns if r == "assistant").most_common(1)[0]
        assert count >= 3
        if action in {b for r, b in _turns(text) if r == "assistant"}:  # a real action was repeated ...
            assert turns[-1][0] != "assistant"  # ... and the trajectory ends on the error, not an answer
            if "```bash" in action:
                assert turns[-1][1].startswith("<returncode>1</returncode>\n<output>")
        done += 1
    assert done >= 80


def test_repeat_failing_call_json_dumps(demo):
    done = 0
    for src, text in _texts(demo, "agent_"):
        if not text.lstrip().startswith("{"):
            continue
        out = repeat_failing_call(text, random.Random(4))
        assert out is not None
        _assert_loops(text, out)
        try:
            json.loads(text)
        except ValueError:
            continue  # truncated dumps stay truncated
        data = json.loads(out)  # a valid dump stays valid JSON
        msgs = next((v for v in data.values() if isinstance(v, list) and v and isinstance(v[0], dict)), None)
        if msgs is not None and any(m.get("role") == "assistant" or m.get("from") == "gpt" for m in msgs):
            repeated = Counter(json.dumps(m, sort_keys=True) for m in msgs).most_common(1)[0][1]
            assert repeated >= 3
        done += 1
    assert done >= 10


def test_repeat_failing_call_styles():
    rng = random.Random(0)
    shell = ("<|system|>\nUse bash.\n\n<|user|>\nFix it.\n\n<|assistant|>\nTHOUGHT: look\n\n```bash\nls\n```\n\n"
             "<|user|>\n<returncode>0</returncode>\n<output>\na.py\n</output>\n\n<|assistant|>\nDone.")
    out = repeat_failing_call(shell, rng)
    assert out is not None and out.count("```bash\nls\n```") >= 3 and out.count("<returncode>1</returncode>") >= 3
    assert "Done." not in out
    tau = ('<|user|>\nBook it.\n\n<|assistant|>\n<tool_call>\n{"name": "book", "arguments": {}}\n</tool_call>\n\n'
           '<|tool|>\n[book] {"ok": true}\n\n<|assistant|>\nBooked!')
    out = repeat_failing_call(tau, rng)
    assert out is not None and out.count('{"name": "book"') >= 3 and out.count('<|tool|>\n[book] {"error"') >= 3
    plain = "Question: who?\nThought: search it\nAction: search[Ada]\nObservation: Ada Lovelace\nAction: finish[Ada]"
    out = repeat_failing_call(plain, rng)
    assert out is not None and max(out.count("Action: search[Ada]"), out.count("Action: finish[Ada]")) >= 3
    assert out.count("Observation: ") >= 3
    chat = "<|user|>\nHi there.\n\n<|assistant|>\nHello!\n\n<|user|>\nTell me a joke.\n\n<|assistant|>\nNo."
    out = repeat_failing_call(chat, rng)  # no action at all: a repeated failing call is spliced in
    assert out is not None and out.count("<tool_call>") >= 3 and out.count("<|tool|>\n{\"error\"") >= 3
    dump = json.dumps({"prompt": "Plan the next step.\nThen act.", "answer": "click [12]", "notes": "none"}, indent=1)
    out = repeat_failing_call(dump, rng)
    assert out is not None and json.loads(out) != json.loads(dump) and out.count("Action: ") >= 3
    assert repeat_failing_call("ok", rng) is None

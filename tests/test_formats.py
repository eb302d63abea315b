import pytest

from mira_select.records import detect_format, render_text

CASES = [
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}, "qa"),
    ({"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "<think>hm</think> a"}]}, "qa_think"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a",
                                                        "reasoning_content": "because"}]}, "qa_think"),
    ({"messages": [{"role": "user", "content": "weather?"},
                   {"role": "assistant", "content": None, "tool_calls": [{"function": {"name": "w"}}]},
                   {"role": "tool", "content": "sunny"}, {"role": "assistant", "content": "sunny"}]}, "agent"),
    ({"messages": [{"role": "user", "content": "Who?"},
                   {"role": "assistant", "content": "Thought: search\nAction: search[x]"},
                   {"role": "user", "content": "Observation: y"},
                   {"role": "assistant", "content": "Action: finish[y]"}]}, "agent"),
    ({"messages": [{"role": "system", "content": "You have access to the following functions: {...}"},
                   {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}, "agent"),
    ({"prompt": "2+2?", "response": "4"}, "qa"),
    ({"question": "2+2?", "reasoning": "2 and 2 make 4", "answer": "4"}, "qa_think"),
    ({"instruction": "sum", "output": "<think>add</think>4"}, "qa_think"),
    ({"path": "src/app/main.py"}, "code"),
    ({"lang": "rust"}, "code"),
    ({"language": "en"}, "text"),
    ({"meta": {"path": "docs/index.md"}}, "text"),
    ({"trajectory": [{"url": "http://x", "action": "click"}]}, "agent"),
]


@pytest.mark.parametrize("row,expected", CASES)
def test_structure_decides_format(row, expected):
    assert detect_format(row, render_text(row) or "plain words") == expected


def test_text_only_records():
    assert detect_format({}, "Just some prose about databases.") == "text"
    assert detect_format({}, "#!/bin/sh\necho hi\n") == "code"
    assert detect_format({}, "Question: x\n<think>y</think>\nAnswer: z") == "qa_think"
    assert detect_format({}, "<|user|>\nhi\n<|assistant|>\n<tool_call>{}</tool_call>") == "agent"
    dumped = '{"conversations": [{"role": "user", "content": "q"}, {"role": "tool", "content": "r"}]}'
    assert detect_format({}, dumped) == "agent"


def test_label_fields_are_never_read():
    # A record claiming to be code by label but structured as a chat is a chat.
    row = {"format": "code_file", "group": "code",
           "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    assert detect_format(row, "q a") == "qa"
    assert detect_format({"format": "agent_trajectory", "group": "agent"}, "plain prose") == "text"


def test_render_text_from_structure():
    assert render_text({"messages": [{"role": "user", "content": "hi"}]}) == "<|user|>\nhi"
    assert "<think>\nr\n</think>" in render_text({"question": "q", "reasoning": "r", "answer": "a"})
    assert render_text({"foo": 1}) is None


def test_the_case_fold_gate_knows_every_letter_ignorecase_maps_to_ascii():
    """`records._Gated` skips the regex when no literal is in the lower-cased text; that is exact only if every
    non-ASCII character that IGNORECASE matches to an ASCII letter is mapped first. Scan all of Unicode for them."""
    import re

    from mira_select.records import _AGENT_CONTEXT, _FOLD_CHARS

    letter = re.compile("[a-z]", re.IGNORECASE)
    found = {chr(cp) for cp in range(0x80, 0x110000) if letter.fullmatch(chr(cp))}
    assert found == set(_FOLD_CHARS)
    assert _AGENT_CONTEXT.search("Please \u0130NTERACT with the shell, é")  # dotted capital I, non-ASCII text
    assert _AGENT_CONTEXT.search("you are an autonomou\u017f agent, ü")  # long s
    assert not _AGENT_CONTEXT.search("a manual page, ü, with nothing of the kind")

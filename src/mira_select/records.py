"""The normalized record, its Parquet schema, and format detection from a record's structure.

Format decides which prompt family judges a record, so it is detected from what a record *is* (a chat with tool
calls, a question with a reasoning trace, a file with a code extension), never from a label field. A source's
config can force a format when the structure is ambiguous.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

import orjson
import pyarrow as pa

RECORD_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("format", pa.string(), nullable=False),
        pa.field("text", pa.large_string(), nullable=False),
        pa.field("n_tokens", pa.int32(), nullable=False),
        pa.field("n_bytes", pa.int32(), nullable=False),
        pa.field("file", pa.string(), nullable=False),
        pa.field("line", pa.int64(), nullable=False),
        pa.field("meta", pa.large_string(), nullable=False),
    ]
)


@dataclass(slots=True)
class Record:
    id: str
    source: str
    format: str
    text: str
    n_tokens: int
    n_bytes: int
    file: str
    line: int
    meta: str  # JSON of the input's other fields (minus excluded ones): provenance without a schema per source


# ---- structure vocabulary -------------------------------------------------------------------------------------
MESSAGE_KEYS = ("messages", "conversations", "conversation", "turns", "dialog", "chat")
TOOL_ROLES = {"tool", "function", "ipython", "observation", "environment", "tool_response", "function_response"}
TOOL_LIST_KEYS = ("tools", "functions", "available_tools")
TRAJECTORY_KEYS = ("trajectory", "steps", "actions", "tool_calls")
REASONING_KEYS = (
    "reasoning", "reasoning_content", "thinking", "think", "thought", "thoughts",
    "chain_of_thought", "cot", "rationale", "reasoning_trace",
)
PROMPT_KEYS = ("prompt", "instruction", "question", "query", "problem", "input")
RESPONSE_KEYS = ("response", "output", "answer", "completion", "solution", "chosen", "target")
LANG_KEYS = ("lang", "language", "programming_language")
PATH_KEYS = ("path", "filename", "file_path", "filepath", "max_stars_repo_path")
ROLE_ALIASES = {"human": "user", "gpt": "assistant", "bot": "assistant", "model": "assistant", "user": "user"}

CODE_EXTENSIONS = frozenset(
    """py pyi pyx js mjs cjs jsx ts tsx mts cts c h cc cpp cxx hpp hh hxx java kt kts scala go rs rb php cs fs swift
    m mm sh bash zsh fish ps1 bat lua pl pm r jl sql hs ml mli ex exs erl clj cljs dart vue svelte css scss less
    groovy gradle cmake mk makefile dockerfile asm s f90 f95 zig nim v sv vhd proto thrift graphql tf po pot""".split()
)
PROGRAMMING_LANGUAGES = frozenset(
    """python javascript typescript c c++ cpp c# csharp java go golang rust ruby php kotlin scala swift shell bash
    zsh powershell lua perl r julia sql haskell ocaml elixir erlang clojure dart objective-c html css scss
    makefile dockerfile assembly fortran zig nim verilog vhdl protobuf po gettext""".split()
)
_NATURAL_LANG = re.compile(r"^[a-z]{2,3}([-_][A-Za-z]{2,4})?$")

_THINK_OPEN = re.compile(r"<(think|thinking|reasoning)>", re.IGNORECASE)


# the only non-ASCII characters that `re.IGNORECASE` matches to an ASCII letter (tests/test_formats.py scans them all)
_FOLD_CHARS = {"\u0130": "i", "\u0131": "i", "\u017f": "s", "\u212a": "k"}
_FOLD = str.maketrans(_FOLD_CHARS)


class _Gated:
    """A regex searched only when one of the literals it cannot match without is in the text.

    Python's `re` finds no literal prefix in an alternation that starts with an anchor or an optional group, so it
    tries every branch at every position: on the 40,688 demo records these four patterns cost 5.7 s of a 16 s ingest.
    A substring test (C speed) rules most texts out first; the answer is the regex's own wherever a literal occurs.
    With ``fold``, the literals are lower-case and tested on the lower-cased text, after the four non-ASCII letters
    that IGNORECASE matches to ASCII ones (``_FOLD_CHARS``) are mapped to them: a text the regex matches always holds a
    literal there.
    """

    def __init__(self, pattern: str, literals: tuple[str, ...], flags: int = 0, fold: bool = False):
        self.regex = re.compile(pattern, flags)
        self.literals, self.fold = literals, fold

    def search(self, text: str) -> re.Match | None:
        probe = text
        if self.fold:
            if not text.isascii() and any(c in text for c in _FOLD_CHARS):
                probe = text.translate(_FOLD)
            probe = probe.lower()
        if not any(lit in probe for lit in self.literals):
            return None
        return self.regex.search(text)

    def findall(self, text: str) -> list:
        if not self.fold and not any(lit in text for lit in self.literals):
            return []
        return self.regex.findall(text)


# Unambiguous traces of tool use, in chat text or in a JSON dump of one.
_TOOL_MARKERS = _Gated(
    r"<tool_call>|<function_call>|<functioncall>|\"tool_calls\"\s*:|<returncode>|<execute>"
    r"|\"role\"\s*:\s*\"(tool|function|ipython)\"|\"from\"\s*:\s*\"(function_call|observation)\"|\"API_name\"\s*:",
    ("<tool_call>", "<function_call>", "<functioncall>", '"tool_calls"', "<returncode>", "<execute>", '"role"',
     '"from"', '"API_name"'),
)
# A prompt that sets up an environment with actions or declares tools.
_AGENT_CONTEXT = _Gated(
    r"you are an? (?:autonomous |intelligent |helpful )*(?:agent|assistant that can interact)|interact (?:with|multiple"
    r" times)|available (?:actions|tools|commands|functions)|access to the following (?:functions|tools)"
    r"|you can use the following|action space|\"parameters\"\s*:",
    ("you are a", "interact ", "available ", "access to the following ", "you can use the following", "action space",
     '"parameters"'),
    re.IGNORECASE, fold=True,
)
# Line-initial step labels (ReAct / AgentTuning) and shell or browser actions; the (?:\\n) branch matches inside
# JSON-escaped strings.
_ACTION = _Gated(r"(?:^|\\n)\s*(?:Action(?: \d+)?|Act|THOUGHT)\s*:|```(?:bash|sh)\b|\bclick \[|\bsearch\[|\bfinish\[",
                 ("Act", "THOUGHT", "```bash", "```sh", "click [", "search[", "finish["), re.MULTILINE)
_OBSERVATION = _Gated(r"(?:^|\\n|\")\s*Observation(?: \d+)?\s*:|<output>|The output of the OS|\[SEP\]",
                      ("Observation", "<output>", "The output of the OS", "[SEP]"), re.MULTILINE)
_ASSISTANT_TURN = _Gated(r"\"role\"\s*:\s*\"assistant\"|\"from\"\s*:\s*\"gpt\"|<\|assistant\|>|<\|im_start\|>assistant",
                         ('"role"', '"from"', "<|assistant|>", "<|im_start|>assistant"))
_CHAT_MARKERS = _Gated(r"<\|im_start\|>|<\|user\|>|<\|assistant\|>|^### (Instruction|Response)\b"
                       r"|^(Human|Assistant|USER|ASSISTANT):",
                       ("<|im_start|>", "<|user|>", "<|assistant|>", "### Instruction", "### Response", "Human:",
                        "Assistant:", "USER:", "ASSISTANT:"), re.MULTILINE)


def get_path(row: Mapping[str, Any], dotted: str) -> Any:
    """``a.b.c`` lookup in nested dicts; None when any step is missing."""
    cur: Any = row
    for part in dotted.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return None
        cur = cur[part]
    return cur


def drop_path(row: dict[str, Any], dotted: str) -> None:
    parts = dotted.split(".")
    cur: Any = row
    for part in parts[:-1]:
        cur = cur.get(part) if isinstance(cur, dict) else None
        if cur is None:
            return
    if isinstance(cur, dict):
        cur.pop(parts[-1], None)


def _first_str(row: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    for k in keys:
        v = row.get(k)
        if isinstance(v, str) and v.strip():
            return v
    return None


def _messages(row: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    for k in MESSAGE_KEYS:
        v = row.get(k)
        if isinstance(v, list) and v and all(isinstance(m, dict) for m in v):
            return v
    return None


def _role(m: Mapping[str, Any]) -> str:
    r = m.get("role", m.get("from", ""))
    r = str(r).lower()
    return ROLE_ALIASES.get(r, r)


def _content(m: Mapping[str, Any]) -> str:
    c = m.get("content", m.get("value", m.get("text", "")))
    if isinstance(c, list):  # OpenAI content parts
        return "\n".join(str(p.get("text", "")) if isinstance(p, dict) else str(p) for p in c)
    return c if isinstance(c, str) else ("" if c is None else orjson.dumps(c).decode())


def _agent_evidence(context: bool, acts: bool, observed: bool, assistant_turns: int) -> bool:
    """An environment loop: actions answered by observations, or an agent set-up followed by acting turns."""
    if acts and observed:
        return True
    if context and (acts or assistant_turns >= 2):
        return True
    return observed and assistant_turns >= 2


def _format_of_messages(msgs: list[dict[str, Any]], row: Mapping[str, Any]) -> str:
    roles = [_role(m) for m in msgs]
    assistant = [_content(m) for m, r in zip(msgs, roles) if r == "assistant"]
    others = [_content(m) for m, r in zip(msgs, roles) if r not in ("assistant", "system")]
    if any(r in TOOL_ROLES for r in roles):
        return "agent"
    if any(m.get("tool_calls") or m.get("function_call") for m in msgs):
        return "agent"
    if any(isinstance(row.get(k), list) and row.get(k) for k in TOOL_LIST_KEYS):
        return "agent"
    if any(_TOOL_MARKERS.search(c) for c in assistant + others):
        return "agent"
    context = "\n".join(_content(m) for m, r in zip(msgs[:2], roles[:2]) if r != "assistant")
    if "access to the following" in context.lower() or '"parameters"' in context:
        return "agent"  # tools are declared, even if this conversation never called one
    acts = any(_ACTION.search(c) for c in assistant)
    observed = any(_OBSERVATION.search(c) for c in others)
    if _agent_evidence(bool(_AGENT_CONTEXT.search(context)), acts, observed, len(assistant)):
        return "agent"
    if any(any(m.get(k) for k in REASONING_KEYS) for m in msgs) or any(_THINK_OPEN.search(c) for c in assistant):
        return "qa_think"
    return "qa"


def _is_code_lang(value: str) -> bool:
    v = value.strip().lower()
    if not v:
        return False
    if v in PROGRAMMING_LANGUAGES or v in CODE_EXTENSIONS:
        return True
    return not _NATURAL_LANG.match(v)  # "en", "pt-BR" are natural languages; "po", "vim script" are not


def _code_extension(path: str) -> bool:
    name = path.replace("\\", "/").rsplit("/", 1)[-1].lower()
    if name in ("makefile", "dockerfile", "cmakelists.txt"):
        return True
    return "." in name and name.rsplit(".", 1)[-1] in CODE_EXTENSIONS


def _format_of_text(text: str) -> str:
    head = text[:20000]
    if _TOOL_MARKERS.search(head):
        return "agent"
    if _agent_evidence(bool(_AGENT_CONTEXT.search(head)), bool(_ACTION.search(head)),
                       bool(_OBSERVATION.search(head)), len(_ASSISTANT_TURN.findall(head))):
        return "agent"
    if _THINK_OPEN.search(head):
        return "qa_think"
    if _CHAT_MARKERS.search(head):
        return "qa"
    if head.startswith("#!"):
        return "code"
    return "text"


def detect_format(row: Mapping[str, Any], text: str, _depth: int = 0) -> str:
    """Format from structure: chat/tool fields, Q/A fields, reasoning fields, code metadata, then the text itself.

    ``row`` must already have excluded fields removed; label-like fields (``format``, ``group``) are never read.
    """
    msgs = _messages(row)
    if msgs is not None:
        return _format_of_messages(msgs, row)
    if any(isinstance(row.get(k), list) and row.get(k) for k in TRAJECTORY_KEYS):
        return "agent"
    prompt, response = _first_str(row, PROMPT_KEYS), _first_str(row, RESPONSE_KEYS)
    if prompt is not None and response is not None:
        if _first_str(row, REASONING_KEYS) is not None or _THINK_OPEN.search(response):
            return "qa_think"
        return "qa"
    lang = _first_str(row, LANG_KEYS)
    if lang is not None and _is_code_lang(lang):
        return "code"
    path = _first_str(row, PATH_KEYS) or get_path(row, "meta.path")
    if isinstance(path, str) and _code_extension(path):
        return "code"
    stripped = text.lstrip()
    if _depth == 0 and stripped[:1] == "{" and len(stripped) < 4_000_000:
        try:
            inner = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            inner = None
        if isinstance(inner, dict):  # a record serialized as text (e.g. a raw trajectory dump)
            found = detect_format(inner, "", _depth=1)
            if found != "text":
                return found
    return _format_of_text(text)


def render_text(row: Mapping[str, Any]) -> str | None:
    """A text for records that carry only structure (chat messages, Q/A fields), so they can still be scored."""
    msgs = _messages(row)
    if msgs is not None:
        return "\n\n".join(f"<|{_role(m) or 'unknown'}|>\n{_content(m)}" for m in msgs)
    prompt, response = _first_str(row, PROMPT_KEYS), _first_str(row, RESPONSE_KEYS)
    if prompt is not None and response is not None:
        reasoning = _first_str(row, REASONING_KEYS)
        middle = f"<think>\n{reasoning}\n</think>\n\n" if reasoning else ""
        return f"Question: {prompt}\n\n{middle}Answer: {response}"
    return None

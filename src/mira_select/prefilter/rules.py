"""Cheap per-record rules, per format, run before any model scoring (as FineWeb, DCLM, StarCoder and OpenCoder do).

Each rule answers one question about one record and says why when it fires. Text rules are datatrove's own filters
(Gopher repetition and quality, C4 quality, FineWeb quality), called on a datatrove ``Document``; we only translate
their verdict into a flag. Code rules follow The Stack / StarCoder's published filters plus a real parse
(tree-sitter grammars from their PyPI packages). Agent and QA rules read the turn structure of the record.
Whether a fired rule drops the record or only flags it is the config's call (``prefilter.rules.<name>.action``).
"""

from __future__ import annotations

import contextlib
import functools
import re
from dataclasses import dataclass
from typing import Any, Callable

from ..config import PrefilterConfig

TEXT_FORMATS = ("text",)


@dataclass(frozen=True)
class Rule:
    name: str
    formats: tuple[str, ...]  # formats the rule reads; "*" = every record
    check: Callable[[str, Any], str | None]  # (text, rule settings) -> reason when it fires, else None


# ---- text: datatrove's filters --------------------------------------------------------------------------------------
class _BatchZone:
    """datatrove's spaCy tokenizer opens a spaCy memory zone per call, so every word of every document becomes a new
    lexeme that is freed right after (a third of the text rules' time). This proxy makes those per-call zones no-ops
    while :func:`rules_batch` holds one zone around a whole batch: lexemes are shared within the batch and freed at
    its end, so memory stays flat. Outside a batch the per-call zone is the real one."""

    def __init__(self, nlp):
        object.__setattr__(self, "_nlp", nlp)
        object.__setattr__(self, "held", False)

    def memory_zone(self):
        return contextlib.nullcontext() if self.held else self._nlp.memory_zone()

    def __call__(self, *args, **kwargs):
        return self._nlp(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._nlp, name)

    def __setattr__(self, name, value):  # datatrove sets max_length per call
        if name == "held":
            object.__setattr__(self, name, value)
        else:
            setattr(self._nlp, name, value)


@functools.lru_cache(maxsize=None)
def _word_tokenizer():
    """One English word tokenizer shared by all four filters (datatrove accepts a tokenizer in place of a language):
    its word split of a document is then computed once (datatrove caches it per text) instead of once per filter."""
    from datatrove.utils.word_tokenizers import load_word_tokenizer

    tok = load_word_tokenizer("en")
    if hasattr(tok, "_tokenizer"):  # datatrove's spaCy tokenizer: hold its memory zone per batch
        tok._tokenizer = _BatchZone(tok.tokenizer)
    return tok


@contextlib.contextmanager
def rules_batch():
    """Run a batch of :func:`record_flags` calls inside one tokenizer memory zone (see :class:`_BatchZone`)."""
    tok = _word_tokenizer() if _datatrove_available() else None
    zone = tok._tokenizer if tok is not None and isinstance(getattr(tok, "_tokenizer", None), _BatchZone) else None
    if zone is None or zone.held:
        yield
        return
    with zone._nlp.memory_zone():
        zone.held = True
        try:
            yield
        finally:
            zone.held = False


@functools.lru_cache(maxsize=None)
def _datatrove_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("datatrove") is not None


@functools.lru_cache(maxsize=None)
def _datatrove_filter(name: str):
    try:
        from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter, GopherQualityFilter,
                                                GopherRepetitionFilter)
    except ImportError:
        from ..errors import MiraError

        raise MiraError("the text rules of `mira prefilter` use datatrove's filters: "
                        "pip install 'mira-select[datatrove]' (or set their action to off)") from None
    tok = _word_tokenizer()
    return {
        "gopher_repetition": lambda: GopherRepetitionFilter(language=tok),
        "gopher_quality": lambda: GopherQualityFilter(language=tok),
        # C4 edits lines as it goes; terminal punctuation is a web-prose rule that every man page would fail
        "c4_quality": lambda: C4QualityFilter(filter_no_terminal_punct=False, language=tok),
        "fineweb_quality": lambda: FineWebQualityFilter(language=tok),
    }[name]()


def _datatrove(name: str) -> Callable[[str, Any], str | None]:
    def check(text: str, _settings: Any) -> str | None:
        from datatrove.data import Document

        verdict = _datatrove_filter(name).filter(Document(text=text, id=""))
        if verdict is True or (isinstance(verdict, tuple) and verdict[0]):
            return None
        return verdict[1] if isinstance(verdict, tuple) and len(verdict) > 1 else "filtered"

    return check


# ---- code ------------------------------------------------------------------------------------------------------------
_GRAMMARS = ("python", "javascript", "typescript", "c", "bash")


@functools.lru_cache(maxsize=None)
def code_parser(lang: str):
    from tree_sitter import Language, Parser

    mod = __import__(f"tree_sitter_{lang}")
    fn = getattr(mod, "language_typescript", None) if lang == "typescript" else mod.language
    return Parser(Language(fn()))


# Lines that vote for a grammar. The guess counts votes over the parse window, so it does not depend on the order of
# the lines: a file and a copy with its lines shuffled are parsed with the same grammar (measured on 315 demo code
# files and their shuffled copies: the same guess for 99 % of pairs; a first-match guess on the head, 91 %).
_VOTES = {
    "bash": re.compile(r"^\s*(#!\S*(sh|bash|zsh)\b|fi\s*$|then\s*$|done\s*$|esac\s*$|elif \[|if \[\[?|export \w+="
                       r"|local \w+|alias \w+=|\w+\(\)\s*\{|function \w+\s*(\(\))?\s*\{|echo |source )", re.M),
    "c": re.compile(r"^\s*(#\s*(include|define|ifn?def|endif|if|else)\b|(static|struct|typedef|unsigned|const char|void"
                    r"|int|char|size_t|long)\b[^=(]*[\w*]\s*[(;=\[])", re.M),
    "python": re.compile(r"^\s*(def \w+\(|class \w+[:(]|from [\w.]+ import |import [\w.]+(\s+as \w+)?\s*$|@\w+"
                         r"|elif .*:\s*$|self\.\w+)", re.M),
    "typescript": re.compile(r"\binterface \w+|\btype \w+\s*=|:\s*(string|number|boolean|void|any)\b|\bpublic \w+"
                             r"|\bprivate \w+|\bas \w+[>;),]"),
    "javascript": re.compile(r"\bfunction\b|\bconst \w+\s*=|\blet \w+|\bvar \w+|=>|\brequire\(|module\.exports"
                             r"|\bexport (default|const|function)"),
}


def guess_language(text: str, window: int = 8_000) -> str:
    """The grammar with the most voting lines in the first ``window`` characters (the parse window). TypeScript
    markers next to JavaScript votes mean TypeScript (its grammar parses JavaScript too); no vote at all: bash."""
    head = text[:window]
    votes = {lang: len(pattern.findall(head)) for lang, pattern in _VOTES.items()}
    if votes["typescript"] and votes["typescript"] + votes["javascript"] >= max(votes["python"], votes["c"],
                                                                                votes["bash"]):
        return "typescript"
    best = max(("c", "python", "javascript", "bash"), key=votes.__getitem__)
    return best if votes[best] else "bash"


def error_share(tree, n_bytes: int) -> float:
    """Bytes inside ERROR / MISSING nodes, as a share of the file (nested errors counted once)."""
    errors, stack = 0, [tree.root_node]
    while stack:
        node = stack.pop()
        if not node.has_error:
            continue
        if node.is_error or node.is_missing:
            errors += max(node.end_byte - node.start_byte, 1)
            continue
        stack.extend(node.children)
    return errors / max(n_bytes, 1)


def parse_guessed(text: str, max_bytes: int = 8_000) -> tuple[str, Any, int]:
    """(grammar, syntax tree or None for an empty text, bytes parsed): the text's first ``max_bytes`` bytes parsed
    with its likeliest grammar, for callers that read more than one thing from the same tree."""
    data = text.encode("utf-8", "surrogatepass")[:max_bytes]
    lang = guess_language(text, max_bytes)
    return lang, code_parser(lang).parse(data) if data else None, len(data)


def guessed_error_share(text: str, max_bytes: int = 8_000) -> float:
    """Share of the text's bytes in error nodes when parsed with its likeliest grammar (one parse; prose scores
    high, a broken file higher than its intact copy): a graded parses-or-not signal for the student."""
    _, tree, n_bytes = parse_guessed(text, max_bytes)
    return error_share(tree, n_bytes) if tree is not None else 0.0


def syntax_error(text: str, s: Any) -> str | None:
    """Fires when no available grammar parses the file with fewer than ``max_error_share`` of its bytes in error
    nodes. The likeliest grammar goes first, so a clean file costs one parse."""
    data = text.encode("utf-8", "surrogatepass")[: s.max_bytes]
    first = guess_language(text, s.max_bytes)
    best = 1.0
    for lang in (first, *[g for g in _GRAMMARS if g != first]):
        share = error_share(code_parser(lang).parse(data), len(data))
        best = min(best, share)
        if share <= s.max_error_share:
            return None
    return f"no grammar parses it ({best:.0%} of bytes in error nodes at best)"


def long_lines(text: str, s: Any) -> str | None:
    lengths = [len(ln) for ln in text.split("\n")]
    if max(lengths) > s.max_line:
        return f"a line of {max(lengths):,} characters (> {s.max_line:,})"
    mean = sum(lengths) / len(lengths)
    if mean > s.max_mean:
        return f"mean line length {mean:.0f} (> {s.max_mean:g})"
    return None


_ALNUM_RUN = re.compile(r"[^\W_]+")  # str.isalnum() characters exactly (re's \w is them plus "_")
_SPACE_RUN = re.compile(r"\s+")  # str.isspace() characters exactly


def _count(run: re.Pattern, text: str) -> int:
    """Characters of ``text`` in runs of ``run`` (a C-speed count: a per-character generator cost ~1 s per MB)."""
    return sum(map(len, run.findall(text)))


def alnum_fraction(text: str, s: Any) -> str | None:
    frac = _count(_ALNUM_RUN, text) / max(len(text), 1)
    return f"alphanumeric fraction {frac:.2f} (< {s.min_fraction:g})" if frac < s.min_fraction else None


_BLOB = re.compile(r"[A-Za-z0-9+/=]{64,}|(?:0x)?[0-9a-fA-F]{64,}|(?:\\x[0-9a-fA-F]{2}){16,}|(?:\\u[0-9a-fA-F]{4}){8,}")


def data_blob(text: str, s: Any) -> str | None:
    """Base64 / hex / escaped byte runs (StarCoder's encoded-data rule): one run over ``max_run`` characters, or
    such runs making up more than ``max_share`` of the file."""
    runs = [m.end() - m.start() for m in _BLOB.finditer(text)]
    if not runs:
        return None
    if max(runs) > s.max_run:
        return f"an encoded data run of {max(runs):,} characters"
    share = sum(runs) / max(len(text), 1)
    return f"encoded data is {share:.0%} of the file" if share > s.max_share else None


def minified(text: str, s: Any) -> str | None:
    lines = [ln for ln in text.split("\n") if ln.strip()]
    if not lines:
        return None
    mean = sum(map(len, lines)) / len(lines)
    space = _count(_SPACE_RUN, text) / max(len(text), 1)
    return f"minified: mean line {mean:.0f} chars, {space:.0%} whitespace" \
        if mean > s.min_mean_line and space < s.max_whitespace else None


_GENERATED = re.compile(r"auto[- ]?generated|automatically generated|generated by|do not edit|code generator",
                        re.IGNORECASE)


def autogenerated(text: str, s: Any) -> str | None:
    head = "\n".join(text.split("\n")[: s.header_lines])
    m = _GENERATED.search(head)
    return f"header says {m.group(0)!r}" if m else None


# ---- turn structure (agent, qa) --------------------------------------------------------------------------------------
_TURN = re.compile(r"^<\|([a-z_]+)\|>\s*$", re.M)
_RESPONSE = re.compile(r"(?m)^(?:#{2,3} ?(?:Response|Answer|Output|Assistant):?|<\|assistant\|>)[ \t]*$")


def turns(text: str) -> list[tuple[str, str]]:
    """``<|role|>`` blocks -> [(role, body)]; a record without markers is one user turn."""
    marks = list(_TURN.finditer(text))
    if not marks:
        return [("user", text)]
    return [(m.group(1), text[m.end(): marks[i + 1].start() if i + 1 < len(marks) else len(text)].strip())
            for i, m in enumerate(marks)]


def _norm(s: str) -> str:
    return " ".join(s.lower().split())


def action_repeats(text: str) -> int:
    """How often the most repeated (action, observation) pair of a trajectory occurs (0: no such pair)."""
    ts = turns(text)
    counts: dict[tuple[str, str], int] = {}
    for (role, body), nxt in zip(ts, ts[1:] + [("", "")]):
        if role == "assistant" and nxt[0] in ("user", "tool", "observation", "function", "ipython"):
            key = (_norm(body), _norm(nxt[1]))
            counts[key] = counts.get(key, 0) + 1
    return max(counts.values(), default=0)


def repeated_action(text: str, s: Any) -> str | None:
    """The same action answered by the same observation ``min_repeats`` times: a loop, not progress."""
    worst = action_repeats(text)
    return f"one action and its observation repeated {worst} times" if worst >= s.min_repeats else None


_FINISH = re.compile(r"finish\[|final answer|submit|complete_task|task (?:is )?(?:complete|done)|episode finished",
                     re.IGNORECASE)
_ACTION = re.compile(r"<tool_call>|^Action:|```(?:bash|sh)\b|\"name\"\s*:", re.M)


def no_final_answer(text: str, _s: Any) -> str | None:
    """A trajectory whose last assistant turn is an action that is not a finish/submit: it stopped mid-task, so
    nothing in it shows what the task's end looks like. A last assistant turn that talks to the user is an answer."""
    ts = [t for t in turns(text) if t[0] != "system"]
    actions = [b for r, b in ts if r == "assistant"]
    if not actions or _FINISH.search("\n".join(b for _, b in ts[-3:])):
        return None
    if not _ACTION.search(actions[-1]):
        return None
    return "ends without a final answer or submission"


def split_qa(text: str) -> tuple[str, str] | None:
    """(question, answer) of a QA record: a response header, or the first user and the last assistant turn."""
    m = _RESPONSE.search(text)
    if m and not text[: m.start()].lstrip().startswith("<|"):
        return text[: m.start()], text[m.end():]
    ts = turns(text)
    users = [b for r, b in ts if r == "user"]
    answers = [b for r, b in ts if r == "assistant"]
    if users and answers:
        return users[0], answers[-1]
    return None


def empty_answer(text: str, s: Any) -> str | None:
    qa = split_qa(text)
    if qa is None:
        return None
    return "empty answer" if len(qa[1].strip()) < s.min_chars else None


_REFUSAL = re.compile(r"^(?:i'?m sorry|i am sorry|sorry,|i cannot|i can'?t|i am unable|i'?m unable|as an ai\b|"
                      r"i do not have (?:access|the ability)|unfortunately,? i)", re.IGNORECASE)


def refusal(text: str, s: Any) -> str | None:
    qa = split_qa(text)
    if qa is None:
        return None
    answer = qa[1].strip()
    return "the answer is a refusal" if len(answer) <= s.max_chars and _REFUSAL.match(answer) else None


def echo_answer(text: str, s: Any) -> str | None:
    from difflib import SequenceMatcher

    qa = split_qa(text)
    if qa is None:
        return None
    q, a = _norm(re.sub(r"^#+ ?\w+:?", "", qa[0].strip())), _norm(qa[1])
    if not a:
        return None
    ratio = SequenceMatcher(None, q[:2000], a[:2000], autojunk=False).ratio()
    return f"the answer repeats the question ({ratio:.0%} alike)" if ratio >= s.min_similarity else None


RULES: dict[str, Rule] = {r.name: r for r in (
    Rule("gopher_repetition", TEXT_FORMATS, _datatrove("gopher_repetition")),
    Rule("gopher_quality", TEXT_FORMATS, _datatrove("gopher_quality")),
    # fineweb before c4: c4 splits every line into sentences, which evicts the document's word split from
    # datatrove's small per-text cache that the other three filters share
    Rule("fineweb_quality", TEXT_FORMATS, _datatrove("fineweb_quality")),
    Rule("c4_quality", TEXT_FORMATS, _datatrove("c4_quality")),
    Rule("syntax_error", ("code",), syntax_error),
    Rule("long_lines", ("code",), long_lines),
    Rule("alnum_fraction", ("code",), alnum_fraction),
    Rule("data_blob", ("code",), data_blob),
    Rule("minified", ("code",), minified),
    Rule("autogenerated", ("code",), autogenerated),
    Rule("repeated_action", ("agent",), repeated_action),
    Rule("no_final_answer", ("agent",), no_final_answer),
    Rule("empty_answer", ("qa", "qa_think"), empty_answer),
    Rule("refusal", ("qa", "qa_think"), refusal),
    Rule("echo_answer", ("qa",), echo_answer),
)}
DEDUP_RULES = ("exact_dup", "near_dup")


def record_flags(text: str, fmt: str, cfg: PrefilterConfig) -> dict[str, str]:
    """-> {rule: reason} for every enabled per-record rule that fires on this record."""
    out = {}
    for name, rule in RULES.items():
        settings = getattr(cfg.rules, name)
        if settings.action == "off" or (fmt not in rule.formats and "*" not in rule.formats):
            continue
        reason = rule.check(text, settings)
        if reason is not None:
            out[name] = reason
    return out

"""Prompt families per format, for the two teacher tasks, built from versioned files in the package.

Layout matters for cost: instructions and the rubric come first (identical across a group, so the server or the
in-process model reuses their evaluated prefix), the record comes last. The record sits in a block delimited by a
nonce derived from a workspace secret and the record, so it is stable across runs (the cache still hits) but a
record's author cannot predict it to close the block early and inject instructions.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from dataclasses import dataclass, replace
from importlib import resources

import orjson

from ..tokens import get_counter
from .schema import anchor_schema, explained_schema, judge_schema, score_schema, scores_only_schema
from .types import Anchor, ChatRequest

FORMATS = ("text", "code", "qa", "qa_think", "agent")
GENERAL = "general"  # score-only family of the fixed DataMan-style rubric (one prompt for every format)


@functools.lru_cache(maxsize=None)
def _read(name: str) -> str:
    return resources.files("mira_select.prompts").joinpath(name).read_text(encoding="utf-8")


def _family(task: str, fmt: str) -> dict[str, str]:
    """The ``key: value`` lines of ``<task>/<fmt>.md`` (kind of record, and for some tasks a parts line)."""
    if fmt not in FORMATS and not (task == "score" and fmt == GENERAL):
        raise ValueError(f"unknown format {fmt!r}")
    out = {}
    for line in _read(f"{task}/{fmt}.md").splitlines():
        key, _, value = line.partition(":")
        if value:
            out[key.strip()] = value.strip()
    return out


@functools.lru_cache(maxsize=None)
def prompt_version(task: str, fmt: str, marked: bool = False) -> str:
    """Hash of every file a prompt is built from: part of the cache key and stored with every label."""
    label = ["common.md", "record_marked.md" if marked else "record.md", "label/base.md", "label/explain.md",
             f"label/{fmt}.md"]
    if task == "anchor":
        files = ["anchor/base.md", f"judge/{fmt}.md"]
    elif task == "label":
        files = label
    elif task == "addressed":  # the label prompt plus the question after it
        files = [*label, "label/addressed.md"]
    else:
        files = ["common.md", "record.md", f"{task}/base.md", f"{task}/{fmt}.md"]
    return hashlib.sha256("\0".join(_read(f) for f in files).encode()).hexdigest()[:12]


def record_nonce(secret: bytes, record_id: str, text: str) -> str:
    return hmac.new(secret, f"{record_id}\0{text}".encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:16]


@dataclass(frozen=True)
class PromptBuilder:
    """Turns (task, format, record, anchors) into a ChatRequest. One per workspace (the secret) and tokenizer."""

    secret: bytes
    max_record_tokens: int = 1024
    tokenizer: str = "qwen2.5-coder"
    max_tokens_judge: int = 700
    max_tokens_per_anchor: int = 70
    datamark: bool = False

    def _record(self, nonce: str, text: str, marked: bool = False) -> str:
        truncated = defang(truncate_tokens(text, self.max_record_tokens, self.tokenizer))
        if marked:
            return _read("record_marked.md").format(nonce=nonce, text=datamark(truncated), mark=DATAMARK)
        return _read("record.md").format(nonce=nonce, text=truncated)

    def judge(self, fmt: str, record_id: str, text: str, temperature: float = 0.0) -> ChatRequest:
        # Only the kind of record is described: naming the dimensions we expect would make the rubric ours, not the
        # teacher's (the method's point is that each group's criteria come from its own judgments).
        fam = _family("judge", fmt)
        with_parts = fmt == "qa_think"
        body = _read("judge/base.md").format(
            kind=fam["kind"], parts=fam.get("parts", ""), n_min=6 if with_parts else 3, n_max=9 if with_parts else 6,
            part_field='"part": "think|combined|answer", ' if with_parts else "",
        )
        return self._request(record_id, text, body, judge_schema(with_parts), self.max_tokens_judge, temperature)

    def score(self, fmt: str, record_id: str, text: str, anchors: list[Anchor], logprobs: bool = False,
              temperature: float = 0.0) -> ChatRequest:
        fam = _family("score", fmt)
        listed = "\n".join(
            f"- {a.id}: {a.name}" + (f" [{a.part}]" if a.part != "combined" else "") + f" — {a.definition}"
            for a in anchors
        )
        example = ", ".join(f'"{a.id}": {{"rationale": "...", "score": 0-10}}' for a in anchors[:2]) + ", ..."
        body = _read("score/base.md").format(kind=fam["kind"], focus=fam["focus"], anchors=listed, example=example)
        max_tokens = 40 + self.max_tokens_per_anchor * len(anchors)
        return self._request(record_id, text, body, score_schema(anchors), max_tokens, temperature,
                             logprobs=logprobs)

    def write_anchor(self, fmt: str, points: list[dict], part: str | None = None,
                     temperature: float = 0.0) -> ChatRequest:
        """One rubric criterion from one cluster of judgment points (no record involved)."""
        kind = _family("judge", fmt)["kind"]
        part_note = {"think": " (it judges the reasoning trace only)", "answer": " (it judges the final answer only)",
                     "combined": " (it judges the reasoning and the answer together)"}.get(part or "", "")
        system = _read("anchor/base.md").format(kind=kind, part_note=part_note)
        listed = "\n".join(f"- {p['name']} (score {p['score']}): {p['reason']}" for p in points)
        user = f"Judgment points:\n{listed}\nNow write the criterion as JSON."
        return ChatRequest(messages=({"role": "system", "content": system}, {"role": "user", "content": user}),
                           schema=anchor_schema(), max_tokens=400, temperature=temperature)

    def label(self, fmt: str, record_id: str, text: str, anchors: list[Anchor], explain: bool = False,
              logprobs: bool = True, temperature: float = 0.0, independent_slots: bool = False) -> ChatRequest:
        """Scores on a discovered rubric: scores only (default; one integer per anchor, read out from the digit
        probabilities) or explained (evidence quote + rationale + score per anchor, for a small sample)."""
        fam = _family("label", fmt)
        listed = "\n".join(rubric_line(a) for a in anchors)
        if explain:
            example = ", ".join(f'"{a.id}": {{"evidence": "...", "rationale": "...", "score": 0-10}}'
                                for a in anchors[:2]) + ", ..."
        else:
            example = ", ".join(f'"{a.id}": 0-10' for a in anchors[:3]) + ", ..."
        parts = fam["parts"] + "\n" if "parts" in fam else ""
        body = _read("label/explain.md" if explain else "label/base.md").format(
            kind=fam["kind"], parts=parts, anchors=listed, example=example)
        if explain:
            return self._request(record_id, text, body, explained_schema(anchors), 40 + 90 * len(anchors),
                                 temperature, logprobs=logprobs, marked=self.datamark)
        req = self._request(record_id, text, body, scores_only_schema(anchors), 16 + 8 * len(anchors), temperature,
                            logprobs=logprobs, score_ids=tuple(a.id for a in anchors), marked=self.datamark)
        return replace(req, independent_slots=independent_slots and logprobs)

    def addressed(self, label_request: ChatRequest) -> ChatRequest:
        """After a record's scores-only label prompt, one more user turn: is any of the record addressed to its
        reviewer (a prompt injection), 0-10. Asked as a question about the record rather than found by phrases, so
        it does not depend on the attack's wording, language or encoding; the label prompt is its prefix, so a
        local model answers it from the KV cache the label left (~60 new tokens)."""
        question = {"role": "user", "content": _read("label/addressed.md")}
        return replace(label_request, messages=(*label_request.messages, question),
                       schema=scores_only_schema([ADDRESSED]), max_tokens=16, score_ids=(ADDRESSED.id,))

    def _request(self, record_id: str, text: str, body: str, schema: dict, max_tokens: int, temperature: float,
                 logprobs: bool = False, score_ids: tuple[str, ...] = (), marked: bool = False) -> ChatRequest:
        # The system message is the same for every record of a group (reusable prefix); the nonce and the record
        # go last, in the user message.
        system = _read("common.md") + "\n" + body
        user = self._record(record_nonce(self.secret, record_id, text), text, marked)
        return ChatRequest(messages=({"role": "system", "content": system}, {"role": "user", "content": user}),
                           schema=schema, max_tokens=max_tokens, temperature=temperature, logprobs=logprobs,
                           score_ids=score_ids)


# The reviewer-address question read like one anchor: its "score" is the teacher's certainty (0-10) that the record
# holds text addressed to its reviewer.
ADDRESSED = Anchor("addressed", "Addressed to the reviewer", "the record contains text addressed to its reviewer")


def rubric_line(a: Anchor) -> str:
    """``- a01 Name [think]: definition 0 = ...; 5 = ...; 10 = ...`` (the levels anchor the scale)."""
    line = f"- {a.id} {a.name}" + (f" [{a.part}]" if a.part != "combined" else "") + f": {a.definition}"
    if len(a.levels) == 3:
        line += f" 0 = {a.levels[0]} 5 = {a.levels[1]} 10 = {a.levels[2]}"
    return line


# Lines that address the reviewer rather than belong to the data: fake block markers, "ignore the rubric",
# "give every dimension 10", "SYSTEM NOTE:". Small judges follow such lines (measured: a 3-line test fixture went
# from 0.05 to 9.99 with one appended), so the teacher sees them replaced by a visible marker. Stored records are
# untouched; only the teacher's view changes.
_INJECTION = re.compile(
    r"</?record\b[^>\n]*>"
    r"|^.*(?<![-\w])(?:ignore|disregard|forget)\s+(?:(?:all|any|the|your|previous|prior|above|these|of)\s+)*"
    r"(?:rubric|instructions?|guidelines|criteria|scoring)\b.*$"
    r"|^.*\b(?:give|assign|rate|score|award)\b[^\n]{0,40}\b(?:10|ten|full marks|perfect|maximum|highest)\b"
    r"[^\n]{0,40}\b(?:dimensions?|anchors?|criteria|categor(?:y|ies)|scores?|everything)\b.*$"
    r"|^.*\b(?:system|admin|developer|reviewer|grader|evaluator)\s+(?:note|message|instruction|override)s?\b.*$",
    re.IGNORECASE | re.MULTILINE,
)
INJECTION_MARK = "[line removed: addressed to the reviewer, not part of the data]"


# Datamarking (spotlighting): in the teacher's view of a record, every space between two words becomes this symbol.
# An instruction planted in the record then reads "giveˆthisˆrecordˆ10", visibly part of the marked data whatever
# its wording, language or encoding, so the defence does not depend on knowing the attack's phrasing. One token in
# the Qwen2.5 vocabulary; the record view grows ~1.45x in tokens (demo records cut to 256 tokens). Indentation,
# newlines and runs of spaces stay as they are, so code and tables keep their layout. Scripts written without
# spaces (Han, kana, Hangul, Thai) get the symbol between their characters, else a sentence in them stays unmarked.
DATAMARK = "\u02c6"
_UNSPACED = "\u0e00-\u0e7f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_BETWEEN_WORDS = re.compile(rf"(?<=\S) (?=\S)|(?<=[{_UNSPACED}])(?=[{_UNSPACED}])")


def datamark(text: str) -> str:
    return _BETWEEN_WORDS.sub(DATAMARK, text)


def defang(text: str) -> str:
    return _INJECTION.sub(INJECTION_MARK, text)


def truncate_tokens(text: str, max_tokens: int, tokenizer: str = "qwen2.5-coder", head_share: float = 0.7) -> str:
    """Head + tail of a long record with an explicit marker: openings and endings (answers, final turns) matter."""
    if len(text) <= max_tokens:  # cheap exit: a token is at least one character
        return text
    tok = get_counter(tokenizer)._tok
    ids = tok.encode(text, add_special_tokens=False).ids
    if len(ids) <= max_tokens:
        return text
    head = int(max_tokens * head_share)
    tail = max_tokens - head
    omitted = len(ids) - head - tail
    return (tok.decode(ids[:head]) + f"\n[... {omitted} tokens omitted ...]\n" + tok.decode(ids[-tail:]))


def request_digest(req: ChatRequest) -> str:
    return hashlib.sha256(orjson.dumps(req.cache_fields(), option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]

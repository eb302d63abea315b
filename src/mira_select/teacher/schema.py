"""What a valid teacher answer looks like, how it is checked, and how scores are read out.

Two tasks: *judge* (free-form: the teacher names its own dimensions, each with a score and a reason) and *score*
(every given anchor gets an integer 0–10 and a short rationale). The JSON schema is sent to the server where it
supports constrained decoding; it is checked here regardless, because not every server enforces it.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from .types import Anchor

MAX_RATIONALE_CHARS = 400
PARTS = ("think", "combined", "answer")
# An enum rather than minimum/maximum: every grammar converter (llama.cpp's included) enforces enums.
SCORE_SCHEMA = {"type": "integer", "enum": list(range(11))}


def score_schema(anchors: list[Anchor]) -> dict[str, Any]:
    item = {
        "type": "object",
        "properties": {"rationale": {"type": "string", "maxLength": 200},
                       "score": SCORE_SCHEMA},
        "required": ["rationale", "score"],
    }
    return {"type": "object", "properties": {a.id: item for a in anchors}, "required": [a.id for a in anchors]}


def scores_only_schema(anchors: list[Anchor]) -> dict[str, Any]:
    """One integer per anchor and nothing else: the cheap labeling answer (scores read from digit probabilities)."""
    return {"type": "object", "properties": {a.id: SCORE_SCHEMA for a in anchors},
            "required": [a.id for a in anchors]}


def explained_schema(anchors: list[Anchor]) -> dict[str, Any]:
    """Evidence (a quote from the record) first, so the rationale has to rest on the record, then the score."""
    item = {
        "type": "object",
        "properties": {"evidence": {"type": "string", "maxLength": 100},
                       "rationale": {"type": "string", "maxLength": 200},
                       "score": SCORE_SCHEMA},
        "required": ["evidence", "rationale", "score"],
    }
    return {"type": "object", "properties": {a.id: item for a in anchors}, "required": [a.id for a in anchors]}


ANCHOR_FIELDS = ("name", "definition", "score_0", "score_5", "score_10")


def anchor_schema() -> dict[str, Any]:
    limits = {"name": 40, "definition": 220, "score_0": 160, "score_5": 160, "score_10": 160}
    return {"type": "object", "properties": {k: {"type": "string", "maxLength": n} for k, n in limits.items()},
            "required": list(ANCHOR_FIELDS)}


def validate_anchor(text: str) -> tuple[dict[str, Any] | None, list[str]]:
    """-> ({name, definition, score_0, score_5, score_10}, problems): every field a non-empty string."""
    data, err = _parse(text)
    if err:
        return None, [err]
    if not isinstance(data, dict):
        return None, ["the answer must be a JSON object"]
    out, problems = {}, []
    for k in ANCHOR_FIELDS:
        v = data.get(k)
        if not isinstance(v, str) or not v.strip():
            problems.append(f"field {k!r} must be a non-empty string")
        else:
            out[k] = " ".join(v.split())[:MAX_RATIONALE_CHARS]
    return (None if problems else out), problems


def judge_schema(with_parts: bool) -> dict[str, Any]:
    props: dict[str, Any] = {
        "name": {"type": "string", "maxLength": 60},
        "reason": {"type": "string", "maxLength": 240},
        "score": SCORE_SCHEMA,
    }
    required = ["name", "reason", "score"]
    if with_parts:
        props = {"part": {"type": "string", "enum": list(PARTS)}, **props}
        required = ["part", *required]
    dim = {"type": "object", "properties": props, "required": required}
    return {"type": "object", "properties": {"dimensions": {"type": "array", "items": dim, "minItems": 3,
                                                            "maxItems": 8 if not with_parts else 12}},
            "required": ["dimensions"]}


def _parse(text: str) -> tuple[Any, str | None]:
    s = text.strip()
    if s.startswith("```"):  # some servers wrap JSON in a fence despite JSON mode
        s = re.sub(r"^```[a-zA-Z]*\n?|```$", "", s).strip()
    try:
        return orjson.loads(s), None
    except orjson.JSONDecodeError as exc:
        try:  # raw newlines/tabs inside strings (grammar-constrained llama.cpp allows them): the data is intact
            import json

            return json.loads(s, strict=False), None
        except ValueError:
            return None, f"not valid JSON ({exc})"


def _score_value(v: Any) -> tuple[int | None, str | None]:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None, f"score {v!r} is not an integer"
    if isinstance(v, float) and not v.is_integer():
        return None, f"score {v!r} is not an integer"
    if not 0 <= v <= 10:
        return None, f"score {v!r} is outside 0-10"
    return int(v), None


def validate_scores(text: str, anchors: list[Anchor]) -> tuple[dict[str, Any] | None, list[str]]:
    """-> ({anchor_id: {"score": int, "rationale": str}}, problems). Any problem means the answer is unusable."""
    data, err = _parse(text)
    if err:
        return None, [err]
    if not isinstance(data, dict):
        return None, ["the answer must be a JSON object keyed by anchor id"]
    problems, out = [], {}
    for a in anchors:
        item = data.get(a.id)
        if item is None:
            problems.append(f"anchor {a.id!r} is missing")
            continue
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            item = {"score": item, "rationale": ""}
        if not isinstance(item, dict):
            problems.append(f"anchor {a.id!r} must be an object with score and rationale")
            continue
        score, perr = _score_value(item.get("score"))
        if perr:
            problems.append(f"anchor {a.id!r}: {perr}")
            continue
        rationale = item.get("rationale", "")
        out[a.id] = {"score": score, "rationale": str(rationale)[:MAX_RATIONALE_CHARS]}
        if "evidence" in item:
            out[a.id]["evidence"] = str(item["evidence"])[:MAX_RATIONALE_CHARS]
    return (None if problems else out), problems


def validate_judgment(text: str, with_parts: bool) -> tuple[dict[str, Any] | None, list[str]]:
    """-> ({"dimensions": [{part?, name, score, reason}]}, problems). Unusable items are dropped if some remain."""
    data, err = _parse(text)
    if err:
        return None, [err]
    dims = data.get("dimensions") if isinstance(data, dict) else None
    if not isinstance(dims, list) or not dims:
        return None, ["the answer must be an object with a non-empty 'dimensions' list"]
    kept, problems = [], []
    for i, d in enumerate(dims):
        if not isinstance(d, dict):
            problems.append(f"dimensions[{i}] is not an object")
            continue
        name, reason = str(d.get("name", "")).strip(), str(d.get("reason", "")).strip()
        score, perr = _score_value(d.get("score"))
        part = d.get("part", "combined") if with_parts else "combined"
        if not name or not reason or perr or part not in PARTS:
            problems.append(f"dimensions[{i}] needs a name, a reason, an integer score 0-10"
                            + (" and a part (think/combined/answer)" if with_parts else ""))
            continue
        kept.append({"part": part, "name": name[:80], "score": score, "reason": reason[:MAX_RATIONALE_CHARS]})
    if not kept:
        return None, problems
    return {"dimensions": kept}, []


def repair_message(problems: list[str]) -> str:
    listed = "; ".join(problems[:8])
    return (f"Your previous answer could not be used: {listed}. Reply again with only the corrected JSON object, "
            "following the required format exactly.")


def _score_at(anchor_id: str) -> re.Pattern[str]:
    """Where an anchor's score starts: ``"id": 7`` (scores-only) or ``"id": {..., "score": 7}`` (explained)."""
    return re.compile(rf'"{re.escape(anchor_id)}"\s*:\s*(?:\{{[^{{}}]*?"score"\s*:\s*)?(?=\d)', re.DOTALL)


def expected_scores(text: str, anchors: list[Anchor], greedy: dict[str, Any],
                    digit_probs: list[tuple[int, dict[str, float]]] | None) -> dict[str, float] | None:
    """Expected value of each anchor's score under the model's digit probabilities.

    Finer than the greedy integer: a model that hesitates between 6 and 8 reads as ~7, not as whichever won.
    Scores are two tokens only for 10 ("1" "0"); where the backend read the token after a "1" (always for independent
    slots; for sequential ones when "1" was the chosen digit) it splits P("1") into 10 and 1, whatever the greedy
    score; otherwise the probability of "1" is given to whichever of 1 or 10 is nearer the greedy score.
    Returns None when the probabilities do not line up with the answer (then the greedy scores are used).
    """
    if not digit_probs:
        return None
    by_offset = dict(digit_probs)
    out: dict[str, float] = {}
    for a in anchors:
        m = _score_at(a.id).search(text)
        if m is None or m.end() not in by_offset:
            return None
        probs = by_offset[m.end()]
        g = greedy[a.id]["score"]
        total = sum(probs.values())
        if total <= 0:
            return None
        exp = 0.0
        for digit, p in probs.items():
            d = int(digit)
            if d == 1:
                if m.end() + 1 in by_offset:  # recorded after a "1" was read: P("0" next) splits it into 10 and 1
                    p_zero = by_offset[m.end() + 1].get("0", 0.0)
                    exp += p * (10 * p_zero + 1 * (1 - p_zero))
                    continue
                d = 10 if g >= 6 else 1
            exp += p * d
        out[a.id] = round(exp / total, 4)
    return out

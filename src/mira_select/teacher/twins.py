"""Contrast twins for `mira teacher check`: a clean record next to a deliberately corrupted copy of itself.

A teacher worth hours of labels must score the clean half higher. Twins come from the user's own corpus (its
domains and layouts); each corruption plants one defect a rubric for that format should punish and changes
little else, so a lost pair points at a blind spot. Pure: randomness only from the `random.Random` passed in.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Twin:
    """One contrast pair; `kind` names the corruption so accuracy can be broken down per defect."""

    format: str
    kind: str
    clean_id: str
    clean: str
    corrupted: str


# Varied on purpose (scams, cookie banners, keyword stuffing, footers): one flavour alone is too easy to spot.
SPAM_SNIPPETS: tuple[str, ...] = (
    "CONGRATULATIONS!!! You are today's lucky visitor. Click here to win a FREE iPhone 15 - offer ends soon!",
    "We use cookies to improve your experience. By continuing to browse you agree to our use of cookies. [Accept all]",
    "best cheap flights cheap flights best price cheap flights deals cheap flights online book cheap flights now 2024",
    "Buy followers instantly! 10,000 real Instagram followers for only $4.99. 100% safe, no password. ORDER NOW >>>",
    "Sign up for our newsletter and get 20% OFF your first order! Enter your email below. Terms and conditions apply.",
    "Tags: python tutorial, python tutorial free, learn python fast, best python tutorial, python tutorial pdf",
    "Lose 30 pounds in 30 days with this one weird trick doctors don't want you to know about! Watch the free video.",
    "Copyright (c) All rights reserved. Privacy Policy | Terms of Use | Sitemap | Contact Us | Advertise With Us",
    "Make $5000 a week working from home!!! No experience needed. Limited spots - apply today at www.easy-cash.example",
    "Sponsored: casino bonus, free spins, casino bonus no deposit, free casino bonus codes. Download our app now!",
)


def shuffle_lines(text: str, rng: random.Random) -> str | None:
    """Shuffle line order: each line stays genuine, only coherence is lost, which tells whether the teacher
    reads structure or just vocabulary. Needs >= 8 non-empty lines to be unmistakable."""
    lines = text.split("\n")
    nonempty = sum(1 for ln in lines if ln.strip())
    if nonempty < 8:
        return None
    for _ in range(10):
        out = rng.sample(lines, len(lines))
        # A shuffle that leaves most lines in place still reads as nearly coherent.
        stayed = sum(1 for a, b in zip(lines, out) if a == b and a.strip())
        if out != lines and 2 * stayed <= nonempty:
            return "\n".join(out)
    return None


def splice_spam(text: str, rng: random.Random) -> str | None:
    """Insert 2-4 spam paragraphs into the back half: crawl boilerplate is the commonest web defect, and
    placing it past the opening catches teachers that only skim the start."""
    if len(text.strip()) < 80:
        return None
    sep = "\n\n" if "\n\n" in text.strip() else "\n"
    units = text.split(sep)
    lo = max(1, len(units) // 2)
    for snip in rng.sample(SPAM_SNIPPETS, rng.randint(2, 4)):
        units.insert(rng.randint(lo, len(units)), snip if sep == "\n\n" else f"\n{snip}\n")
    return sep.join(units)


_RESPONSE = re.compile(r"(?m)^(?:#{2,3} ?(?:Response|Answer|Output|Assistant):?|<\|assistant\|>)[ \t]*\n")
_NEXT_TURN = re.compile(r"\n\n(?=<\|[a-z_]+\|>\n|#{2,3} ?(?:Instruction|Input|Human|User)\b)")


def mismatch_answer(text: str, other_text: str, rng: random.Random) -> str | None:
    """Keep this record's instruction, answer another one: fluent and well-formed but off-task, so only a
    teacher that checks relevance (not style) catches it. `rng` only keeps the signatures uniform."""
    split: list[tuple[str, str]] = []
    for t in (text, other_text):  # (prompt incl. the response header, first response body)
        m = _RESPONSE.search(t)
        if m is None or not t[: m.start()].strip():
            return None
        body = t[m.end():]
        split.append((t[: m.end()], body[: nxt.start()] if (nxt := _NEXT_TURN.search(body)) else body))
    (prompt, mine), (_, theirs) = split
    return None if not theirs.strip() or mine.strip() == theirs.strip() else prompt + theirs


_NUM = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?")
_OP = re.compile(r" (<=|>=|==|!=|\+|-|\*|<|>) ")
_OP_SWAP = {"<=": ">", ">=": "<", "==": "!=", "!=": "==", "+": "-", "-": "+", "*": "+", "<": ">=", ">": "<="}
_FENCE = re.compile(r"```[\w+-]*\n(.*?)```", re.S)


def _break_code(code: str, rng: random.Random) -> str:
    """Plausible-looking but wrong code: a dropped return, a flipped operator, or a cut-off body."""
    lines = code.split("\n")
    returns = [i for i, ln in enumerate(lines) if re.match(r"\s*return\b", ln)]
    ops = list(_OP.finditer(code))
    how = rng.choice(["truncate"] + ["drop_return"] * bool(returns) + ["swap_op"] * bool(ops))
    if how == "drop_return":
        i = rng.choice(returns)
        return "\n".join(lines[:i] + lines[i + 1:])
    if how == "swap_op":
        m = rng.choice(ops)
        return f"{code[: m.start(1)]}{_OP_SWAP[m.group(1)]}{code[m.end(1):]}"
    return "\n".join(lines[: max(1, len(lines) // 2)]) + "\n"


def wrong_final_answer(text: str, rng: random.Random) -> str | None:
    """Keep question and reasoning verbatim, make the final answer contradict them: tests whether the
    teacher checks that the answer follows from the trace instead of rewarding a tidy-looking trace.
    Code answers get broken, else the last number moves (offset or x10); other answers are skipped."""
    head, sep, tail = text.rpartition("</think>")
    if not sep:
        return None
    head += sep
    if fences := list(_FENCE.finditer(tail)):
        f = fences[-1]
        if f.group(1).strip() and (broken := _break_code(f.group(1), rng)) != f.group(1):
            return head + tail[: f.start(1)] + broken + tail[f.end(1):]
    if not (nums := list(_NUM.finditer(tail))):
        return None
    m, raw = nums[-1], nums[-1].group().replace(",", "")
    val = float(raw)
    off = rng.randint(1, max(2, int(abs(val) / 2)))
    new = val * 10 if val and rng.random() < 0.25 else val + off * rng.choice([-1, 1] if val > off else [1])
    dec = len(raw.split(".")[1]) if "." in raw else 0
    return head + tail[: m.start()] + (f"{new:,.{dec}f}" if "," in m.group() else f"{new:.{dec}f}") + tail[m.end():]


_TURN = re.compile(r"(?m)^<\|([a-z_]+)\|>\n")
_ACTION = re.compile(r"```(?:bash|sh)\b|<tool_call>|<execute>|\"(?:tool_calls|function_call)\"|"
                     r"(?:^|\\n|\s)(?:Action|ACTION)\s*\d*:", re.M)
_PLAIN_ACT = re.compile(r"(?m)^(?:Action|ACTION)\s*\d*:.*$")
_JSON_BLOCK = re.compile(r"(?m)^( +)\{\n(?:\1 .*\n)+?\1\}")
_JSON_ASSISTANT = re.compile(r'"(role|from|speaker)": "(?:assistant|gpt|ai|model|agent)"')
_JSON_STR_END = re.compile(r'(?m)^ *"\w+": "(?:[^"\\\n]|\\.)*(?=",?$)')
_ERRORS = {
    "shell": ("bash: line 1: syntax error near unexpected token `('", "Error: command failed with exit status 1",
              "FileNotFoundError: [Errno 2] No such file or directory: 'src/main.py'"),
    "tool": ("Internal server error (500)", "Invalid arguments: missing required parameter", "Tool call timed out"),
    "react": ("Invalid action. Valid actions are search[<query>], lookup[<keyword>] and finish[<answer>].",
              "Could not find that page. Please try again.", "Error: request timed out."),
    "alfworld": ("Nothing happened.",)}


def _error(action: str, prev_obs: str, rng: random.Random) -> str:
    """An error reply in the trajectory's own dialect, so the failure loop is the only signal."""
    style = ("shell" if re.search(r"```(?:bash|sh)\b", action) else "alfworld" if "ACTION:" in action
             else "tool" if re.search(r"tool_call|function_call", action) else "react")
    msg = rng.choice(_ERRORS[style])
    if style == "shell":
        return f"<returncode>1</returncode>\n<output>\n{msg}\n</output>"
    if style == "tool":
        tag = re.match(r"\[\w+\] ", prev_obs)  # tau-bench prefixes tool replies with "[tool_name] "
        return (tag.group() if tag else "") + json.dumps({"error": msg})
    prefix = prev_obs.startswith("Observation") or (style == "react" and not prev_obs)
    return f"Observation: {msg}" if prefix else msg


def _repeat_json(text: str, rng: random.Random, n: int) -> str | None:
    """JSON dumps: clone one assistant message object plus an error reply object, drop later turns."""
    blocks = [m for m in _JSON_BLOCK.finditer(text) if _JSON_ASSISTANT.search(m.group())]
    acts = [m for m in blocks if _ACTION.search(m.group())] or blocks[1:] or blocks
    if not acts:
        return None
    m = rng.choice(acts)
    block, ind = m.group(), m.group(1)
    inner = re.match(r" *", block.split("\n")[1]).group()  # type: ignore[union-attr]
    role = _JSON_ASSISTANT.search(block).group(1)  # type: ignore[union-attr]
    key = next((k for k in ("content", "value", "text") if f'"{k}": ' in block), "content")
    reply = f'{ind}{{\n{inner}"{role}": "{"human" if role == "from" else "user"}",\n{inner}"{key}": '
    reply += f"{json.dumps(_error(block, '', rng))}\n{ind}}}"
    # The enclosing list closes one indent step left of its items; keep it so valid JSON stays valid.
    close = re.compile(rf"(?m)^{ind[: 2 * len(ind) - len(inner)]}\]").search(text, m.end())
    rest = "\n" + text[close.start():] if close else ""
    return text[: m.end()] + f",\n{reply},\n{block}" * (n - 1) + f",\n{reply}" + rest


def repeat_failing_call(text: str, rng: random.Random) -> str | None:
    """Make the agent issue one action 3-5 times, each answered by an error, and stop there (the final
    answer is dropped): an agent looping on a failure is what trajectory rubrics exist to catch."""
    n, is_json = rng.randint(3, 5), text.lstrip().startswith(("{", "["))
    if is_json and (out := _repeat_json(text, rng, n)):
        return out
    parts = _TURN.split(text)
    pre, roles, bodies = parts[0], parts[1::2], parts[2::2]
    acts = [i for i, (r, b) in enumerate(zip(roles, bodies)) if r == "assistant" and _ACTION.search(b)]
    if acts:
        # Prefer an action that got a reply: its real observation is what the error replaces.
        i = rng.choice([j for j in acts if j + 1 < len(roles) and roles[j + 1] != "assistant"] or acts)
        replied = i + 1 < len(roles) and roles[i + 1] != "assistant"
        obs_role = roles[i + 1] if replied else ("tool" if "tool_call" in bodies[i] else "user")
        err = _error(bodies[i], bodies[i + 1] if replied else "", rng)
        head = pre + "".join(f"<|{r}|>\n{b}" for r, b in zip(roles[:i], bodies[:i]))
        return head + "\n\n".join([f"<|assistant|>\n{bodies[i].rstrip()}\n\n<|{obs_role}|>\n{err}"] * n)
    if not is_json and (plain := list(_PLAIN_ACT.finditer(text))):
        m = rng.choice(plain)
        err = _error(m.group(), "", rng)
        return text[: m.end()] + f"\n{err}\n{m.group()}" * (n - 1) + f"\n{err}"
    # No recognisable action: splice a synthetic failing call n times into the back half (JSON: in a string).
    name = rng.choice(re.findall(r'"name": "(\w+)"', text) or ["search", "run_command", "lookup", "get_details"])
    unit = f"Action: {name}[]\n{_error('', '', rng)}\n\n"
    if len(roles) > 1:
        err = json.dumps({"error": rng.choice(_ERRORS["tool"])})
        call = json.dumps({"name": name, "arguments": {}})
        unit = f"<|assistant|>\n<tool_call>\n{call}\n</tool_call>\n\n<|tool|>\n{err}\n\n"
        spots = [t.start() for t in _TURN.finditer(text) if t.group(1) == "assistant" and t.start()]
    else:
        spots = [t.end() for t in (_JSON_STR_END if is_json else re.compile(r"\n+")).finditer(text)]
    if not spots:
        return None
    at = rng.choice(spots[len(spots) // 2:])
    block = json.dumps("\n\n" + unit * n)[1:-1] if is_json and len(roles) <= 1 else unit * n
    return text[:at] + block + text[at:]


CORRUPTIONS: dict[str, list[str]] = {
    "text": ["shuffle_lines", "splice_spam"], "code": ["shuffle_lines", "splice_spam"],
    "qa": ["mismatch_answer", "splice_spam"], "qa_think": ["wrong_final_answer"], "agent": ["repeat_failing_call"],
}
_SINGLE = {"shuffle_lines": shuffle_lines, "splice_spam": splice_spam,
           "wrong_final_answer": wrong_final_answer, "repeat_failing_call": repeat_failing_call}


def make_twins(records: list[tuple[str, str, str]], per_format: int, seed: int) -> list[Twin]:
    """Up to `per_format` twins per format from (id, format, text) records. Each format gets its own rng
    (from `seed` and the format name) and an id-sorted pool, so its twins do not shift when other formats or
    the input order change. Kinds are cycled for balance; a record a kind cannot apply to tries the format's
    other kinds before the next record is used."""
    twins: list[Twin] = []
    for fmt in sorted({f for _, f, _ in records if f in CORRUPTIONS}):
        rng = random.Random(f"{seed}:{fmt}")
        pool = sorted((rid, text) for rid, f, text in records if f == fmt)
        kinds, k, made = CORRUPTIONS[fmt], 0, 0
        for rid, text in rng.sample(pool, len(pool)):
            if made >= per_format:
                break
            for step in range(len(kinds)):
                kind = kinds[(k + step) % len(kinds)]
                other = rng.choice(pool)[1]  # mismatch_answer's partner; an unlucky draw just moves on
                bad = mismatch_answer(text, other, rng) if kind == "mismatch_answer" else _SINGLE[kind](text, rng)
                if bad is not None and bad != text:
                    twins.append(Twin(fmt, kind, rid, text, bad))
                    made, k = made + 1, (k + step + 1) % len(kinds)
                    break
    return twins

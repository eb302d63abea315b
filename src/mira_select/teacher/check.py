"""`mira teacher check`: how far can this teacher be trusted on *this* corpus, before labels cost hours?

Contrast twins from the user's own records (a clean record vs. a corrupted copy, per format) are scored on a small
fixed set of general anchors; a teacher worth using scores the clean twin higher. Per format we report pairwise
accuracy (ties count half) and the mean score gap, and warn where accuracy is below the threshold.
"""

from __future__ import annotations

from typing import Any

from ..config import MiraConfig
from ..progress import Reporter
from ..sampling import reservoir_sample
from ..workspace import Workspace, write_json
from .client import Teacher
from .twins import make_twins
from .types import Anchor

# General anchors with their scale described in general terms (never in terms of the corruptions below, which
# would teach the check its own answers), asked in the same scores-only form the label stage uses.
CHECK_ANCHORS = [
    Anchor("overall", "Overall quality", "how valuable the record is as training data overall",
           levels=("worthless as training data", "usable but with clear flaws", "excellent throughout")),
    Anchor("coherence", "Coherence and correctness", "is it internally consistent, well-formed and correct",
           levels=("incoherent, malformed or wrong", "mostly consistent, with some errors",
                   "fully consistent, well-formed and correct")),
    Anchor("usefulness", "Usefulness", "would a model learn a useful skill or fact from it",
           levels=("nothing worth learning", "some useful content among filler or mistakes",
                   "dense with correct, reusable knowledge or skill")),
]
WARN_BELOW = 0.8


def run_check(cfg: MiraConfig, ws: Workspace, per_format: int = 8, seed: int = 0,
              reporter: Reporter | None = None) -> dict[str, Any]:
    reporter = reporter or Reporter()
    pool = reservoir_sample(ws, cfg.source_names, n=per_format * 3, seed=seed, key=lambda s, f: f)
    records = [(r.id, r.format, r.text) for recs in pool.values() for r in recs]
    twins = make_twins(records, per_format=per_format, seed=seed)
    teacher = Teacher(cfg.teacher, ws, stage="teacher_check", tokenizer=cfg.tokenizer, base_dir=cfg.base_dir)
    items = []
    for i, t in enumerate(twins):
        items.append((f"{t.clean_id}", t.format, t.clean))
        items.append((f"{t.clean_id}~{t.kind}~{i}", t.format, t.corrupted))
    with reporter.task(f"teacher check: {len(twins)} twin pairs", total=len(items)) as bar:
        results = teacher.run(lambda rid, fmt, text: teacher.label(rid, fmt, text, CHECK_ANCHORS), items,
                              on_result=lambda r: bar.advance())
    acct = teacher.save_accounting()
    teacher.close()

    per_format_rows: dict[str, dict[str, Any]] = {}
    for i, t in enumerate(twins):
        clean, bad = results[2 * i], results[2 * i + 1]
        row = per_format_rows.setdefault(t.format, {"pairs": 0, "wins": 0.0, "gaps": [], "dead": 0, "kinds": {}})
        if clean.data is None or bad.data is None:
            row["dead"] += 1
            continue
        c = sum(v["score"] for v in clean.data.values()) / len(clean.data)
        b = sum(v["score"] for v in bad.data.values()) / len(bad.data)
        win = 1.0 if c > b else 0.5 if c == b else 0.0
        row["pairs"] += 1
        row["wins"] += win
        row["gaps"].append(c - b)
        k = row["kinds"].setdefault(t.kind, {"pairs": 0, "wins": 0.0})
        k["pairs"] += 1
        k["wins"] += win
    summary: dict[str, Any] = {"model": teacher.model_id, "per_format": {}, "warnings": [], "accounting": acct,
                               "threshold": WARN_BELOW, "seed": seed}
    for fmt, row in sorted(per_format_rows.items()):
        acc = row["wins"] / row["pairs"] if row["pairs"] else None
        summary["per_format"][fmt] = {
            "pairs": row["pairs"], "dead": row["dead"], "accuracy": acc,
            "mean_gap": sum(row["gaps"]) / len(row["gaps"]) if row["gaps"] else None,
            "by_kind": {k: v["wins"] / v["pairs"] for k, v in row["kinds"].items()},
        }
        if acc is None or acc < WARN_BELOW:
            summary["warnings"].append(
                f"{fmt}: the teacher prefers the clean record in only "
                f"{'no' if acc is None else f'{acc:.0%} of'} {row['pairs']} pairs (< {WARN_BELOW:.0%}); "
                "its labels for this format are weak — use a stronger teacher (backend: openai) or treat them with care")
    write_json(ws.root / "teacher" / "check.json", summary)
    return summary

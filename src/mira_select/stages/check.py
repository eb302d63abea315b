"""`mira check`: how much of the teacher's judgment did the finished scorer keep?

Contrast twins (a record next to a copy of itself with one planted defect; teacher/twins.py) are made from records
that were *not* labeled, so nothing here was seen in training. Each pair is ranked by the finished scorer, the
prefilter included: a copy the prefilter's drop rules would remove ranks below its clean twin, as it would in the
selection. Per format and corruption kind: pairwise accuracy (ties count half). Beside it, the teacher's accuracy on
the same pairs, from the teacher cache when the pairs were asked before (``--teacher`` asks it, which costs calls).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pyarrow.parquet as pq

from ..config import MiraConfig
from ..prefilter.rules import record_flags
from ..progress import Reporter
from ..sampling import reservoir_sample
from ..scorer import Scorer
from ..teacher.twins import make_twins
from ..ledger import Ledger, Ref, Unit
from ..workspace import Counts, Workspace, read_json, write_json

STAGE = "check"
SEED_OFFSET = 7919  # twins for the check come from another sample than the teacher check's
LOGIC_VERSION = 3  # bumped when scorer.json changes (2: every pair listed in pair_results; 3: 95 % intervals)


@dataclass
class Pair:
    format: str
    kind: str
    source: str
    clean_id: str
    clean: str
    corrupted: str


def labeled_ids(ws: Workspace) -> set[str]:
    ids: set[str] = set()
    for path in (ws.root / "labels").glob("*/*.parquet"):
        ids.update(i.split("~")[0] for i in pq.read_table(path, columns=["id"]).column("id").to_pylist())
    return ids


def make_pairs(cfg: MiraConfig, ws: Workspace, per_format: int, seed: int) -> list[Pair]:
    exclude = labeled_ids(ws)
    pool = reservoir_sample(ws, cfg.source_names, n=per_format * 4, seed=seed + SEED_OFFSET, key=lambda s, f: f)
    records = [r for recs in pool.values() for r in recs if r.id not in exclude]
    source_of = {r.id: r.source for r in records}
    twins = make_twins([(r.id, r.format, r.text) for r in records], per_format=per_format, seed=seed)
    return [Pair(t.format, t.kind, source_of[t.clean_id], t.clean_id, t.clean, t.corrupted) for t in twins]


def wilson_interval(wins: float, n: int, z: float = 1.96) -> tuple[float, float] | None:
    """95 % Wilson score interval of a pairwise accuracy: what 24 pairs can and cannot tell apart (0.88 on 24 pairs
    is 0.69-0.96). Ties count half a win, so ``wins`` may be fractional, which scipy's binomtest does not take."""
    if n <= 0:
        return None
    p, z2 = wins / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)


def _dropped(text: str, fmt: str, cfg: MiraConfig) -> bool:
    if not cfg.prefilter.enabled:
        return False
    rules = cfg.prefilter.rules
    return any(getattr(rules, r).action == "drop" for r in record_flags(text, fmt, cfg.prefilter))


def check_unit(cfg: MiraConfig, ws: Workspace, per_format: int, seed: int) -> Unit:
    """What the check's answer depends on: the records, the students (and, through them, the labels), the prefilter
    rules (they decide which twins are dropped) and the check's own settings."""
    from .group import group_members

    ledger = Ledger(ws)
    groups = group_members(ws, cfg)
    return ledger.unit(STAGE, "scorer", {
        "per_format": per_format, "seed": seed, "trim": cfg.student.trim, "logic": LOGIC_VERSION,
        "config.prefilter": cfg.prefilter.model_dump(mode="json"),
        "records": {s: Ref("ingest", f"{s}/_source") for s in cfg.source_names},
        "students": {g: Ref("train", g) for g in groups},
        "labels": {g: Ref("label", f"{g}/_final") for g in groups},
    }, [ws.root / "check" / "scorer.json"])


def run_scorer_check(cfg: MiraConfig, ws: Workspace, per_format: int | None = None, seed: int | None = None,
                     with_teacher: int = 0, reporter: Reporter | None = None,
                     force: bool = False) -> dict[str, Any]:
    """-> the check's figures (also ``check/scorer.json``); reused when nothing it depends on changed.

    ``per_format`` / ``seed``: None takes ``check.pairs_per_format`` / ``check.seed`` from the config.

    ``with_teacher``: pairs per format the teacher is asked about (its cache answers the rest where it can). Every
    pair is listed too (``pair_results``: ids, both scores, the teacher's where known), so a lost pair can be read."""
    reporter = reporter or Reporter()
    per_format = cfg.check.pairs_per_format if per_format is None else per_format
    seed = cfg.check.seed if seed is None else seed
    unit = check_unit(cfg, ws, per_format, seed)
    path = ws.root / "check" / "scorer.json"
    ledger = Ledger(ws)
    if not force and not with_teacher and ledger.is_current(unit):
        return {**read_json(path), "skipped": True}
    pairs = make_pairs(cfg, ws, per_format, seed)
    scorer = Scorer(ws, trim=cfg.student.trim)
    texts = [t for p in pairs for t in (p.clean, p.corrupted)]
    sources = [p.source for p in pairs for _ in (0, 1)]
    with reporter.task(f"check: score {len(pairs)} twin pairs", total=1) as bar:
        scores = scorer.score(texts, sources) if texts else []
        bar.advance()
    teacher = _teacher_scores(cfg, ws, pairs, with_teacher, reporter)
    rows: dict[str, dict[str, Any]] = {}
    listed: list[dict[str, Any]] = []
    for i, p in enumerate(pairs):
        c, b = float(scores[2 * i]), float(scores[2 * i + 1])
        if _dropped(p.corrupted, p.format, cfg) and not _dropped(p.clean, p.format, cfg):
            b = float("-inf")
        win = 1.0 if c > b else 0.5 if c == b else 0.0
        row = rows.setdefault(p.format, {"pairs": 0, "wins": 0.0, "kinds": {}, "teacher_pairs": 0,
                                         "teacher_wins": 0.0})
        k = row["kinds"].setdefault(p.kind, {"pairs": 0, "wins": 0.0, "teacher_pairs": 0, "teacher_wins": 0.0})
        for r in (row, k):
            r["pairs"] += 1
            r["wins"] += win
        t = teacher.get(i)
        listed.append({"format": p.format, "kind": p.kind, "source": p.source, "clean_id": p.clean_id,
                       "scorer": [round(c, 4), None if b == float("-inf") else round(b, 4)],
                       "dropped_by_prefilter": b == float("-inf"), "scorer_win": win,
                       "teacher": None if t is None else [round(float(x), 4) for x in t]})
        if t is not None:
            tw = 1.0 if t[0] > t[1] else 0.5 if t[0] == t[1] else 0.0
            for r in (row, k):
                r["teacher_pairs"] += 1
                r["teacher_wins"] += tw
    out: dict[str, Any] = {"per_format": {}, "pairs": len(pairs), "seed": seed,
                           "teacher": f"asked on {with_teacher} pairs per format" if with_teacher else "cache only"}
    for fmt, row in sorted(rows.items()):
        out["per_format"][fmt] = {
            "pairs": row["pairs"], "accuracy": row["wins"] / row["pairs"],
            "accuracy_ci95": wilson_interval(row["wins"], row["pairs"]),
            "teacher_pairs": row["teacher_pairs"],
            "teacher_accuracy": row["teacher_wins"] / row["teacher_pairs"] if row["teacher_pairs"] else None,
            "by_kind": {k: {"pairs": v["pairs"], "accuracy": v["wins"] / v["pairs"],
                            "teacher_accuracy": v["teacher_wins"] / v["teacher_pairs"] if v["teacher_pairs"]
                            else None} for k, v in sorted(row["kinds"].items())},
        }
    out["pair_results"] = listed
    write_json(path, out)
    ledger.record(unit, Counts(2 * len(pairs), 2 * len(pairs), 0, 0))
    return {**out, "skipped": False}


def _teacher_scores(cfg: MiraConfig, ws: Workspace, pairs: list[Pair], ask: int,
                    reporter: Reporter) -> dict[int, tuple[float, float]]:
    """Pair index -> (clean, corrupted) mean teacher score on the general check anchors. The first ``ask`` pairs of
    each format go to the configured teacher; the others are answered from its cache only (a miss is no answer)."""
    from ..teacher.check import CHECK_ANCHORS
    from ..teacher.client import Teacher

    replay = cfg.teacher.model_copy(update={"backend": "replay", "replay_as": cfg.teacher.backend
                                            if cfg.teacher.backend != "replay" else cfg.teacher.replay_as})
    seen: dict[str, int] = {}
    asked = []
    for p in pairs:
        seen[p.format] = seen.get(p.format, 0) + 1
        asked.append(seen[p.format] <= ask)
    results: dict[int, Any] = {}
    for live in (True, False):
        idx = [i for i, a in enumerate(asked) if a == live]
        if not idx:
            continue
        teacher = Teacher(cfg.teacher if live else replay, ws, stage="check", tokenizer=cfg.tokenizer,
                          base_dir=cfg.base_dir)
        items = []
        for i in idx:
            p = pairs[i]
            items += [(p.clean_id, p.format, p.clean), (f"{p.clean_id}~{p.kind}~{i}", p.format, p.corrupted)]
        try:
            with reporter.task(f"check: teacher on {len(idx)} pairs ({'asked' if live else 'cache only'})",
                               total=len(items)) as bar:
                got = teacher.run(lambda rid, fmt, text: teacher.label(rid, fmt, text, CHECK_ANCHORS), items,
                                  on_result=lambda r: bar.advance())
        finally:
            teacher.close()
        for k, i in enumerate(idx):
            results[2 * i], results[2 * i + 1] = got[2 * k], got[2 * k + 1]
    out = {}
    for i in range(len(pairs)):
        a, b = results[2 * i], results[2 * i + 1]
        if a.data is not None and b.data is not None:
            out[i] = (sum(v["score"] for v in a.data.values()) / len(a.data),
                      sum(v["score"] for v in b.data.values()) / len(b.data))
    return out

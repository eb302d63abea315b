"""Does the record cut decide a long record's label? Re-label a source's records at several cuts and compare.

The teacher sees a record cut head + tail to ``label.max_record_tokens`` (the middle marked omitted). For a source
whose records are mostly longer than the cut, the label may judge the view rather than the record. This script takes
N real labeled records of each named source, spread evenly over their token counts, sends the group's scores-only
label prompt again at every cut given (same rubric, read-out and prompt family; a workspace of its own, so no warm
cache), and prints per source and cut: the share of records cut, the mean label over the active anchors, its
Spearman with the token count, and the Spearman between the cuts' labels. If the labels at a short cut rank records
nearly independently of the labels of the (almost) whole records, the short cut is deciding them.

    python bench/label_cut.py --group qa_think --source think_leetcode_doocs -n 30 --cuts 256 1024 \
        --workspace /tmp/label-cut [--no-count]

``--no-count`` also asks at the first cut with an omission marker that states no token count ("[... middle
omitted ...]"): whether the number itself sways the teacher.

Measured (2026-12-08, demo, embedded 1.5B, qa_think rubric, 30 think_leetcode_doocs records, 258-2,091 tokens;
`--cuts 256 1024 --no-count`, 6 min 33 s, 60 calls + 30 cache hits): at 256 tokens every record is cut, mean label
5.54, Spearman(label, tokens) -.31; without the count in the marker 5.47 / -.41 (Spearman with the first .93: the
number is not it); at 1024 (the product default; 87 % of these records whole) 6.09 / +.56, and Spearman with the
256-token labels .10: the short cut decides the ranking. Whole-record labels are not the fix on this demo either:
relabeling qa_think's 300 records over 256 tokens at 1024 took the student from rho .660 to .530 and its masked
cells from 54 to 75 % (README, `mira label`), so the demo keeps 256 and the report flags the mostly cut sources.
Not every mostly cut source: 20 records each, 256 vs 1024, Spearman between the cuts' labels .88 for code_python_pypi
(5-7,296 tokens, 65 % cut at 256; 7 min 8 s) and .88 for agent_glaive_toolcall (183-1,907 tokens, 80 % cut; 8 min).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from teacher_retest import REPO, relabel_setup  # noqa: E402

from mira_select.teacher import prompts  # noqa: E402
from mira_select.teacher.client import Teacher  # noqa: E402
from mira_select.workspace import Workspace  # noqa: E402

_MARKER = re.compile(r"\n\[\.\.\. \d+ tokens omitted \.\.\.\]\n")


def spread_over_length(rows: list[dict], n: int) -> list[dict]:
    """``n`` rows evenly spaced over the rows' token counts (shortest and longest included)."""
    rows = sorted(rows, key=lambda r: r["n_tokens"])
    idx = np.unique(np.linspace(0, len(rows) - 1, min(n, len(rows))).round().astype(int))
    return [rows[i] for i in idx]


def relabel(cfg, anchors, rows, texts, fmt, cut: int, workspace: Path, no_count: bool) -> np.ndarray:
    """Mean label over the active anchors of each row at ``cut`` (NaN where the teacher gave no usable answer)."""
    tc = cfg.teacher.model_copy(update={"warm_cache": None, "max_record_tokens": cut})
    teacher = Teacher(tc, Workspace(workspace), stage="label-cut", tokenizer=cfg.tokenizer)
    original = prompts.truncate_tokens
    if no_count:
        prompts.truncate_tokens = lambda *a, **k: _MARKER.sub("\n[... middle omitted ...]\n", original(*a, **k))
    try:
        results = teacher.run(lambda i, f, x: teacher.label(i, f, x, anchors),
                              [(r["id"], fmt, texts[r["id"]]) for r in rows])
    finally:
        prompts.truncate_tokens = original
        teacher.close()
    print(f"    ({teacher.acct.calls} calls, {teacher.acct.cache_hits} cache hits)")
    return np.array([np.mean([q.data[a.id]["score"] for a in anchors]) if q.data else np.nan for q in results])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-c", "--config", default=str(REPO / "data" / "demo" / "mira.yaml"))
    ap.add_argument("--group", required=True)
    ap.add_argument("--source", action="append", required=True, help="a source of the group (repeatable)")
    ap.add_argument("-n", type=int, default=30, help="records per source, spread over their token counts")
    ap.add_argument("--cuts", type=int, nargs="+", default=[256, 1024])
    ap.add_argument("--no-count", action="store_true", help="also the first cut with a marker without the count")
    ap.add_argument("--workspace", required=True, help="the bench's own cache and secret (reuse: 0 calls)")
    args = ap.parse_args()
    cfg, anchors, rows, texts, fmt, teacher = relabel_setup(Path(args.config), args.group, 0, 10**9,
                                                            args.workspace, "label-cut")
    teacher.close()
    runs = [(cut, False) for cut in args.cuts] + ([(args.cuts[0], True)] if args.no_count else [])
    for source in args.source:
        picked = spread_over_length([r for r in rows if r["source"] == source], args.n)
        tokens = np.array([r["n_tokens"] for r in picked])
        print(f"{source}: {len(picked)} records, {tokens.min()}-{tokens.max()} tokens")
        labels = {}
        for cut, no_count in runs:
            name = f"{cut}{' no count' if no_count else ''}"
            labels[name] = y = relabel(cfg, anchors, picked, texts, fmt, cut, Path(args.workspace), no_count)
            ok = ~np.isnan(y)
            print(f"  cut {name:<14} cut share {np.mean(tokens > cut):.2f}  mean label {np.nanmean(y):.2f}  "
                  f"rho(label, tokens) {spearmanr(y[ok], tokens[ok])[0]:+.2f}")
        names = list(labels)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                ok = ~np.isnan(labels[a]) & ~np.isnan(labels[b])
                print(f"  rho(labels at {a}, at {b}) {spearmanr(labels[a][ok], labels[b][ok])[0]:.2f}")


if __name__ == "__main__":
    main()

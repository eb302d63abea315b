"""Rich tables the commands print (manifest, prefilter, selection, check, run summary, teacher accounting)."""

from __future__ import annotations

from .common import console


def print_prefilter(summary: dict) -> None:
    """Per source x rule: records the rule fired on (d = dropped by it), input = kept + dropped; and the records
    the contamination guard flagged (excluded from every selection, dropped or not)."""
    from rich.table import Table

    fired = sorted({r for s in summary["sources"].values() for r in s["fired"]})
    table = Table(title="prefilter: records per rule (d = dropped by it)")
    for col in ("source", "input", "kept", "dropped", "contaminated", *fired):
        table.add_column(col, justify="left" if col == "source" else "right")
    for name, s in summary["sources"].items():
        cells = [f"{s['fired'].get(r, 0):,}" + (f" d{s['dropped_by'][r]:,}" if s["dropped_by"].get(r) else "")
                 if s["fired"].get(r) else "" for r in fired]
        table.add_row(name, f"{s['input']:,}", f"{s['kept']:,}", f"{s['dropped']:,}", f"{s['contaminated']:,}",
                      *cells)
    t = summary["totals"]
    table.add_row("[bold]total", f"{t['input']:,}", f"{t['kept']:,}", f"{t['dropped']:,}", f"{t['contaminated']:,}",
                  *[f"{sum(s['fired'].get(r, 0) for s in summary['sources'].values()):,}" for r in fired])
    console.print(table)
    console.print(f"near-duplicate clusters: {summary['near_dup_clusters']:,}; actions: "
                  + ", ".join(f"{r}={a}" for r, a in summary["actions"].items() if a != "flag"))


def print_manifest(m: dict) -> None:
    from rich.table import Table

    table = Table(title=f"manifest (tokenizer {m['tokenizer']['name']})", show_lines=False)
    for col in ("source", "format", "files", "records", "tokens", "MB", "quarantined", "dropped"):
        table.add_column(col, justify="left" if col in ("source", "format") else "right")
    for name, s in m["sources"].items():
        fmt = s["format"] or "-"
        if len(s["formats"]) > 1:
            fmt += f" ({s['formats'][s['format']] / max(s['records'], 1):.0%})"
        table.add_row(name, fmt, str(len(s["files"])), f"{s['records']:,}", f"{s['tokens']:,}",
                      f"{s['bytes'] / 1e6:.1f}", f"{s['quarantined']:,}", f"{s['dropped']:,}")
    t = m["totals"]
    table.add_row("[bold]total", "", "", f"{t['records']:,}", f"{t['tokens']:,}", f"{t['bytes'] / 1e6:.1f}",
                  f"{t['quarantined']:,}", f"{t['dropped']:,}")
    console.print(table)


def selection_table(summary: dict, unit: str = "per_group", note: str = ""):
    """Records / tokens in and kept per group (or per source) of a selection summary, with the total row."""
    from rich.table import Table

    name = unit.removeprefix("per_")
    table = Table(title=f"selection {summary['variant']} at {summary['fraction']:.0%} of tokens — {name}{note}")
    for col in (name, "records", "tokens in", "kept records", "kept tokens", "kept share"):
        table.add_column(col, justify="left" if col == name else "right")
    rows = sorted(summary[unit].items()) + [("[bold]total", summary["totals"])]
    for label, d in rows:
        table.add_row(label, f"{d['records']:,}", f"{d['tokens']:,}", f"{d['kept_records']:,}",
                      f"{d['kept_tokens']:,}", f"{d['kept_tokens'] / max(d['tokens'], 1):.1%}")
    return table


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def _mask(cfg, group: str) -> dict:
    from ..workspace import Workspace, read_json

    return read_json(Workspace(cfg.workspace_path).root / "students" / group / "mask.json")


def print_accounting(console, teacher) -> None:
    """What this run cost in teacher calls (also in ws/teacher/accounting.json)."""
    if teacher is None:
        console.print("teacher: not needed (every unit was already complete)")
        return
    a = teacher.acct
    console.print(f"teacher ({teacher.model_id}): {a.requests} requests = {a.ok} ok + {a.repaired} repaired "
                  f"+ {a.dead} unusable after repair (dead-lettered or rejected); {a.calls} calls, {a.cache_hits} cache hits, "
                  f"{a.prompt_tokens:,} prompt + {a.completion_tokens:,} completion tokens, {a.wall_s:.0f}s")


def print_run_summary(console, summary) -> None:
    from rich.table import Table

    stages = Table(title="mira run" + ("" if summary.did_work else " — nothing to do, every stage up to date"))
    for col in ("stage", "state", "seconds", "teacher calls", "detail"):
        stages.add_column(col, justify="right" if col in ("seconds", "teacher calls") else "left")
    for s in summary.stages:
        stages.add_row(s.stage, "ran" if s.did_work else "up to date", f"{s.seconds:.1f}",
                       str(s.teacher["calls"]) if s.teacher else "0", s.detail)
    console.print(stages)
    t = summary.teacher_totals()
    console.print(f"teacher this run: {t['requests']} requests, {t['calls']} calls, {t['cache_hits']} cache hits, "
                  f"{t['dead']} unusable after repair, {t['prompt_tokens']:,} prompt + {t['completion_tokens']:,} completion tokens")
    sel = summary.selection
    if not sel:
        return
    for unit in ("per_group", "per_source"):
        console.print(selection_table(sel, unit))
    if len(summary.variants) > 1:
        groups = sorted(next(iter(summary.variants.values())))
        table = Table(title="kept-token share per group, every selected variant")
        for col in ("variant", *groups):
            table.add_column(col, justify="left" if col == "variant" else "right")
        for v, shares in summary.variants.items():
            table.add_row(v, *[f"{shares.get(g, 0):.1%}" for g in groups])
        console.print(table)
    if summary.check:
        print_check(console, summary.check)


def print_check(console, r: dict) -> None:
    from rich.table import Table

    table = Table(title=f"mira check: scorer vs teacher on {r['pairs']} held-out twin pairs (teacher: {r['teacher']})")
    for col in ("format", "pairs", "scorer acc.", "95 % interval", "teacher acc. (pairs)",
                "by corruption: scorer / teacher"):
        table.add_column(col, justify="left" if col in ("format", "by corruption: scorer / teacher") else "right")

    def f(x):
        return "-" if x is None else f"{x:.2f}"

    for fmt, v in r["per_format"].items():
        kinds = ", ".join(f"{k} {f(d['accuracy'])}/{f(d['teacher_accuracy'])}" for k, d in v["by_kind"].items())
        ci = v.get("accuracy_ci95")  # absent in a scorer.json written before check logic 3
        table.add_row(fmt, str(v["pairs"]), f(v["accuracy"]), f"{f(ci[0])}-{f(ci[1])}" if ci else "-",
                      f"{f(v['teacher_accuracy'])} ({v['teacher_pairs']})", kinds)
    console.print(table)

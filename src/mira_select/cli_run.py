"""`mira run` (the whole pipeline, resumable) and `mira report` (one self-contained HTML page)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .config import load_config


def register(app: typer.Typer, console, err_console, config_opt) -> None:
    @app.command()
    def run(
        config: Path = config_opt,
        until: Optional[str] = typer.Option(None, "--until", help="Last stage to run (default: select, or eval)."),
        from_: Optional[str] = typer.Option(None, "--from", help="First stage to run (earlier ones must be done)."),
        with_eval: bool = typer.Option(False, "--eval", help="Also run `mira eval` after select."),
        workers: Optional[int] = typer.Option(None, "--workers", "-w", help="Parallel workers."),
        report: bool = typer.Option(True, "--report/--no-report", help="Write report/index.html at the end."),
    ) -> None:
        """ingest → group → discover → label → train → score → select (→ eval); finished stages are skipped."""
        from .pipeline import Pipeline
        from .progress import RichReporter

        cfg = load_config(config)

        def on_stage(r) -> None:
            state = "[green]done[/green]" if r.did_work else "[dim]up to date[/dim]"
            calls = f", {r.teacher['calls']} teacher calls" if r.teacher else ""
            console.print(f"[bold]{r.stage:>8}[/bold] {state} in {r.seconds:.1f}s{calls} — {r.detail}",
                          highlight=False)

        summary = Pipeline(cfg, RichReporter(err_console), workers, on_stage).run(from_, until, with_eval)
        print_run_summary(console, summary)
        if report and any(s.stage == "select" for s in summary.stages):
            from .report import write_report

            path = write_report(cfg)
            console.print(f"report: {path}")

    @app.command()
    def report(
        config: Path = config_opt,
        out: Optional[Path] = typer.Option(None, "--out", "-o", help="Where to write (default ws/report/index.html)."),
    ) -> None:
        """Render the workspace as one self-contained HTML page (plots inline; no network needed to open it)."""
        from .report import write_report

        path = write_report(load_config(config), out)
        console.print(f"report: {path}")


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
                  f"{t['dead']} dead, {t['prompt_tokens']:,} prompt + {t['completion_tokens']:,} completion tokens")
    sel = summary.selection
    if not sel:
        return
    from .cli_select import selection_table

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
    for col in ("format", "pairs", "scorer acc.", "teacher acc. (pairs)", "by corruption: scorer / teacher"):
        table.add_column(col, justify="left" if col in ("format", "by corruption: scorer / teacher") else "right")

    def f(x):
        return "-" if x is None else f"{x:.2f}"

    for fmt, v in r["per_format"].items():
        kinds = ", ".join(f"{k} {f(d['accuracy'])}/{f(d['teacher_accuracy'])}" for k, d in v["by_kind"].items())
        table.add_row(fmt, str(v["pairs"]), f(v["accuracy"]), f"{f(v['teacher_accuracy'])} ({v['teacher_pairs']})",
                      kinds)
    console.print(table)

"""`mira run` (the whole pipeline, resumable) and `mira report` (one self-contained HTML page)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..config import load_config
from .common import ConfigOpt, app, console, err_console
from .tables import print_run_summary


@app.command()
def run(
    config: Path = ConfigOpt,
    until: Optional[str] = typer.Option(None, "--until", help="Last stage to run (default: select, or eval)."),
    from_: Optional[str] = typer.Option(None, "--from", help="First stage to run (earlier ones must be done)."),
    with_eval: bool = typer.Option(False, "--eval", help="Also run `mira eval` after select."),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", help="Parallel workers."),
    report: bool = typer.Option(True, "--report/--no-report", help="Write report/index.html at the end."),
) -> None:
    """ingest → group → discover → label → train → score → select (→ eval); finished stages are skipped."""
    from ..pipeline import Pipeline
    from ..progress import RichReporter

    cfg = load_config(config)

    def on_stage(r) -> None:
        state = "[green]done[/green]" if r.did_work else "[dim]up to date[/dim]"
        calls = f", {r.teacher['calls']} teacher calls" if r.teacher else ""
        console.print(f"[bold]{r.stage:>8}[/bold] {state} in {r.seconds:.1f}s{calls} — {r.detail}",
                      highlight=False)

    summary = Pipeline(cfg, RichReporter(err_console), workers, on_stage).run(from_, until, with_eval)
    print_run_summary(console, summary)
    if report and any(s.stage == "select" for s in summary.stages):
        from ..report import write_report

        path = write_report(cfg)
        console.print(f"report: {path}")

@app.command()
def report(
    config: Path = ConfigOpt,
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Where to write (default ws/report/index.html)."),
) -> None:
    """Render the workspace as one self-contained HTML page (plots inline; no network needed to open it)."""
    from ..report import write_report

    path = write_report(load_config(config), out)
    console.print(f"report: {path}")

"""`mira teacher ...`: inspect the configured teacher before it labels anything."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

teacher_app = typer.Typer(help="The teacher LLM: trust check and accounting.", no_args_is_help=True)
console = Console(width=None if sys.stdout.isatty() else 160, soft_wrap=True)


@teacher_app.command("check")
def check(
    config: Path = typer.Option(Path("mira.yaml"), "--config", "-c", help="Path to mira.yaml."),
    per_format: int = typer.Option(8, "--per-format", "-n", help="Contrast pairs per format."),
    seed: int = typer.Option(0, help="Sampling and corruption seed."),
) -> None:
    """Score clean vs. corrupted twins of your own records; report per-format pairwise accuracy and score gap."""
    from ..config import load_config
    from ..progress import RichReporter
    from ..teacher.check import run_check
    from ..workspace import Workspace

    cfg = load_config(config)
    ws = Workspace(cfg.workspace_path)
    ws.manifest()  # fails with a clear message when ingest has not run
    summary = run_check(cfg, ws, per_format=per_format, seed=seed, reporter=RichReporter())
    table = Table(title=f"teacher check — {summary['model']}")
    for col in ("format", "pairs", "accuracy", "mean gap", "by corruption", "dead"):
        table.add_column(col)
    for fmt, row in summary["per_format"].items():
        acc = "-" if row["accuracy"] is None else f"{row['accuracy']:.2f}"
        gap = "-" if row["mean_gap"] is None else f"{row['mean_gap']:+.2f}"
        kinds = ", ".join(f"{k} {v:.2f}" for k, v in row["by_kind"].items())
        table.add_row(fmt, str(row["pairs"]), acc, gap, kinds, str(row["dead"]))
    console.print(table)
    a = summary["accounting"]
    console.print(f"calls {a['calls']}, cache hits {a['cache_hits']}, prompt tokens {a['prompt_tokens']:,}, "
                  f"completion tokens {a['completion_tokens']:,}, wall {a['wall_s']:.0f}s")
    for w in summary["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {w}", highlight=False)

"""`mira` command line. Each command is a thin shell over a stage: load config, run, print a summary.

User mistakes (MiraError) print one red line and exit 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from .config import load_config
from .errors import MiraError

app = typer.Typer(
    help="MIRA data selection: ingest → group → discover → label → train → score → select → report.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
from .cli_models import models_app  # noqa: E402
from .cli_teacher import teacher_app  # noqa: E402

app.add_typer(models_app, name="models")
app.add_typer(teacher_app, name="teacher")
console = Console()
err_console = Console(stderr=True)
_state = {"debug": False}

ConfigOpt = typer.Option(Path("mira.yaml"), "--config", "-c", help="Path to mira.yaml.")


@app.callback()
def _main(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors.")) -> None:
    _state["debug"] = debug


@app.command()
def ingest(
    config: Path = ConfigOpt,
    workers: Optional[int] = typer.Option(None, "--workers", "-w", help="Worker processes (1 = in-process)."),
    force: bool = typer.Option(False, "--force", help="Redo every file even if its shard is complete."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Read every source into normalized record shards, a quarantine file per source and manifest.json."""
    from .executor import make_executor
    from .progress import Reporter, RichReporter
    from .stages.ingest import IngestStage

    cfg = load_config(config)
    with make_executor(cfg.executor, workers) as executor:
        stage = IngestStage(cfg, executor=executor, reporter=Reporter() if quiet else RichReporter(err_console))
        result = stage.run(force=force)
    if not result.did_work:
        console.print(f"ingest: nothing to do — {len(result.manifest['sources'])} source(s) already complete "
                      f"in {stage.ws.root}")
    else:
        console.print(f"ingest: {result.files_done} file(s) processed, {result.files_skipped} already complete, "
                      f"{result.seconds:.1f}s")
    print_manifest(result.manifest)


@app.command()
def group(
    config: Path = ConfigOpt,
    force: bool = typer.Option(False, "--force", help="Recompute even if groups.json is current."),
) -> None:
    """Cluster sources into capability groups (embedding centroids, KMeans); writes groups.json."""
    from .progress import RichReporter
    from .stages.group import GroupStage, load_groups

    cfg = load_config(config)
    stage = GroupStage(cfg, reporter=RichReporter(err_console))
    result = stage.run(force=force)
    info = load_groups(stage.ws)
    console.print(f"group: {'up to date' if result.skipped else 'computed'} — {len(result.groups)} group(s), "
                  f"embedder {info['embedder']}{', overridden by config' if info['overridden'] else ''}")
    for name, members in result.groups.items():
        console.print(f"  [bold]{name}[/bold] ({len(members)}): {', '.join(members)}")


@app.command()
def manifest(config: Path = ConfigOpt) -> None:
    """Show the manifest of the workspace named in the config."""
    from .workspace import Workspace

    cfg = load_config(config)
    print_manifest(Workspace(cfg.workspace_path).manifest())


@app.command()
def init(
    paths: list[str] = typer.Argument(..., help="Input files, globs or directories; one source per entry."),
    out: Path = typer.Option(Path("mira.yaml"), "--out", "-o", help="Where to write the config."),
    workspace: str = typer.Option("ws", help="Workspace directory (relative to the config)."),
) -> None:
    """Write a starter mira.yaml with one source per input path."""
    import yaml

    if out.exists():
        raise MiraError(f"{out} already exists; remove it or pass --out")
    sources = []
    for p in paths:
        stem = Path(p.rstrip("/")).name
        for suffix in (".zst", ".zstd", ".gz", ".bz2", ".xz", ".jsonl", ".json", ".ndjson", ".parquet"):
            stem = stem.removesuffix(suffix)
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-") or f"source{len(sources)}"
        sources.append({"name": name, "paths": [p]})
    out.write_text(yaml.safe_dump({"workspace": workspace, "sources": sources}, sort_keys=False))
    console.print(f"wrote {out} with {len(sources)} source(s)")


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


def main() -> None:
    try:
        app()
    except MiraError as exc:
        if _state["debug"]:
            raise
        err_console.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/yellow]; re-run the same command to resume")
        sys.exit(130)


if __name__ == "__main__":
    main()

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

from .cli_select import print_accounting
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
# Piped output (CI logs, `make demo | tee`) would otherwise wrap tables at 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160, soft_wrap=True)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
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
def prefilter(
    config: Path = ConfigOpt,
    workers: int = typer.Option(None, "-w", "--workers", help="Parallel workers (default: executor.workers)."),
    force: bool = typer.Option(False, "--force", help="Re-run every shard even if current."),
) -> None:
    """Cheap rules per format and exact/near dedup; writes prefilter/ sidecars (dropped records are never selected)."""
    from .executor import make_executor
    from .progress import RichReporter
    from .stages.prefilter import PrefilterStage

    cfg = load_config(config)
    with make_executor(cfg.executor, workers) as executor:
        result = PrefilterStage(cfg, executor=executor, reporter=RichReporter(err_console)).run(force=force)
    console.print(f"prefilter: {result.shards_done} shard(s) processed, {result.shards_skipped} already current, "
                  f"{result.seconds:.1f}s")
    print_prefilter(result.summary)


@app.command()
def check(
    config: Path = ConfigOpt,
    per_format: int = typer.Option(24, "--per-format", "-n", help="Twin pairs per format."),
    teacher: int = typer.Option(0, "--teacher", help="Ask the teacher about this many pairs per format (costs "
                                                      "calls; the rest come from its cache where they can)."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Held-out contrast twins ranked by the finished scorer (prefilter included), beside the teacher."""
    from .cli_run import print_check
    from .progress import RichReporter
    from .stages.check import run_scorer_check
    from .workspace import Workspace

    cfg = load_config(config)
    r = run_scorer_check(cfg, Workspace(cfg.workspace_path), per_format=per_format, seed=seed, with_teacher=teacher,
                         reporter=RichReporter(err_console), force=True)
    print_check(console, r)


def print_prefilter(summary: dict) -> None:
    """Per source x rule: records the rule fired on (dropped ones in bold), input = kept + dropped."""
    from rich.table import Table

    fired = sorted({r for s in summary["sources"].values() for r in s["fired"]})
    table = Table(title="prefilter: records per rule (d = dropped by it)")
    for col in ("source", "input", "kept", "dropped", *fired):
        table.add_column(col, justify="left" if col == "source" else "right")
    for name, s in summary["sources"].items():
        cells = [f"{s['fired'].get(r, 0):,}" + (f" d{s['dropped_by'][r]:,}" if s["dropped_by"].get(r) else "")
                 if s["fired"].get(r) else "" for r in fired]
        table.add_row(name, f"{s['input']:,}", f"{s['kept']:,}", f"{s['dropped']:,}", *cells)
    t = summary["totals"]
    table.add_row("[bold]total", f"{t['input']:,}", f"{t['kept']:,}", f"{t['dropped']:,}",
                  *[f"{sum(s['fired'].get(r, 0) for s in summary['sources'].values()):,}" for r in fired])
    console.print(table)
    console.print(f"near-duplicate clusters: {summary['near_dup_clusters']:,}; actions: "
                  + ", ".join(f"{r}={a}" for r, a in summary["actions"].items() if a != "flag"))


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
def discover(
    config: Path = ConfigOpt,
    force: bool = typer.Option(False, "--force", help="Rediscover even if the rubric is current."),
) -> None:
    """Teacher judges sampled records free-form; clustered judgments become each group's anchors (rubrics/)."""
    from .progress import RichReporter
    from .stages.discover import DiscoverStage

    cfg = load_config(config)
    stage = DiscoverStage(cfg, reporter=RichReporter(err_console))
    result = stage.run(force=force)
    for group, rubric in result.rubrics.items():
        state = "up to date" if group in result.skipped else f"{rubric['n_judged']}/{rubric['n_records']} judged"
        console.print(f"  [bold]{group}[/bold]: {len(rubric['anchors'])} anchors from {rubric['n_points']} "
                      f"judgment points ({state})")
        for note in rubric["notes"]:
            console.print(f"    [yellow]note:[/yellow] {note}", highlight=False)
    print_accounting(console, stage._teacher)


@app.command()
def label(
    config: Path = ConfigOpt,
    force: bool = typer.Option(False, "--force", help="Relabel (the teacher cache still answers)."),
) -> None:
    """Teacher scores a stratified sample of each group on every anchor; writes labels/<group>/{train,val}."""
    from .progress import RichReporter
    from .stages.label import LabelStage

    cfg = load_config(config)
    stage = LabelStage(cfg, reporter=RichReporter(err_console))
    result = stage.run(force=force)
    for group, c in result.counts.items():
        console.print(f"  [bold]{group}[/bold]: {c['labeled']} labeled ({c['train']} train / {c['val']} val), "
                      f"{c['dead']} dead-lettered of {c['sampled']} sampled")
    print_accounting(console, stage._teacher)


from .cli_select import register as _register_select  # noqa: E402

_register_select(app, console, err_console, ConfigOpt)  # train, score, select, export: after label in --help
from .cli_run import register as _register_run  # noqa: E402

_register_run(app, console, err_console, ConfigOpt)  # run, report

rubric_app = typer.Typer(help="Inspect discovered rubrics.", no_args_is_help=True)
app.add_typer(rubric_app, name="rubric")


@rubric_app.command("show")
def rubric_show(group: str = typer.Argument(..., help="Group name (see groups.json)."),
                config: Path = ConfigOpt) -> None:
    """Print a group's anchors: id, part, name, definition, cluster size."""
    from rich.table import Table

    from .rubric import load_rubric
    from .workspace import Workspace

    cfg = load_config(config)
    rubric = load_rubric(Workspace(cfg.workspace_path), group)
    table = Table(title=f"rubric {group} — {rubric['teacher']}, {rubric['n_points']} judgment points")
    for col in ("id", "part", "name", "definition", "size"):
        table.add_column(col, overflow="fold")
    for a in rubric["anchors"]:
        table.add_row(a["id"], a["part"], a["name"], a["definition"], str(a["cluster_size"]))
    console.print(table)


@app.command()
def manifest(config: Path = ConfigOpt) -> None:
    """Show the manifest of the workspace named in the config."""
    from .workspace import Workspace

    cfg = load_config(config)
    ws = Workspace(cfg.workspace_path)
    print_manifest(ws.manifest())
    summary = ws.root / "prefilter" / "summary.json"
    if summary.exists():
        from .workspace import read_json

        print_prefilter(read_json(summary))


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
    for col in ("source", "format", "files", "records", "tokens", "MB", "quarantined", "dropped", "contaminated"):
        table.add_column(col, justify="left" if col in ("source", "format") else "right")
    for name, s in m["sources"].items():
        fmt = s["format"] or "-"
        if len(s["formats"]) > 1:
            fmt += f" ({s['formats'][s['format']] / max(s['records'], 1):.0%})"
        table.add_row(name, fmt, str(len(s["files"])), f"{s['records']:,}", f"{s['tokens']:,}",
                      f"{s['bytes'] / 1e6:.1f}", f"{s['quarantined']:,}", f"{s['dropped']:,}",
                      f"{s.get('contaminated', 0):,}")
    t = m["totals"]
    table.add_row("[bold]total", "", "", f"{t['records']:,}", f"{t['tokens']:,}", f"{t['bytes'] / 1e6:.1f}",
                  f"{t['quarantined']:,}", f"{t['dropped']:,}", f"{t.get('contaminated', 0):,}")
    console.print(table)


def main() -> None:
    try:
        app()
    except MiraError as exc:
        if _state["debug"]:
            raise
        err_console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)  # one line, never wrapped
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/yellow]; re-run the same command to resume")
        sys.exit(130)


if __name__ == "__main__":
    main()

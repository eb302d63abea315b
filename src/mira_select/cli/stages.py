"""`mira ingest | prefilter | group | discover | label | check`: the stages up to the labels, one command each."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..config import load_config
from .common import ConfigOpt, app, console, err_console
from .tables import print_accounting, print_manifest, print_prefilter


@app.command()
def ingest(
    config: Path = ConfigOpt,
    workers: Optional[int] = typer.Option(None, "--workers", "-w", help="Worker processes (1 = in-process)."),
    force: bool = typer.Option(False, "--force", help="Redo every file even if its shard is complete."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Read every source into normalized record shards, a quarantine file per source and manifest.json."""
    from ..executor import make_executor
    from ..progress import Reporter, RichReporter
    from ..stages.ingest import IngestStage

    cfg = load_config(config)
    with make_executor(cfg.executor, workers) as executor:
        stage = IngestStage(cfg, executor=executor, reporter=Reporter() if quiet else RichReporter(err_console))
        result = stage.run(force=force)
    if not result.did_work:
        console.print(f"ingest: nothing to do — {len(result.manifest['sources'])} source(s) already complete "
                      f"in {stage.ws.root}")
    else:
        console.print(f"ingest: {result.files_done} file(s) processed, {result.files_skipped} already complete "
                      f"({result.units_done} unit(s) run), {result.seconds:.1f}s")
    print_manifest(result.manifest)


@app.command()
def prefilter(
    config: Path = ConfigOpt,
    workers: int = typer.Option(None, "-w", "--workers", help="Parallel workers (default: executor.workers)."),
    force: bool = typer.Option(False, "--force", help="Re-run every shard even if current."),
) -> None:
    """Cheap rules per format and exact/near dedup; writes prefilter/ sidecars (dropped records are never selected)."""
    from ..executor import make_executor
    from ..progress import RichReporter
    from ..stages.prefilter import PrefilterStage

    cfg = load_config(config)
    with make_executor(cfg.executor, workers) as executor:
        result = PrefilterStage(cfg, executor=executor, reporter=RichReporter(err_console)).run(force=force)
    console.print(f"prefilter: {result.shards_done} shard(s) processed, {result.shards_skipped} already current, "
                  f"{result.seconds:.1f}s")
    print_prefilter(result.summary)


@app.command()
def check(
    config: Path = ConfigOpt,
    per_format: Optional[int] = typer.Option(None, "--per-format", "-n", min=1,
                                             help="Twin pairs per format (default: check.pairs_per_format, 24)."),
    teacher: int = typer.Option(0, "--teacher", help="Ask the teacher about this many pairs per format (costs "
                                                      "calls; the rest come from its cache where they can)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Default: check.seed."),
) -> None:
    """Held-out contrast twins ranked by the finished scorer (prefilter included), beside the teacher."""
    from .tables import print_check
    from ..progress import RichReporter
    from ..stages.check import run_scorer_check
    from ..workspace import Workspace

    cfg = load_config(config)
    r = run_scorer_check(cfg, Workspace(cfg.workspace_path), per_format=per_format, seed=seed, with_teacher=teacher,
                         reporter=RichReporter(err_console), force=True)
    print_check(console, r)


@app.command()
def group(
    config: Path = ConfigOpt,
    force: bool = typer.Option(False, "--force", help="Recompute even if groups.json is current."),
) -> None:
    """Cluster sources into capability groups (embedding centroids, KMeans); writes groups.json."""
    from ..progress import RichReporter
    from ..stages.group import GroupStage, load_groups

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
    group: list[str] = typer.Option([], "--group", "-g",
                                    help="Discover only these groups, in this order (repeatable; default: all)."),
) -> None:
    """Teacher judges sampled records free-form; clustered judgments become each group's anchors (rubrics/)."""
    from ..progress import RichReporter
    from ..stages.discover import DiscoverStage

    cfg = load_config(config)
    stage = DiscoverStage(cfg, reporter=RichReporter(err_console))
    result = stage.run(force=force, only=group or None)
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
    group: list[str] = typer.Option([], "--group", "-g",
                                    help="Label only these groups, in this order (repeatable; default: all)."),
) -> None:
    """Teacher scores a stratified sample of each group on every anchor; writes labels/<group>/{train,val}."""
    from ..progress import RichReporter
    from ..stages.label import LabelStage

    cfg = load_config(config)
    stage = LabelStage(cfg, reporter=RichReporter(err_console))
    result = stage.run(force=force, only=group or None)
    for group, c in result.counts.items():
        console.print(f"  [bold]{group}[/bold]: {c['labeled']} labeled ({c['train']} train / {c['val']} val), "
                      f"{c['dead']} dead-lettered"
                      + (f", {c['addressed']} quarantined as addressed to the reviewer" if c.get("addressed") else "")
                      + f" of {c['sampled']} sampled")
    print_accounting(console, stage._teacher)

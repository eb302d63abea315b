"""`mira status | manifest | rubric show | init`: look at a workspace or start a config; nothing is computed."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from ..config import load_config
from ..errors import MiraError
from .common import ConfigOpt, app, console
from .tables import print_manifest, print_prefilter

rubric_app = typer.Typer(help="Inspect discovered rubrics.", no_args_is_help=True)
app.add_typer(rubric_app, name="rubric")


@rubric_app.command("show")
def rubric_show(group: str = typer.Argument(..., help="Group name (see groups.json)."),
                config: Path = ConfigOpt) -> None:
    """Print a group's anchors: id, part, name, definition, cluster size."""
    from rich.table import Table

    from ..rubric import load_rubric
    from ..workspace import Workspace

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
    from ..workspace import Workspace

    cfg = load_config(config)
    ws = Workspace(cfg.workspace_path)
    print_manifest(ws.manifest())
    summary = ws.root / "prefilter" / "summary.json"
    if summary.exists():
        from ..workspace import read_json

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


@app.command()
def status(
    config: Path = ConfigOpt,
    units: bool = typer.Option(False, "--units", help="List every unit that is not current, with why."),
) -> None:
    """Each stage's units: current / stale (which input changed) / missing — what `mira run` would redo."""
    from rich.table import Table

    from ..status import workspace_status

    cfg = load_config(config)
    rows = workspace_status(cfg)
    table = Table(title=f"status of {cfg.workspace_path}")
    for col in ("stage", "units", "current", "stale", "missing", "why"):
        table.add_column(col, justify="right" if col in ("units", "current", "stale", "missing") else "left")
    for st in rows:
        if st.waiting:
            table.add_row(st.stage, "-", "-", "-", "-", f"[yellow]{st.waiting}[/yellow]")
            continue
        why = "; ".join(f"{reason} ({n})" for reason, n in st.reasons().most_common(4))
        if st.upstream and not why:
            why = f"[dim]current, but {st.upstream[-1]} has work to do first[/dim]"
        table.add_row(st.stage, str(len(st.units)), str(st.count("current")), str(st.count("stale")),
                      str(st.count("missing")), why or "[green]up to date[/green]")
    console.print(table)
    if units:
        for st in rows:
            for key, verdict in st.units:
                if not verdict.current:
                    console.print(f"{st.stage}/{key}: {verdict.describe()}", highlight=False)
    todo = [st.stage for st in rows if not st.current]
    console.print("nothing to do: every stage is current" if not todo else
                  f"`mira run` would start at {todo[0]} ({len(todo)} stage(s) with work)")

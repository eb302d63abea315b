"""`mira` command line: one module per command family; each command is a thin shell over a stage.

Importing the modules registers their commands on the shared app, in the order `mira --help` lists them.
"""

from __future__ import annotations

from .common import app, main
from .models import models_app
from .teacher import teacher_app

app.add_typer(models_app, name="models")
app.add_typer(teacher_app, name="teacher")

# importing a family registers its commands, in this order in `mira --help`
from . import stages  # noqa: E402,F401,I001
from . import select  # noqa: E402,F401
from . import run  # noqa: E402,F401
from . import inspect  # noqa: E402,F401

__all__ = ["app", "main"]

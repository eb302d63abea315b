"""Errors a user can cause and fix.

The CLI prints a :class:`MiraError` as one line (no traceback unless ``--debug``); anything else is a bug and
keeps its traceback. Keep messages actionable: say which file, line or field, and what to do.
"""

from __future__ import annotations


class MiraError(Exception):
    """A user-facing error: bad config, bad path, missing model, unsafe name."""


class ConfigError(MiraError):
    """mira.yaml is unreadable or does not validate; the message lists every problem with its location."""


class WorkspaceError(MiraError):
    """The workspace is missing an artifact a stage needs, or was produced by an incompatible run."""

"""Shared bench helpers: run a command and sample the peak RSS of its whole process tree."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time

import psutil


def run_peak_rss(args: list[str], env: dict | None = None, argv: list[str] | None = None) -> dict:
    """Run ``python -m mira_select *args`` (or ``argv``); -> wall seconds, peak RSS of the process tree and of one
    process, and CPU seconds (user + system) of the descendants it reaped."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = subprocess.Popen(argv or [sys.executable, "-m", "mira_select", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=(err := tempfile.TemporaryFile()))
    root = psutil.Process(proc.pid)
    peak_tree = peak_single = 0
    while proc.poll() is None:
        try:
            procs = [root, *root.children(recursive=True)]
            rss = [p.memory_info().rss for p in procs if p.is_running()]
        except psutil.NoSuchProcess:
            rss = []
        if rss:
            peak_tree, peak_single = max(peak_tree, sum(rss)), max(peak_single, max(rss))
        time.sleep(0.1)
    wall = time.monotonic() - start
    if proc.returncode:
        raise SystemExit(f"{' '.join(argv or ['mira', *args])} failed: {_tail(err)}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return {"wall": wall, "tree": peak_tree, "single": peak_single, "cpu": cpu}


def _tail(fh, n: int = 3000) -> str:
    """The end of a command's stderr (a file, not a pipe: a chatty command never blocks on a full pipe)."""
    fh.seek(0)
    return fh.read().decode(errors="replace")[-n:]

"""Shared bench helpers: run a command and sample the peak RSS of its whole process tree."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil


def run_peak_rss(args: list[str], env: dict | None = None) -> dict:
    """Run ``python -m mira_select *args``; -> wall seconds, peak RSS of the process tree and of one process."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "mira_select", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
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
        raise SystemExit(f"mira {' '.join(args)} failed: {proc.stderr.read().decode()}")
    return {"wall": wall, "tree": peak_tree, "single": peak_single}

"""A real multi-node Ray cluster on one machine, for tests: each node is its own `ray start --block` process group.

Why not `ray stop`: it kills every Ray process of the machine, other people's clusters included. Each node here
runs in its own session (``start_new_session``), so its raylet, agents and workers share one process group that
the test owns; stopping a node signals that group and nothing else.

Nodes get their own ``--temp-dir`` (Ray 2.60 accepts one per node on one host), short enough for the 107-byte
limit of Unix socket paths, a 200 MB object store, no dashboard, and free ports where Ray's defaults would collide
between two nodes of one host (dashboard, dashboard agent; worker ports are left to the OS). The cluster uses token
authentication with a token of its own (``RAY_AUTH_TOKEN``), so ``~/.ray`` is neither read nor written and no other
user of the machine can submit work to it.

A node may get a view of the filesystem of its own: started inside a user + mount namespace (``unshare -Urm``)
with an empty tmpfs over one directory, it runs beside the others but cannot see what the driver writes there —
what a cluster node without the shared volume sees.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RAY_BIN = Path(sys.executable).with_name("ray")
STARTED = "Ray runtime started"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def can_hide_paths() -> bool:
    """Whether this machine lets an unprivileged process take a mount namespace of its own (unshare -Urm)."""
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-Urm", "true"], capture_output=True).returncode == 0


def _proc_table() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, process group, command line or process title) of every live process."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state ppid pgrp ...
        if fields[0] != "Z":
            out[int(entry.name)] = (int(fields[1]), int(fields[2]),
                                    cmdline.replace(b"\0", b" ").decode(errors="replace").strip())
    return out


def tree_pids(root: int) -> dict[int, str]:
    """pid -> title of ``root``'s process group and every descendant (Ray workers run in groups of their own)."""
    table = _proc_table()
    mine = {pid for pid, (_, pgrp, _) in table.items() if pgrp == root}
    grew = True
    while grew:
        new = {pid for pid, (ppid, _, _) in table.items() if ppid in mine and pid not in mine}
        mine |= new
        grew = bool(new)
    return {pid: table[pid][2] for pid in mine}


@dataclass
class Node:
    name: str
    proc: subprocess.Popen
    temp: Path
    log: Path

    def processes(self) -> dict[int, str]:
        return tree_pids(self.proc.pid)

    def node_id(self) -> str:
        """The node's Ray id, as its raylet logged it."""
        for path in sorted(self.temp.glob("session_*/logs/raylet.out")):
            found = re.search(r"node_id=([0-9a-f]{56})", path.read_text(errors="replace"))
            if found:
                return found.group(1)
        raise AssertionError(f"no node id in the raylet log of {self.name}")

    def stop(self, grace_s: float = 3.0) -> None:
        """SIGTERM to the node's group, then SIGKILL to whatever of it (workers included) is still there."""
        pids = self.processes()
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.time() + grace_s
        while time.time() < deadline and set(pids) & set(_proc_table()):
            time.sleep(0.1)
        for pid in set(pids) & set(_proc_table()) | set(self.processes()):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=10)


@dataclass
class Cluster:
    root: Path
    env: dict[str, str]  # what a driver needs to reach the cluster (token) and what the workers import
    address: str = ""
    nodes: list[Node] = field(default_factory=list)
    hidden: Path | None = None  # a directory the last node cannot see (None: this machine cannot hide one)

    def start_node(self, name: str, *args: str, hide: Path | None = None, timeout_s: float = 60) -> Node:
        temp = self.root / name
        temp.mkdir(parents=True)
        cmd = [str(RAY_BIN), "start", "--block", "--num-cpus=1", f"--temp-dir={temp}",
               "--object-store-memory=200000000", f"--dashboard-agent-listen-port={free_port()}",
               "--min-worker-port=0", "--max-worker-port=0", "--disable-usage-stats", *args]
        if hide is not None:
            hide.mkdir(parents=True, exist_ok=True)
            cmd = ["unshare", "-Urm", "sh", "-c", 'mount -t tmpfs -o size=1m tmpfs "$0" && exec "$@"', str(hide),
                   *cmd]
        log = self.root / f"{name}.log"
        with open(log, "wb") as fh:
            proc = subprocess.Popen(cmd, env=self.env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        node = Node(name, proc, temp, log)
        self.nodes.append(node)
        deadline = time.time() + timeout_s
        while STARTED not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.time() > deadline:
                raise AssertionError(f"ray node {name} did not start:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)
        return node

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()
        self.nodes.clear()

    def worker_running(self, title_prefix: str) -> tuple[Node, int, str] | None:
        """A worker process of this cluster whose title (Ray sets ``ray::<task name>``) starts with the prefix."""
        for node in self.nodes:
            for pid, title in node.processes().items():
                if title.startswith(title_prefix):
                    return node, pid, title
        return None


def start_cluster(hidden: Path | None) -> Cluster:
    """Head + a second node (the second one blind to ``hidden`` when given). The caller must call ``stop()``."""
    root = Path(tempfile.mkdtemp(prefix="mray-", dir="/tmp"))  # short: Unix socket paths live under it
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
           "RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])}
    cluster = Cluster(root, env, hidden=hidden)
    port = free_port()
    cluster.address = f"127.0.0.1:{port}"
    try:
        cluster.start_node("head", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
                           "--include-dashboard=false", f"--dashboard-port={free_port()}")
        cluster.start_node("node2", f"--address={cluster.address}", "--node-ip-address=127.0.0.1", hide=hidden)
    except BaseException:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
        raise
    return cluster

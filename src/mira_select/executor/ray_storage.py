"""The shared-storage check of a Ray cluster: every node that can run a unit must see the workspace (and the local
input files) at the driver's paths.

Why: units read their inputs and write their outputs by absolute path, and the driver writes the completion
markers. A node whose path leads to its own local disk would write shards nobody reads, or fail on a missing input
halfway through a stage. So before the first unit runs, the driver writes a probe file holding a random token into
the workspace and one tiny task per node (pinned there by node affinity) reads it back, and stats one input file per
input directory; a node that cannot is named in one error line. It costs one short task per node, once per run.

Only a path is checked, not its speed or its locking; fsspec URLs (s3://, gs://, ...) are not checked here: every
node opens them itself, with its own credentials.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any, Sequence

from ..errors import MiraError
from ..workspace import atomic_write_bytes

PROBE_TIMEOUT_S = 120.0


def _look(probe: str, token: str, files: list[tuple[str, int]]) -> dict[str, Any]:
    """Runs on one node: what it sees at the driver's paths (a list of problems; empty = sees everything)."""
    import ray

    problems = []
    try:
        seen = Path(probe).read_text()
    except FileNotFoundError:
        problems.append(f"the probe file {probe} written by the driver is missing there")
    except OSError as exc:
        problems.append(f"the probe file {probe} cannot be read there ({exc.strerror})")
    else:
        if seen != token:
            problems.append(f"{probe} holds another token there (a different directory at the same path)")
    for path, size in files:
        try:
            st = os.stat(path)
        except OSError:
            problems.append(f"input file {path} is missing there")
            continue
        if st.st_size != size:
            problems.append(f"input file {path} has {st.st_size} bytes there, {size} on the driver")
    return {"node": ray.get_runtime_context().get_node_id(), "ip": ray.util.get_node_ip_address(),
            "problems": problems}


def sample_inputs(inputs: Sequence[str]) -> list[tuple[str, int]]:
    """One local input file per directory, with its size on the driver (a whole corpus is not stat'ed per node)."""
    out: dict[str, tuple[str, int]] = {}
    for path in inputs:
        if "://" in path and not path.startswith("file://"):
            continue  # an fsspec URL: every node opens it itself
        local = path.removeprefix("file://")
        d = os.path.dirname(local)
        if d not in out:
            out[d] = (local, os.stat(local).st_size)
    return list(out.values())


def check_nodes(ray, workspace: Path, inputs: Sequence[str], cpus: float, address: str) -> int:
    """Probe every alive node with at least ``cpus`` CPUs (nodes that cannot run a unit need not see anything).
    -> the number of nodes checked; raises MiraError naming each node that cannot see a path."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU", 0) >= cpus]
    if not nodes:
        return 0
    token = secrets.token_hex(16)
    probe = workspace / "_work" / "executor" / f"probe-{token}.txt"
    atomic_write_bytes(probe, token.encode())
    files = sample_inputs(inputs)
    look = ray.remote(_look)
    try:
        refs = {look.options(num_cpus=0, max_retries=1, name="mira-storage-probe",
                             scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                .remote(str(probe), token, files): n for n in nodes}
        ready, late = ray.wait(list(refs), num_returns=len(refs), timeout=PROBE_TIMEOUT_S)
        answers = ray.get(ready)
    finally:
        probe.unlink(missing_ok=True)
    failures = [f"node {a['ip']} (id {a['node']}): {'; '.join(a['problems'])}" for a in answers if a["problems"]]
    for ref in late:
        n = refs[ref]
        ray.cancel(ref, force=True)
        failures.append(f"node {n['NodeManagerAddress']} (id {n['NodeID']}): did not answer the storage probe in "
                        f"{PROBE_TIMEOUT_S:.0f} s")
    if failures:
        raise MiraError(f"{len(failures)} of {len(nodes)} node(s) of the Ray cluster at {address} cannot see the "
                        f"workspace {workspace} as the driver does — {' | '.join(failures)} — put the workspace "
                        "(and local inputs) on storage every node mounts at the same path (NFS, a shared volume), "
                        "or use executor.kind: local")
    return len(nodes)

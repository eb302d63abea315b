"""Ray backend (optional extra ``mira-select[ray]``): the same work units on a Ray cluster, or a local one.

Units are submitted as Ray tasks with at most ``2 × workers`` in flight (like the local pool), so a long unit list
is never all pickled at once. Workers write their outputs to the shared workspace path; the driver writes the
completion markers, exactly as with the local executor, so outputs and resume behaviour are identical.

Resources come from config, not from the stage: a unit reserves ``executor.cpus_per_task`` CPUs, and a unit the
stage says needs a GPU also ``executor.gpus_per_task`` GPUs (Ray then sets CUDA_VISIBLE_DEVICES for it). A request
no node can ever satisfy is an error before anything is submitted — Ray itself would wait forever.

A unit whose worker or node dies is re-run by Ray (``executor.max_retries``); every unit writes through a temporary
file renamed into place, so a re-run replaces, never duplicates, what a killed attempt began. Exceptions raised by
a unit are never retried: they are bugs or user mistakes and surface as they are.

On a cluster given by ``executor.address``, :meth:`prepare` first checks that every node sees the workspace
(ray_storage.py). Each finished unit's node and process are appended to ``_work/executor/ray.jsonl`` in the
workspace, so "which machine wrote this shard" has an answer.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TypeVar

import orjson

from ..config import ExecutorConfig
from ..errors import MiraError
from ..quiet import captured_output, is_verbose
from .base import CPU_ONLY, Executor, Needs, bounded_map, use_system_allocator

T = TypeVar("T")
R = TypeVar("R")
_CHECKED: set[tuple[str, str]] = set()  # (address, workspace) already probed by this process (`mira run` stages)


def _import_ray():
    try:
        import ray
    except ImportError:
        raise MiraError("the Ray executor needs the extra: pip install 'mira-select[ray]'") from None
    return ray


def _unreachable(address: str) -> str | None:
    """Why a ``host:port`` address refuses a TCP connection (None: it accepts, or another form such as ``auto``).
    Ray itself would retry a wrong address for minutes before it gives up."""
    host, sep, port = address.rpartition(":")
    if "://" in address or not sep or not port.isdigit():
        return None
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None


def _connect_error(address: str, exc: Exception, output: str) -> str:
    if "InvalidAuthToken" in output or type(exc).__name__ == "AuthenticationError":
        why = ("the cluster refused this process's authentication token; give it the cluster's token "
               "(RAY_AUTH_MODE=token and RAY_AUTH_TOKEN, or ~/.ray/auth_token)")
    else:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        why = f"{first} (is the cluster running? fix executor.address otherwise)"
    return f"cannot connect to the Ray cluster at executor.address {address!r}: {why}"


def _run_unit(fn: Callable[[T], R], item: T) -> tuple[R, str, str, int]:
    """The task body: the unit, and where it ran (node id, node IP, worker pid)."""
    import ray

    use_system_allocator()
    result = fn(item)
    return result, ray.get_runtime_context().get_node_id(), ray.util.get_node_ip_address(), os.getpid()


def _unit_key(item: Any) -> str:
    unit = getattr(item, "unit", None)
    return f"{unit.stage}/{unit.key}" if unit is not None else repr(item)[:80]


class RayExecutor(Executor):
    def __init__(self, cfg: ExecutorConfig | None = None, workers: int | None = None):
        self.cfg = cfg or ExecutorConfig(kind="ray")
        self.workers = workers if workers is not None else self.cfg.workers  # 0: from the cluster's CPUs
        self.address = self.cfg.address
        self._started_here = False
        self._task: Any = None
        self._feasible: set[tuple[float, float]] = set()
        self._log: Path | None = None

    def _ensure(self):
        ray = _import_ray()
        if not ray.is_initialized():
            threads = str(max(1, int(self.cfg.cpus_per_task)))
            env = {"env_vars": {"OMP_NUM_THREADS": threads, "TOKENIZERS_PARALLELISM": "false"}}
            # ray.init sets its own logger's level (INFO: "Connecting to existing Ray cluster..."): keep it quiet
            # unless --verbose, like every other library's output
            common = {"runtime_env": env, "log_to_driver": False,
                      "logging_level": logging.INFO if is_verbose() else logging.ERROR}
            if self.address:
                why = _unreachable(self.address)
                if why:
                    raise MiraError(f"cannot reach the Ray cluster at executor.address {self.address!r}: {why} "
                                    "(start it with `ray start --head`, or fix the address)")
                output: list[str] = []
                try:  # Ray's C++ client logs every retry to stderr: keep it for the error, not the screen
                    with captured_output("connecting to the Ray cluster", echo=False) as output:
                        ray.init(address=self.address, **common)
                except (ConnectionError, RuntimeError, ValueError, ray.exceptions.RayError) as exc:
                    raise MiraError(_connect_error(self.address, exc, "".join(output))) from None
            else:
                ray.init(num_cpus=self.workers or os.cpu_count() or 1, include_dashboard=False, **common)
            self._started_here = True
        if self._task is None:
            self._task = ray.remote(_run_unit)
        return ray

    def prepare(self, workspace: Path, inputs: Sequence[str] = ()) -> None:
        """On a cluster (``executor.address``): check once that every node sees the workspace and inputs."""
        self._log = Path(workspace) / "_work" / "executor" / "ray.jsonl"
        if not self.address or (self.address, str(workspace)) in _CHECKED:
            return
        ray = self._ensure()
        from .ray_storage import check_nodes

        check_nodes(ray, Path(workspace), inputs, self.cfg.cpus_per_task, self.address)
        _CHECKED.add((self.address, str(workspace)))

    def _request(self, need: Needs) -> dict[str, float]:
        return {"num_cpus": self.cfg.cpus_per_task, "num_gpus": self.cfg.gpus_per_task if need.gpu else 0}

    def _check_feasible(self, ray, request: dict[str, float]) -> None:
        """A request no alive node can hold would wait forever in Ray: say so instead."""
        shape = (request["num_cpus"], request["num_gpus"])
        if shape in self._feasible:
            return
        nodes = [n["Resources"] for n in ray.nodes() if n["Alive"]]
        if not any(r.get("CPU", 0) >= shape[0] and r.get("GPU", 0) >= shape[1] for r in nodes):
            most_cpu = max((r.get("CPU", 0) for r in nodes), default=0)
            most_gpu = max((r.get("GPU", 0) for r in nodes), default=0)
            raise MiraError(f"a unit needs {shape[0]:g} CPU(s) and {shape[1]:g} GPU(s) (executor.cpus_per_task, "
                            f"executor.gpus_per_task) but no node of the Ray cluster has that many (largest: "
                            f"{most_cpu:g} CPU(s), {most_gpu:g} GPU(s)); lower them or add such a node")
        self._feasible.add(shape)

    def _parallel(self, ray) -> int:
        if self.workers > 0:
            return self.workers
        return max(1, int(ray.cluster_resources().get("CPU", 1) // self.cfg.cpus_per_task))

    def map_unordered(self, fn: Callable[[T], R], items: Sequence[T],
                      needs: Callable[[T], Needs] | None = None) -> Iterator[tuple[T, R]]:
        if not items:
            return
        ray = self._ensure()
        requests = {id(item): self._request(needs(item) if needs else CPU_ONLY) for item in items}
        for request in {tuple(r.items()) for r in requests.values()}:
            self._check_feasible(ray, dict(request))
        keys: dict[Any, str] = {}
        name = getattr(fn, "__name__", "unit")

        def submit(item: T):
            key = _unit_key(item)
            # the task name is the worker's process title (`ray::score_shard[score/src/part-00003]`) and what the
            # dashboard lists: a unit can be found on a node with `ps`
            ref = self._task.options(**requests[id(item)], max_retries=self.cfg.max_retries, retry_exceptions=False,
                                     name=f"{name}[{key}]").remote(fn, item)
            keys[ref] = key
            return ref

        def done(refs: list[Any]):
            finished, _ = ray.wait(refs, num_returns=1)
            return [(ref, self._result(ray, ref, keys.pop(ref))) for ref in finished]

        yield from bounded_map(items, 2 * self._parallel(ray), submit, done, ray.cancel)

    def _result(self, ray, ref, key: str):
        try:
            result, node, ip, pid = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            if isinstance(exc.cause, MiraError):
                raise exc.cause from None  # a user mistake found inside a unit: its one line, not Ray's traceback
            raise
        except ray.exceptions.RayError as exc:  # worker / node died more often than max_retries allows
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise MiraError(f"unit {key} did not finish on the Ray cluster after {self.cfg.max_retries + 1} "
                            f"attempt(s) ({type(exc).__name__}: {first}); check the node's memory and its Ray logs, "
                            "then re-run: finished units are kept") from None
        if self._log is not None:
            line = {"unit": key, "node": node, "ip": ip, "pid": pid, "time": round(time.time(), 3)}
            self._log.parent.mkdir(parents=True, exist_ok=True)
            with open(self._log, "ab") as fh:  # a log, appended by the driver alone; not an artifact
                fh.write(orjson.dumps(line) + b"\n")
        return result

    def close(self) -> None:
        if self._started_here:
            ray = _import_ray()
            ray.shutdown()
            self._started_here = False
            self._task = None

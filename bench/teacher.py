"""Teacher throughput: calls/s and tokens/s through the openai backend against a local llama.cpp server at
concurrency 1, 4 and 16, the in-process prefix-reuse gain (same rubric prefix, consecutive records), and seconds
per labeled record for the three ways of labeling one record on a 15-anchor rubric (same records, same model):
a rationale per anchor (the earlier labeling), scores only generated as JSON under the grammar, and scores only
read out from the logits (what `mira label` does with the local backend).

    python bench/teacher.py [--model qwen2.5-coder-0.5b-instruct] [--records 8]
    python bench/teacher.py --only labeling --label-model qwen2.5-coder-1.5b-instruct --label-records 6

Every call goes through the same Teacher client the pipeline uses (cache disabled by a fresh workspace per run).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from mira_select.config import TeacherConfig  # noqa: E402
from mira_select.teacher.client import Teacher  # noqa: E402
from mira_select.teacher.local import LocalBackend, resolve_model_path  # noqa: E402
from mira_select.teacher.types import Anchor  # noqa: E402
from mira_select.teacher.server import LocalServer as LlamaServer  # noqa: E402
from mira_select.workspace import Workspace  # noqa: E402
from records import corpus_records  # noqa: E402

ANCHORS = [Anchor(f"a{i}", name, name) for i, name in enumerate(
    ["readability", "correctness", "documentation", "idiomatic style", "usefulness"], 1)]


def server_runs(model: Path, records, concurrencies) -> list[tuple]:
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="mira-bench-teacher-"))
    srv = LlamaServer(model, tmp / "server.log")
    try:
        for c in concurrencies:
            cfg = TeacherConfig(backend="openai", base_url=srv.base_url, model="bench", concurrency=c,
                                max_record_tokens=384, response_format="json_object", timeout_s=600)
            t = Teacher(cfg, Workspace(tmp / f"ws-c{c}"), stage="bench")
            start = time.monotonic()
            t.run(lambda i, f, x: t.score(i, f, x, ANCHORS), records)
            wall = time.monotonic() - start
            a = t.acct
            rows.append((c, a.calls, wall, a.calls / wall, a.prompt_tokens / wall, a.completion_tokens / wall))
    finally:
        srv.stop()
    return rows


def prefix_reuse(model: Path, records) -> tuple[float, float, int, int]:
    """Prompt-eval time for the same sequence of calls with the KV prefix kept vs. reset before each call."""
    results = []
    for reuse in (True, False):
        cfg = TeacherConfig(backend="local", model=str(model), max_record_tokens=384, logprobs=False, threads=2)
        backend = LocalBackend(cfg)
        tmp = Path(tempfile.mkdtemp(prefix="mira-bench-prefix-"))
        t = Teacher(cfg, Workspace(tmp), stage="bench", backend=backend)

        async def score(i, f, x):
            if not reuse and backend._llm is not None:
                backend._llm.reset()  # forget the evaluated prefix
            return await t.score(i, f, x, ANCHORS)

        t.run(score, records)
        perf = backend.perf()
        results.append((perf["t_p_eval_ms"] / 1000, perf["n_p_eval"]))
    (t_reuse, n_reuse), (t_cold, n_cold) = results
    return t_reuse, t_cold, n_reuse, n_cold


LEVELS = ("worthless on this criterion", "acceptable with clear flaws", "excellent on this criterion")
RUBRIC = [Anchor(f"a{i:02d}", name, f"how well the file does on {name.lower()}", levels=LEVELS)
          for i, name in enumerate(["Readability", "Correctness", "Documentation", "Idiomatic style", "Usefulness",
                                    "Naming", "Error handling", "Modularity", "Test coverage", "Consistency",
                                    "Simplicity", "Comments", "Robustness", "Structure", "Reusability"], 1)]


def labeling_modes(model: Path, records) -> list[tuple[str, float, int, int]]:
    """-> (mode, seconds per record, prompt tokens, completion tokens) for each labeling mode, same records."""
    rows = []
    for mode in ("rationale per anchor", "scores only, generated JSON", "scores only, logit read-out"):
        # "generate" is what an OpenAI-compatible server does for scores only: JSON under the grammar + logprobs
        readout = "generate" if mode == "scores only, generated JSON" else "logits"
        cfg = TeacherConfig(backend="local", model=str(model), max_record_tokens=512, threads=2,
                            local_scores=readout)
        backend = LocalBackend(cfg)
        tmp = Path(tempfile.mkdtemp(prefix="mira-bench-label-"))
        t = Teacher(cfg, Workspace(tmp), stage="bench", backend=backend)

        async def one(i, f, x):
            if mode == "rationale per anchor":
                return await t.score(i, f, x, RUBRIC)
            return await t.label(i, f, x, RUBRIC)

        t.run(one, records[:1])  # warm: loads the model and evaluates the shared instruction + rubric prefix
        before = (t.acct.latency_s, t.acct.prompt_tokens, t.acct.completion_tokens)
        start = time.monotonic()
        t.run(one, records[1:])
        wall = time.monotonic() - start
        n = len(records) - 1
        rows.append((mode, wall / n, (t.acct.prompt_tokens - before[1]) // n,
                     (t.acct.completion_tokens - before[2]) // n))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    ap.add_argument("--records", type=int, default=8)
    ap.add_argument("--label-model", default="qwen2.5-coder-1.5b-instruct")
    ap.add_argument("--label-records", type=int, default=6)
    ap.add_argument("--only", choices=["all", "server", "labeling"], default="all")
    args = ap.parse_args()
    if args.only in ("all", "labeling"):
        lrecs = corpus_records({"code_python_pypi": args.label_records})
        rows = labeling_modes(resolve_model_path(args.label_model), lrecs)
        print(f"\nlabeling one record on a {len(RUBRIC)}-anchor rubric ({args.label_model}, in-process, 2 threads, "
              f"{len(lrecs) - 1} records after one warm-up, records cut to 512 tokens)\n")
        print(f"{'mode':<30} {'s/record':>9} {'prompt tok':>11} {'answer tok':>11} {'speed-up':>9}")
        for mode, spr, pt, ct in rows:
            print(f"{mode:<30} {spr:>9.2f} {pt:>11} {ct:>11} {rows[0][1] / spr:>8.1f}x")
        if args.only == "labeling":
            return
    model = resolve_model_path(args.model)
    records = corpus_records({"code_python_pypi": args.records})
    rows = server_runs(model, records, (1, 4, 16))
    print(f"\nteacher through llama.cpp server ({args.model}, 2 threads), {len(records)} records x {len(ANCHORS)} "
          "anchors per call\n")
    print(f"{'concurrency':>11} {'calls':>6} {'wall s':>7} {'calls/s':>8} {'prompt tok/s':>13} {'gen tok/s':>10}")
    for c, calls, wall, cps, pts, gts in rows:
        print(f"{c:>11} {calls:>6} {wall:>7.1f} {cps:>8.3f} {pts:>13.1f} {gts:>10.1f}")
    t_reuse, t_cold, n_reuse, n_cold = prefix_reuse(model, records)
    print(f"\nin-process prefix reuse, same rubric, {len(records)} consecutive records:")
    print(f"  prompt tokens evaluated: {n_reuse:,} with reuse vs {n_cold:,} without "
          f"({1 - n_reuse / max(n_cold, 1):.0%} saved)")
    print(f"  prompt eval time:        {t_reuse:.1f}s with reuse vs {t_cold:.1f}s without "
          f"({t_cold / max(t_reuse, 1e-9):.2f}x faster)")


if __name__ == "__main__":
    main()

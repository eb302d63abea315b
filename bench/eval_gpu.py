"""The transformer proxy of `mira eval` at a bigger spec, on a GPU machine that cannot see the workspace.

    python bench/eval_gpu.py export -c data/demo/mira.yaml -o bench/eval_bundle   # here: after `mira run`
    python bench/eval_gpu.py run -i bench/eval_bundle -o OUT [--train-bytes 8000000 ...]   # on the GPU machine

`export` writes what the proxy needs and nothing else (~15 MB for the demo): every text some variant kept, once
(zstd), each variant's kept list as indices into it, the benchmark items and each group's held-out slice — the
same targets `mira eval` scores. `run` needs only numpy and torch (plus zstandard): it trains the same byte-level
GPT as `evaluate/proxy.py`, on CUDA, for every variant and seed, and writes results.json and table.md in the shape
of `mira eval`'s table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def export(config: Path, out: Path) -> None:
    import zstandard

    from mira_select.config import load_config
    from mira_select.evaluate.run import EvalRunner
    from mira_select.io.kept import iter_kept_texts
    from mira_select.workspace import read_json

    cfg = load_config(config)
    runner = EvalRunner(cfg)
    bench, holdout = runner.targets()
    texts: list[str] = []
    index: dict[str, int] = {}
    variants = {}
    for variant in cfg.eval.variants:
        if not (runner.ws.root / "selection" / variant / "kept.parquet").exists():
            continue
        kept = list(iter_kept_texts(runner.ws, variant))  # a bundle for the GPU machine: the demo's selections
        ids = []
        for t in kept:
            if t not in index:
                index[t] = len(texts)
                texts.append(t)
            ids.append(index[t])
        summary = read_json(runner.ws.root / "selection" / variant / "summary.json")
        variants[variant] = {"kept": ids, "kept_tokens": summary["totals"]["kept_tokens"]}
    out.mkdir(parents=True, exist_ok=True)
    blob = "\0".join(texts).encode("utf-8", "surrogatepass")
    (out / "texts.zst").write_bytes(zstandard.ZstdCompressor(level=10).compress(blob))
    meta = {"variants": variants, "holdout_records": runner.holdout_records, "holdout_chars": runner.holdout_chars,
            "bench": {k: [{"prompt": i.prompt, "solution": i.solution} for i in v] for k, v in bench.items()},
            "holdout": {g: [t[: runner.holdout_chars] for t in v[: runner.holdout_records]] for g, v in holdout.items()},
            "cpu_spec": cfg.eval.model_dump(mode="json"), "seeds": list(cfg.eval.seeds)}
    (out / "meta.json").write_text(json.dumps(meta))
    size = sum(p.stat().st_size for p in out.iterdir()) / 1e6
    print(f"bundle {out}: {len(texts):,} texts, {len(variants)} variants, {size:.1f} MB")


def run(bundle: Path, out: Path, spec_args: dict) -> None:
    import torch
    import zstandard

    from mira_select.evaluate.proxy import ProxySpec, continuation_loss, device, train, training_stream

    meta = json.loads((bundle / "meta.json").read_text())
    texts = zstandard.ZstdDecompressor().decompress((bundle / "texts.zst").read_bytes(),
                                                     max_output_size=1 << 34).decode("utf-8", "surrogatepass")
    texts = texts.split("\0")
    spec = ProxySpec(**spec_args)
    print(f"device {device()} ({torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu'}), spec {spec}",
          flush=True)
    results: dict = {"spec": spec.__dict__, "seeds": meta["seeds"], "variants": {}}
    start = time.monotonic()
    for variant, v in meta["variants"].items():
        kept = [texts[i] for i in v["kept"]]
        runs = []
        for seed in meta["seeds"]:
            t0 = time.monotonic()
            model = train(training_stream(kept, spec.train_bytes, seed), spec, seed)
            row = {}
            for name, items in meta["bench"].items():
                nll = n = 0.0
                for it in items:
                    a, b = continuation_loss(model, it["prompt"], it["solution"], spec.context)
                    nll, n = nll + a, n + b
                row[name] = nll / max(n, 1)
            row["macro"] = float(np.mean([row[b] for b in meta["bench"]]))
            for group, hs in meta["holdout"].items():
                nll = n = 0.0
                for h in hs:
                    a, b = continuation_loss(model, "", h, spec.context)
                    nll, n = nll + a, n + b
                row[f"holdout:{group}"] = nll / max(n, 1)
            runs.append(row)
            print(f"{variant} seed {seed}: macro {row['macro']:.4f} ({time.monotonic() - t0:.1f}s)", flush=True)
        keys = runs[0].keys()
        results["variants"][variant] = {
            "kept_tokens": v["kept_tokens"],
            "mean": {k: float(np.mean([r[k] for r in runs])) for k in keys},
            "std": {k: float(np.std([r[k] for r in runs], ddof=1)) if len(runs) > 1 else 0.0 for k in keys}}
    results["seconds"] = time.monotonic() - start
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    cols = [*meta["bench"], "macro"]
    lines = ["| variant | kept tokens | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for variant, r in results["variants"].items():
        lines.append(f"| {variant} | {r['kept_tokens']:,} | "
                     + " | ".join(f"{r['mean'][c]:.4f} ± {r['std'][c]:.4f}" for c in cols) + " |")
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"{results['seconds']:.0f}s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export")
    e.add_argument("-c", "--config", type=Path, default=ROOT / "data" / "demo" / "mira.yaml")
    e.add_argument("-o", "--out", type=Path, default=ROOT / "bench" / "eval_bundle")
    r = sub.add_parser("run")
    r.add_argument("-i", "--bundle", type=Path, default=ROOT / "bench" / "eval_bundle")
    r.add_argument("-o", "--out", type=Path, required=True)
    for name, default in (("context", 512), ("layers", 6), ("width", 384), ("heads", 6), ("batch", 64),
                          ("lr", 1e-3), ("train_bytes", 8_000_000)):
        r.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    args = ap.parse_args()
    if args.cmd == "export":
        export(args.config, args.out)
    else:
        run(args.bundle, args.out, {k: getattr(args, k) for k in ("context", "layers", "width", "heads", "batch",
                                                                 "lr", "train_bytes")})


if __name__ == "__main__":
    main()

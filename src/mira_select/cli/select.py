"""`mira train | score | select | dataman | eval | export`: from teacher labels to a selected, materialized corpus."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..config import load_config
from .common import ConfigOpt, app, console, err_console
from .tables import _fmt, _mask, print_accounting, selection_table


@app.command()
def train(
    config: Path = ConfigOpt,
    force: bool = typer.Option(False, "--force", help="Refit even if the students are current."),
) -> None:
    """Fit each group's student on its teacher labels; write metrics (MAE, Spearman) and the reliability mask."""
    from rich.table import Table

    from ..progress import RichReporter
    from ..stages.train import TrainStage

    cfg = load_config(config)
    result = TrainStage(cfg, reporter=RichReporter(err_console)).run(force=force)
    table = Table(title=f"students (validation vs teacher){' — up to date' if result.skipped else ''}")
    for col in ("group", "tier", "fitted on", "judged", "Spearman", "MAE", "with twins: ρ, twin below",
                "other tiers (ρ with twins)", "fallback sources"):
        table.add_column(col)
    for group, m in result.groups.items():
        o = m["overall"]
        tw = m.get("with_twins", {})  # metrics from before twins were judged have none
        others = ", ".join(f"{k} {_fmt(v.get('with_twins', v['overall'])['spearman'])}"
                           for k, v in m["tiers"].items() if k != m["kind"])
        mask = _mask(cfg, group)
        judged = f"{m['n_val']} ({m.get('validation', 'val split')})"
        table.add_row(group, m["kind"], str(m["n_train"]), judged, _fmt(o["spearman"]),
                      _fmt(o["mae"]), f"{_fmt(tw.get('spearman'))}, {_fmt(tw.get('twin_accuracy'))}",
                      others or "-", str(sum(v["fallback"] for v in mask.values())))
    console.print(table)

@app.command()
def score(
    config: Path = ConfigOpt,
    executor: Optional[str] = typer.Option(None, "--executor", help="local or ray (default: config)."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address (default: local)."),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", help="Parallel workers."),
    force: bool = typer.Option(False, "--force", help="Rescore every shard."),
) -> None:
    """Score every record with its group's student; writes scores/<source>/part-NNNNN.parquet."""
    from ..executor import make_executor
    from ..progress import RichReporter
    from ..stages.score import ScoreStage

    cfg = load_config(config)
    ex_cfg = cfg.executor.model_copy(update={k: v for k, v in {"kind": executor, "address": address}.items()
                                             if v is not None})
    if ex_cfg.kind not in ("local", "ray"):
        from ..errors import MiraError

        raise MiraError(f"--executor must be local or ray, got {ex_cfg.kind!r}")
    with make_executor(ex_cfg, workers) as ex:
        result = ScoreStage(cfg, executor=ex, reporter=RichReporter(err_console)).run(force=force)
    if result.shards_done == 0:
        console.print(f"score: nothing to do — {result.shards_skipped} shard(s) already scored")
    else:
        console.print(f"score: {result.records:,} records in {result.shards_done} shard(s) "
                      f"({result.shards_skipped} already done), {result.seconds:.1f}s "
                      f"({result.records / max(result.seconds, 1e-9):,.0f} records/s)")

@app.command("select")
def select_(
    config: Path = ConfigOpt,
    variant: Optional[str] = typer.Option(None, "--variant", help="group (MIRA-Group), source, global, or a baseline: random, ppl, dsir, dataman, full."),
    budget: Optional[float] = typer.Option(None, "--budget", help="Share of tokens to keep, e.g. 0.5."),
    force: bool = typer.Option(False, "--force", help="Reselect even if current."),
) -> None:
    """Keep a token budget of the best-scored records per group / source / globally."""
    from ..stages.select import SelectStage

    cfg = load_config(config)
    r = SelectStage(cfg).run(variant, budget, force=force)
    console.print(selection_table(r.summary, "per_group", " — up to date" if r.skipped else ""))

@app.command("dataman")
def dataman(
    config: Path = ConfigOpt,
    force: bool = typer.Option(False, "--force", help="Relabel and refit (the teacher cache still answers)."),
) -> None:
    """DataMan-style baseline: label with a fixed 14-criteria rubric, fit the same student tier."""
    from ..baselines.dataman import DatamanLabelStage, train_dataman
    from ..progress import RichReporter

    cfg = load_config(config)
    stage = DatamanLabelStage(cfg, reporter=RichReporter(err_console))
    for group, c in stage.run(force=force).counts.items():
        console.print(f"dataman labels: {c['labeled']} labeled ({c['train']} train / {c['val']} val), "
                      f"{c['dead']} dead-lettered of {c['sampled']} sampled")
    m = train_dataman(cfg, stage.ws)
    console.print(f"dataman student ({m['kind']}): overall Spearman {_fmt(m['overall']['spearman'])}, "
                  f"MAE {_fmt(m['overall']['mae'])} on {m['n_val']} validation records")
    print_accounting(console, stage._teacher)

@app.command("eval")
def eval_(
    config: Path = ConfigOpt,
    variant: Optional[list[str]] = typer.Option(None, "--variant", help="Repeatable; default: eval.variants."),
    proxy: Optional[list[str]] = typer.Option(None, "--proxy", help="ngram and/or transformer (default both)."),
    max_items: int = typer.Option(200, "--max-items", help="Benchmark items per benchmark (seeded sample)."),
) -> None:
    """Train the same proxy LMs on every variant's selection; loss on benchmark solutions and group holdouts."""
    from ..evaluate.run import EvalRunner
    from ..progress import RichReporter

    cfg = load_config(config)
    proxies = tuple(proxy or ("ngram", "transformer"))
    bad = set(proxies) - {"ngram", "transformer"}
    if bad:
        from ..errors import MiraError

        raise MiraError(f"--proxy must be ngram or transformer, got {', '.join(sorted(bad))}")
    r = EvalRunner(cfg, reporter=RichReporter(err_console), max_items=max_items).run(variant or None, proxies)
    console.print(r.table_md, highlight=False)
    for v, why in r.results["skipped"].items():
        console.print(f"[yellow]skipped {v}:[/yellow] {why}", highlight=False)
    console.print(f"eval: {r.seconds:.0f}s; tables in {cfg.workspace_path / 'eval'}")

@app.command()
def export(
    config: Path = ConfigOpt,
    variant: Optional[str] = typer.Option(None, "--variant", help="Which selection (default: config)."),
) -> None:
    """Write the kept records of a selection as export/<variant>/<source>.jsonl.zst."""
    from ..stages.export import export_selection

    cfg = load_config(config)
    name = variant or cfg.budget.variant
    result = export_selection(cfg, name)
    console.print(f"export {name}: {sum(result.files.values()):,} records in {len(result.files)} file(s) "
                  f"under {cfg.workspace_path / 'export' / name}")

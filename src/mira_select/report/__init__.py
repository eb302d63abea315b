"""`mira report`: one self-contained HTML page that shows why records were kept or dropped.

Sections follow the pipeline: corpus → groups → rubrics → labels and student fidelity → selection → examples →
evaluation. Data comes from `collect` (workspace artifacts only), figures from `plots` (inline PNG), layout from
``template.html.j2``. The page is written atomically to ``<workspace>/report/index.html``.
"""

from __future__ import annotations

import datetime as _dt
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ..anchor_choice import label_dimensionality, real_labels
from ..variants import VARIANTS
from ..config import MiraConfig
from ..errors import MiraError
from ..stages.label import LabelStage
from ..workspace import Workspace, atomic_write_bytes
from . import collect, plots


def write_report(cfg: MiraConfig, out: Path | None = None) -> Path:
    ws = Workspace(cfg.workspace_path)
    if not ws.manifest_path.exists():
        raise MiraError(f"nothing to report: {ws.root} has no manifest yet; run `mira ingest` (or `mira run`) first")
    html = render(build_context(cfg, ws))
    path = out or ws.root / "report" / "index.html"
    atomic_write_bytes(path, html.encode("utf-8"))
    path.chmod(0o644)  # a page to share or serve, not a secret
    return path


def render(context: dict[str, Any]) -> str:
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("mira_select", "report"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]), undefined=jinja2.StrictUndefined)
    env.filters["num"] = lambda x: "-" if x is None else f"{x:,}" if isinstance(x, int) else f"{x:,.2f}"
    env.filters["pct"] = lambda x: f"{100 * x:.1f}%"
    env.filters["f3"] = lambda x: "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"
    return env.get_template("template.html.j2").render(**context)


def build_context(cfg: MiraConfig, ws: Workspace) -> dict[str, Any]:
    corpus = collect.corpus(ws)
    grp = collect.groups(ws)
    group_names = list(grp["groups"]) if grp else []
    group_of = {s: g for g, members in (grp["groups"] if grp else {}).items() for s in members}
    rubrics = collect.rubrics(ws, group_names)
    labels = collect.labels(ws, rubrics, n_examples=2)
    label_stage = LabelStage(cfg, ws)  # its record cut per group: what the labels were asked with
    sels = collect.selections(ws)
    variant = cfg.budget.variant if cfg.budget.variant in sels else next(iter(sels), None)
    order = [variant, *VARIANTS]
    sels = dict(sorted(sels.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))
    ctx: dict[str, Any] = {
        "title": f"mira-select report — {ws.root.resolve().parent.name}/{ws.root.name}",
        "generated": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "workspace": str(ws.root.resolve()), "budget": cfg.budget.fraction, "variant": variant,
        "corpus": corpus, "corpus_plot": plots.corpus_tokens(corpus["rows"]) if corpus else None,
        "groups": grp, "run": collect.run_info(ws),
        "group_plot": plots.similarity_heatmap(grp["sources"], grp["similarity"], grp["groups"]) if grp else None,
        "rubrics": [{"r": r, "plot": plots.judgment_projection(r.projection, r.anchors)} for r in rubrics],
        "labels": [_label_section(gl, label_stage.record_cut(gl.group)) for gl in labels],
    }
    ctx["selection"] = _selection_section(ws, sels, variant, group_of) if variant else None
    ctx["eval"] = _eval_section(collect.evaluation(ws))
    ctx["prefilter"] = collect.prefilter(ws)
    ctx["check"] = collect.scorer_check(ws)
    return ctx


# a source with at least this share of its labeled records longer than the record cut is flagged: its labels judge
# a head + tail view, which can decide them (bench/label_cut.py)
MOSTLY_CUT = 0.5


def _label_cut(real: pa.Table, cut: int) -> dict[str, Any] | None:
    """The record cut the group's labels were asked with, and per source the share of real labeled records above
    it (``real``: twins left out): where that share is high, the teacher judged views of the records, not the records."""
    if not real.num_rows:
        return None
    tokens = np.asarray(real.column("n_tokens").to_pylist(), float)
    sources = np.asarray(real.column("source").to_pylist())
    shares = {s: float(np.mean(tokens[sources == s] > cut)) for s in sorted(set(sources))}
    return {"tokens": cut, "shares": shares, "mostly_cut": [s for s, v in shares.items() if v >= MOSTLY_CUT]}


def _label_section(gl: collect.GroupLabels, cut: int) -> dict[str, Any]:
    names = [a["name"] for a in gl.anchors]
    real = real_labels(gl.table)
    out: dict[str, Any] = {"group": gl.group, "n": gl.table.num_rows, "examples": gl.examples,
                           "dist_plot": plots.label_distributions(names, [gl.scores(a["id"]) for a in gl.anchors]),
                           "metrics": gl.metrics, "fid_plot": None, "fallback": [], "tiers": {},
                           "dims": _dimensionality(gl, real), "cut": _label_cut(real, cut)}
    if gl.metrics:
        out["tiers"] = {k: {**v["overall"], "with_twins": v.get("with_twins") or {}}
                        for k, v in gl.metrics.get("tiers", {}).items()}
        per_source, pooled = gl.metrics.get("per_source", {}), gl.metrics.get("pooled", {})
        mask = gl.mask or {}
        sources = sorted(mask or per_source)
        ids = [a["id"] for a in gl.anchors]
        # the number the mask decided on: the source's own val ρ, or the group's pooled ρ when the source had too
        # few val records; a fallback source used every anchor although none passed, so all its cells are veiled
        basis = [[mask.get(s, {}).get("basis", {}).get(a, "source") for a in ids] for s in sources]
        rho = np.array([[_nan((per_source.get(s, {}) if b == "source" else pooled if b == "pooled" else {})
                              .get(a, {}).get("spearman")) for a, b in zip(ids, row)]
                        for s, row in zip(sources, basis)]).reshape(len(sources), len(ids))
        masked = np.array([[mask.get(s, {}).get("fallback", False) or a not in mask.get(s, {}).get("anchors", ids)
                            for a in ids] for s in sources], bool).reshape(len(sources), len(ids))
        is_pooled = np.array([[b == "pooled" for b in row] for row in basis], bool).reshape(len(sources), len(ids))
        out["fid_plot"] = plots.fidelity_heatmap(sources, names, rho, masked, is_pooled)
        out["fallback"] = sorted(s for s, m in mask.items() if m.get("fallback"))
        out["reliable"] = {s: len(m.get("anchors", [])) for s, m in mask.items()}
    return out


def _dimensionality(gl: collect.GroupLabels, real: pa.Table) -> dict[str, Any] | None:
    """The labels' separate judgments (anchor_choice.label_dimensionality) on the real, non-twin records."""
    if not real.num_rows or not gl.anchors:
        return None
    scores = np.column_stack([real.column(f"score:{a['id']}").to_numpy(zero_copy_only=False).astype(float)
                              for a in gl.anchors])
    return label_dimensionality(scores, real.column("source").to_pylist())


def _nan(x) -> float:
    return float("nan") if x is None else float(x)


def _selection_section(ws: Workspace, sels: dict[str, Any], variant: str, group_of: dict[str, str]) -> dict[str, Any]:
    main = sels[variant]
    scored = collect.scores(ws, group_of, variant)
    units = main.get("units", {})

    def cut(s: collect.SourceScores) -> float | None:
        key = {"group": s.group, "source": s.source}.get(variant, "all")
        return units.get(key, {}).get("threshold")

    hist = [(s.source, s.scores, s.kept, cut(s)) for s in scored]
    points = {g: collect.sample_points(scored, g) for g in dict.fromkeys(group_of.values())}
    length_rho = {}
    for g in points:
        these = [s for s in scored if s.group == g]
        if these:
            from scipy.stats import spearmanr

            n = np.concatenate([s.n_tokens for s in these])
            y = np.concatenate([s.scores for s in these])
            length_rho[g] = float(spearmanr(n, y).statistic) if len(n) > 2 and np.ptp(y) > 0 else None
    shares = {v: {g: d["kept_tokens"] / max(d["tokens"], 1) for g, d in s["per_group"].items()}
              for v, s in sels.items()}
    return {"summary": main, "hist_plot": plots.score_histograms(hist), "length_plot": plots.score_vs_length(points),
            "length_rho": length_rho, "shares": shares, "shares_plot": plots.kept_shares(shares),
            "variants": sels, "groups": sorted(main["per_group"])}


def _eval_section(results: dict[str, Any] | None) -> dict[str, Any] | None:
    if not results or not results.get("variants"):
        return None
    order = list(VARIANTS)
    rows = dict(sorted(results["variants"].items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 99))
    results = {**results, "variants": rows}
    cols = [c for c in ("mbppplus", "spider", "bird", "macro")]
    holdout = sorted({k for r in rows.values() for p in ("ngram", "transformer") for k in ((r.get(p) or {}).get("mean")
                      if p == "transformer" else (r.get(p) or {})) or {} if k.startswith("holdout:")})
    plot = None
    tr = {v: r["transformer"] for v, r in rows.items() if "transformer" in r}
    if tr:
        plot = plots.eval_bars(list(tr), [t["mean"]["macro"] for t in tr.values()],
                               [t["std"]["macro"] for t in tr.values()],
                               f"transformer proxy: macro benchmark loss, mean ± std over {len(results['seeds'])} seeds")
    return {"results": results, "cols": cols, "holdout": holdout, "plot": plot}

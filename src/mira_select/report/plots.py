"""The report's figures: matplotlib (Agg) rendered to inline PNG data URIs, so the page needs no network or files.

Each function takes the plain data of `collect` and returns a data URI (or None when there is nothing to draw).
Sizes are in inches at 100 dpi and chosen for a ~1400 px wide page.
"""

from __future__ import annotations

import base64
import io
import math
from typing import Any

import numpy as np

FORMAT_COLORS = {"text": "#4C72B0", "code": "#DD8452", "qa": "#55A868", "qa_think": "#C44E52", "agent": "#8172B3"}
DPI = 100


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10, "axes.spines.top": False, "axes.spines.right": False,
                         "figure.dpi": DPI, "savefig.dpi": DPI})
    return plt


def _uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    _plt().close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _short(name: str, n: int = 28) -> str:
    return name if len(name) <= n else name[: n - 1] + "…"


def corpus_tokens(rows: list[dict[str, Any]]) -> str:
    """Tokens per source (bar colour = detected main format) and records per detected format (stacked)."""
    plt = _plt()
    rows = sorted(rows, key=lambda r: r["tokens"])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, max(3.5, 0.28 * len(rows))), gridspec_kw={"wspace": 0.55})
    names = [r["source"] for r in rows]
    ax1.barh(names, [r["tokens"] / 1e6 for r in rows], color=[FORMAT_COLORS.get(r["format"], "grey") for r in rows])
    ax1.set_xlabel("tokens (millions)")
    ax1.set_title("tokens per source (colour: main format)")
    left = np.zeros(len(rows))
    for fmt, color in FORMAT_COLORS.items():
        counts = np.array([r["formats"].get(fmt, 0) for r in rows], float)
        if counts.any():
            ax2.barh(names, counts, left=left, color=color, label=fmt)
            left += counts
    ax2.set_xlabel("records")
    ax2.set_title("records per detected format")
    ax2.legend(loc="lower right", frameon=False)
    return _uri(fig)


def similarity_heatmap(sources: list[str], sim: np.ndarray, groups: dict[str, list[str]]) -> str:
    """Source × source cosine similarity of mean embeddings, ordered by group, with group boundaries."""
    plt = _plt()
    order = [s for members in groups.values() for s in members if s in sources]
    idx = [sources.index(s) for s in order]
    m = sim[np.ix_(idx, idx)]
    n = len(order)
    fig, ax = plt.subplots(figsize=(min(11, 3 + 0.36 * n), min(10, 2.5 + 0.34 * n)))
    im = ax.imshow(m, cmap="viridis", vmin=float(np.min(m)), vmax=1.0)
    ax.set_xticks(range(n), [_short(s, 26) for s in order], rotation=60, ha="right", fontsize=9)
    ax.set_yticks(range(n), [_short(s, 26) for s in order], fontsize=9)
    pos = 0
    for g, members in groups.items():
        k = len([s for s in members if s in sources])
        ax.add_patch(plt.Rectangle((pos - 0.5, pos - 0.5), k, k, fill=False, edgecolor="white", lw=2))
        ax.text(pos + k - 0.3, pos + k / 2 - 0.5, g, ha="left", va="center", color="white", fontsize=10,
                fontweight="bold", bbox={"boxstyle": "round,pad=0.2", "fc": "#1d2f4f", "lw": 0})
        pos += k
    fig.colorbar(im, ax=ax, fraction=0.04, label="cosine similarity")
    return _uri(fig)


def judgment_projection(proj: dict[str, Any], anchors: list[dict[str, Any]]) -> str | None:
    """2-D projection of the judgment points (dimension + reason embeddings), coloured by anchor cluster."""
    if not proj or not proj.get("x"):
        return None
    plt = _plt()
    x, y, lab = np.asarray(proj["x"]), np.asarray(proj["y"]), np.asarray(proj["anchor"])
    fig, ax = plt.subplots(figsize=(6.8, 5.4))
    cmap = plt.get_cmap("tab20")
    for k in sorted(set(lab.tolist())):
        sel = lab == k
        ax.scatter(x[sel], y[sel], s=22, color=cmap(k % 20), alpha=0.8, linewidths=0)
        if 0 <= k < len(anchors):
            ax.annotate(_short(anchors[k]["name"], 26), (float(np.median(x[sel])), float(np.median(y[sel]))),
                        fontsize=8.5, ha="center", fontweight="bold",
                        bbox={"boxstyle": "round,pad=0.15", "fc": "white", "alpha": 0.7, "lw": 0})
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{len(x)} judgment points, {len(set(lab.tolist()))} clusters")
    return _uri(fig)


def label_distributions(names: list[str], columns: list[np.ndarray]) -> str | None:
    """Teacher score distribution per anchor (box + jittered points) on a 0–10 axis."""
    if not columns or not len(columns[0]):
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.6, 0.42 * len(names) + 1.2))
    data = [c[~np.isnan(c)] for c in columns]
    ax.boxplot(data, vert=False, widths=0.6, showfliers=False)
    rng = np.random.default_rng(0)
    for i, d in enumerate(data, start=1):
        ax.scatter(d, i + rng.uniform(-0.18, 0.18, len(d)), s=6, alpha=0.45, color="#4C72B0", linewidths=0)
    ax.set_yticks(range(1, len(names) + 1), [_short(n, 34) for n in names], fontsize=8)
    ax.set_xlim(-0.3, 10.3)
    ax.set_xlabel("teacher score (0–10)")
    ax.invert_yaxis()
    return _uri(fig)


def fidelity_heatmap(sources: list[str], names: list[str], rho: np.ndarray, masked: np.ndarray,
                     pooled: np.ndarray) -> str | None:
    """Spearman(student, teacher) on validation per (source, anchor) — * = pooled over the group because the source
    had too few validation records; grey veil and × = not reliable (masked, or the source fell back)."""
    if rho.size == 0:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(0.62 * len(names) + 3.0, 0.45 * len(sources) + 2.0))
    im = ax.imshow(np.nan_to_num(rho, nan=0.0), cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
    for i in range(len(sources)):
        for j in range(len(names)):
            v = rho[i, j]
            if masked[i, j]:  # grey veil: this (source, anchor) does not enter the record's score
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, color="#bbbbbb", alpha=0.75, lw=0))
            txt = ("n/a" if math.isnan(v) else f"{v:.2f}") + ("*" if pooled[i, j] else "")
            ax.text(j, i, ("× " if masked[i, j] else "") + txt, ha="center", va="center", fontsize=8.5,
                    color="#333333" if masked[i, j] or math.isnan(v) or abs(v) <= 0.6 else "white")
    ax.set_xticks(range(len(names)), [_short(n, 22) for n in names], rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(sources)), [_short(s, 30) for s in sources], fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.03, label="Spearman ρ (val)")
    return _uri(fig)


def score_histograms(per_source: list[tuple[str, np.ndarray, np.ndarray, float | None]]) -> str | None:
    """Per source: histogram of aggregated scores, kept (dark) vs dropped (light), the group's cut as a line."""
    if not per_source:
        return None
    plt = _plt()
    cols = 4
    rows = math.ceil(len(per_source) / cols)
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(rows, cols, figsize=(13.5, 2.3 * rows), squeeze=False,
                             gridspec_kw={"hspace": 0.75, "wspace": 0.3})
    for ax, (name, scores, kept, cut) in zip(axes.flat, per_source):
        lo, hi = (float(np.min(scores)), float(np.max(scores))) if len(scores) else (0.0, 10.0)
        bins = np.linspace(lo, hi if hi > lo else lo + 1, 31)
        ax.hist(scores[~kept], bins=bins, color="#c9d6ea", label="dropped")
        ax.hist(scores[kept], bins=bins, color="#2d5d9f", label="kept")
        if cut is not None:
            ax.axvline(cut, color="#C44E52", lw=1.5)
        ax.set_title(f"{_short(name, 30)} ({kept.mean():.0%} kept)", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(5))
    for ax in list(axes.flat)[len(per_source):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7, frameon=False)
    return _uri(fig)


def kept_shares(variants: dict[str, dict[str, float]]) -> str | None:
    """Kept-token share per group, one bar per selection variant."""
    if not variants:
        return None
    plt = _plt()
    groups = sorted({g for shares in variants.values() for g in shares})
    fig, ax = plt.subplots(figsize=(12, 3.8))
    width = 0.8 / len(variants)
    cmap = plt.get_cmap("tab10")
    for i, (v, shares) in enumerate(variants.items()):
        ax.bar(np.arange(len(groups)) + i * width - 0.4 + width / 2, [100 * shares.get(g, 0) for g in groups],
               width, label=v, color=cmap(i % 10))
    ax.axhline(50, color="grey", lw=0.8, ls="--")
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel("kept tokens (% of group)")
    ax.set_ylim(0, 105)
    ax.legend(ncol=min(8, len(variants)), fontsize=8, frameon=False, loc="upper center", bbox_to_anchor=(0.5, 1.16))
    return _uri(fig)


def score_vs_length(points: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> str | None:
    """Aggregated score against record length (log tokens) per group, kept vs dropped."""
    points = {g: p for g, p in points.items() if len(p[0])}
    if not points:
        return None
    plt = _plt()
    from matplotlib.ticker import NullFormatter

    fig, axes = plt.subplots(1, len(points), figsize=(2.8 * len(points) + 1, 3.0), squeeze=False,
                             gridspec_kw={"wspace": 0.3})
    for ax, (g, (n, y, k)) in zip(axes[0], points.items()):
        ax.scatter(n[~k], y[~k], s=4, alpha=0.35, color="#9aaccc", linewidths=0, label="dropped")
        ax.scatter(n[k], y[k], s=4, alpha=0.5, color="#2d5d9f", linewidths=0, label="kept")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(g, fontsize=10)
        ax.set_xlabel("tokens (log)", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel("score")
    axes[0][0].legend(fontsize=7, frameon=False, markerscale=3)
    return _uri(fig)


def eval_bars(variants: list[str], means: list[float], stds: list[float], title: str) -> str | None:
    if not variants:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 3.2))
    ax.bar(variants, means, yerr=stds, color="#4C72B0", capsize=4)
    lo = min(m - s for m, s in zip(means, stds))
    hi = max(m + s for m, s in zip(means, stds))
    pad = (hi - lo) * 0.3 or 0.05
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_ylabel("loss (lower is better)")
    ax.set_title(title)
    return _uri(fig)

"""A small scored-workspace builder for the student / score / select tests.

Ingest and grouping run for real on slices of the demo corpus. The teacher is replaced by a *known* labeling
function (record properties plus the corpus's ground-truth low-quality marker), so the tests can check that the
students recover a signal that is really there, and that selection acts on it, without an hour of LLM calls.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import yaml

from mira_select.stages.label import label_table, write_splits
from mira_select.teacher.types import Anchor
from mira_select.workspace import Workspace, write_json

from .conftest import demo_slice, run_mira

ANCHORS = [Anchor("a01", "Overall quality", "clean, useful content", "combined"),
           Anchor("a02", "Substance", "enough content to learn from", "combined"),
           Anchor("a03", "Readable lines", "lines of readable length", "combined")]
GROUPS = {"code": ["code_python_pypi", "code_generated_minified"],
          "text": ["text_django_docs", "text_changelogs_licenses"]}


def known_scores(text: str, low_quality: bool, shift: float) -> list[float]:
    lines = text.splitlines() or [""]
    short = sum(len(line) <= 100 for line in lines) / len(lines)
    comments = sum(line.lstrip().startswith(("#", "//", "*", '"""')) for line in lines) / len(lines)
    a1 = 3.0 + 4.0 * (not low_quality) + 3.0 * comments
    a2 = math.log2(len(text) + 1) - 5.0
    a3 = 10.0 * short
    return [float(np.clip(v + shift, 0, 10)) for v in (a1, a2, a3)]


def build_workspace(root: Path, ground_truth, files_per_source: int = 1, per_file: int = 60,
                    text_shift: float = 2.5, labels_per_source: int = 40, extra: dict | None = None) -> Path:
    """Ingest + prefilter + group (override) for real, then rubrics and labels from ``known_scores``. The prefilter
    runs with its rules off unless ``extra`` says otherwise (these tests are about scores and budgets; its guard still
    flags contamination, which select needs). Returns the config path."""
    sources = [s for members in GROUPS.values() for s in members]
    demo_slice(root / "all", sources, files_per_source * per_file)
    cfg_sources = []
    for s in sources:
        paths = _split_file(root, s, files_per_source, per_file)
        cfg_sources.append({"name": s, "paths": paths})
    cfg = {"workspace": "ws", "sources": cfg_sources,
           "ingest": {"exclude_fields": ["group", "format", "meta.lowq_kind"]}, "executor": {"workers": 1},
           "groups": {"k": 2, "sample_per_source": 10,
                      "override": {s: g for g, members in GROUPS.items() for s in members}},
           "student": {"kind": "hashed_linear", "min_n": 10}, "prefilter": {"enabled": False}, **(extra or {})}
    (root / "mira.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    run_mira("ingest", "-c", str(root / "mira.yaml"), "-q", check=True)
    run_mira("prefilter", "-c", str(root / "mira.yaml"), check=True)
    run_mira("group", "-c", str(root / "mira.yaml"), check=True)
    ws = Workspace(root / "ws")
    truth = {}
    for s in sources:
        truth.update(ground_truth(s))
    for group, members in GROUPS.items():
        write_json(ws.root / "rubrics" / f"{group}.json", {
            "group": group, "sources": members, "with_parts": False, "teacher": "known-function",
            "n_points": 0, "notes": [],
            "anchors": [{"id": a.id, "name": a.name, "definition": a.definition, "part": a.part, "cluster_size": 1}
                        for a in ANCHORS]})
        rows = []
        for s in members:
            for shard in ws.record_shards(s):
                t = pq.read_table(shard, columns=["id", "source", "format", "text", "n_tokens"]).to_pylist()
                for r in t[: max(1, labels_per_source // files_per_source)]:
                    y = known_scores(r["text"], truth[r["id"]]["lowq_kind"] is not None,
                                     text_shift if group == "text" else 0.0)
                    row = {k: r[k] for k in ("id", "source", "format", "n_tokens")}
                    row.update({"readout": "test", "model": "known-function", "prompt_hash": "-"})
                    for a, v in zip(ANCHORS, y):
                        row.update({f"score:{a.id}": v, f"greedy:{a.id}": round(v), f"rationale:{a.id}": "known"})
                    rows.append(row)
        write_splits(ws.root / "labels" / group, label_table(rows, ANCHORS), val_share=0.5, min_val=0)
    return root / "mira.yaml"


def _split_file(root: Path, source: str, n_files: int, per_file: int) -> list[str]:
    import zstandard

    data = zstandard.ZstdDecompressor().decompress((root / "all" / f"{source}.jsonl.zst").read_bytes(),
                                                   max_output_size=1 << 30)
    lines = [ln for ln in data.split(b"\n") if ln]
    paths = []
    for i in range(n_files):
        chunk = lines[i * per_file:(i + 1) * per_file]
        if not chunk:
            break
        p = root / "corpus" / source / f"part{i:03d}.jsonl.zst"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(zstandard.ZstdCompressor().compress(b"\n".join(chunk) + b"\n"))
        paths.append(str(p.relative_to(root)))
    return paths

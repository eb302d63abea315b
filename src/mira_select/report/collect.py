"""Read a workspace's artifacts into plain data for the report: one function per section, nothing recomputed.

Every number the page shows comes from a file a stage wrote (manifest, groups.json, rubrics/, discover/, labels/,
students/, scores/, selection/, eval/, run/); a section whose stage has not run yet is None and the page says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..io.kept import kept_path
from ..workspace import Workspace, read_json

MAX_POINTS = 4000  # score-vs-length scatter: a seeded sample per group keeps the page light


def _json(path: Path) -> Any:
    return read_json(path) if path.exists() else None


def corpus(ws: Workspace) -> dict[str, Any] | None:
    if not ws.manifest_path.exists():
        return None
    m = ws.manifest()
    flagged = (_json(ws.root / "prefilter" / "summary.json") or {}).get("sources", {})  # the guard runs there
    rows = [{"source": name, "format": s["format"], "formats": s.get("formats", {}), "records": s["records"],
             "tokens": s["tokens"], "mb": s["bytes"] / 1e6, "quarantined": s["quarantined"],
             "dropped": s["dropped"], "contaminated": flagged.get(name, {}).get("contaminated")}
            for name, s in m["sources"].items()]
    return {"rows": rows, "tokenizer": m["tokenizer"]["name"],
            "records": sum(r["records"] for r in rows), "tokens": sum(r["tokens"] for r in rows)}


def groups(ws: Workspace) -> dict[str, Any] | None:
    g = _json(ws.root / "groups.json")
    if g is None:
        return None
    return {"groups": g["groups"], "sources": g["sources"], "similarity": np.asarray(g["similarity"], float),
            "embedder": g["embedder"], "overridden": g["overridden"], "k": g["k"]}


@dataclass
class GroupRubric:
    group: str
    anchors: list[dict[str, Any]]  # every candidate discover wrote
    teacher: str | None
    n_points: int
    n_judged: int
    notes: list[str]
    projection: dict[str, Any] | None
    choice: dict[str, Any] | None = None  # labels/<group>/anchors.json: active, dropped, per-anchor label stats

    @property
    def active(self) -> list[dict[str, Any]]:
        if not self.choice:
            return self.anchors
        keep = set(self.choice["active"])
        return [a for a in self.anchors if a["id"] in keep]


def rubrics(ws: Workspace, group_names: list[str]) -> list[GroupRubric]:
    out = []
    for g in group_names:
        r = _json(ws.root / "rubrics" / f"{g}.json")
        if r is None:
            continue
        out.append(GroupRubric(g, r["anchors"], r.get("teacher"), r.get("n_points", 0), r.get("n_judged", 0),
                               r.get("notes", []), _json(ws.root / "discover" / g / "projection.json"),
                               _json(ws.root / "labels" / g / "anchors.json")))
    return out


@dataclass
class GroupLabels:
    group: str
    anchors: list[dict[str, Any]]  # id, name
    table: pa.Table  # train + val labels
    metrics: dict[str, Any] | None
    mask: dict[str, Any] | None
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # top / bottom

    def scores(self, anchor: str) -> np.ndarray:
        return self.table.column(f"score:{anchor}").to_numpy(zero_copy_only=False).astype(float)

    def mean_scores(self) -> np.ndarray:
        cols = [self.scores(a["id"]) for a in self.anchors]
        return np.nanmean(np.vstack(cols), axis=0) if cols else np.zeros(self.table.num_rows)


def labels(ws: Workspace, rubric_list: list[GroupRubric], n_examples: int = 3) -> list[GroupLabels]:
    out = []
    for r in rubric_list:
        parts = [ws.root / "labels" / r.group / f"{s}.parquet" for s in ("train", "val")]
        if not all(p.exists() for p in parts):
            continue
        table = pa.concat_tables([pq.read_table(p) for p in parts], promote_options="default")
        sdir = ws.root / "students" / r.group
        gl = GroupLabels(r.group, [{"id": a["id"], "name": a["name"]} for a in r.active], table,
                         _json(sdir / "metrics.json"), _json(sdir / "mask.json"))
        if table.num_rows:
            # examples come from the explained sample (records labeled with evidence + rationale) where there is one
            explained = _explained_rows(table, gl.anchors)
            pool = explained if len(explained) else np.arange(table.num_rows)
            order = pool[np.argsort(-gl.mean_scores()[pool], kind="stable")]
            gl.examples = {"top": _examples(ws, gl, order[:n_examples]),
                           "bottom": _examples(ws, gl, order[::-1][:n_examples])}
        out.append(gl)
    return out


def _examples(ws: Workspace, gl: GroupLabels, rows: np.ndarray) -> list[dict[str, Any]]:
    means = gl.mean_scores()
    out = []
    for i in rows:
        row = {k: gl.table.column(k)[int(i)].as_py() for k in ("id", "source", "n_tokens")}
        row["mean"] = float(means[i])
        row["text"] = _record_text(ws, row["source"], row["id"])
        row["twin"] = gl.table.column("twin")[int(i)].as_py() if "twin" in gl.table.column_names else ""
        row["anchors"] = []
        for a in gl.anchors:
            evidence = _cell(gl.table, f"evidence:{a['id']}", int(i))
            row["anchors"].append({"name": a["name"], "score": gl.table.column(f"score:{a['id']}")[int(i)].as_py(),
                                   "rationale": _cell(gl.table, f"rationale:{a['id']}", int(i)),
                                   "evidence": evidence, "found": evidence_found(evidence, row["text"])})
        out.append(row)
    return out


def _cell(table: pa.Table, column: str, i: int) -> str:
    return (table.column(column)[i].as_py() or "") if column in table.column_names else ""


def _explained_rows(table: pa.Table, anchors: list[dict[str, Any]]) -> np.ndarray:
    if not anchors or f"rationale:{anchors[0]['id']}" not in table.column_names:
        return np.zeros(0, int)
    has = pc.not_equal(table.column(f"rationale:{anchors[0]['id']}"), "").to_numpy(zero_copy_only=False)
    return np.flatnonzero(np.asarray(has, bool))


def evidence_found(evidence: str, text: str) -> bool | None:
    """Whether a rationale's quoted evidence occurs in the record (whitespace and case folded); None if no quote."""
    quote = " ".join(evidence.strip().strip('"\'').split()).lower()
    if not quote:
        return None
    return quote in " ".join(text.split()).lower()


def _record_text(ws: Workspace, source: str, record_id: str, limit: int = 1200) -> str:
    for shard in ws.record_shards(source):
        t = pq.read_table(shard, columns=["id", "text"], filters=[("id", "=", record_id)])
        if t.num_rows:
            text = t.column("text")[0].as_py()
            return text if len(text) <= limit else text[:limit] + f" … [{len(text) - limit:,} more characters]"
    return "(record not found in records/)"


@dataclass
class SourceScores:
    source: str
    group: str
    scores: np.ndarray
    n_tokens: np.ndarray
    kept: np.ndarray  # bool, by the main variant (False where it did not select)


def scores(ws: Workspace, group_of: dict[str, str], variant: str) -> list[SourceScores]:
    kept_rows = _kept_rows(ws, variant)
    out = []
    for source, group in group_of.items():
        shards = sorted((ws.root / "scores" / source).glob("part-*.parquet"))
        if not shards:
            continue
        parts, kept = [], []
        for s in shards:  # score sidecars are row-aligned with the record shard of the same name
            t = pq.read_table(s, columns=["score", "n_tokens"])
            mask = np.zeros(t.num_rows, bool)
            mask[kept_rows.get((source, s.name), [])] = True
            parts.append(t)
            kept.append(mask)
        t = pa.concat_tables(parts)
        out.append(SourceScores(source, group, t.column("score").to_numpy(zero_copy_only=False).astype(float),
                                t.column("n_tokens").to_numpy(zero_copy_only=False).astype(float),
                                np.concatenate(kept)))
    return out


def _kept_rows(ws: Workspace, variant: str) -> dict[tuple[str, str], list[int]]:
    """(source, record shard) -> rows the selection kept (none when the variant has no current selection)."""
    path = kept_path(ws, variant)
    if not path.exists() or "row" not in pq.read_schema(path).names:
        return {}
    rows: dict[tuple[str, str], list[int]] = {}
    for batch in pq.ParquetFile(path).iter_batches(columns=["source", "shard", "row"]):
        d = batch.to_pydict()
        for source, shard, row in zip(d["source"], d["shard"], d["row"]):
            rows.setdefault((source, shard), []).append(row)
    return rows


def selections(ws: Workspace) -> dict[str, dict[str, Any]]:
    base = ws.root / "selection"
    if not base.exists():
        return {}
    return {p.name: read_json(p / "summary.json") for p in sorted(base.iterdir()) if (p / "summary.json").exists()}


def evaluation(ws: Workspace) -> dict[str, Any] | None:
    return _json(ws.root / "eval" / "results.json")


def prefilter(ws: Workspace) -> dict[str, Any] | None:
    s = _json(ws.root / "prefilter" / "summary.json")
    if s is None:
        return None
    rules = sorted({r for src in s["sources"].values() for r in src["fired"]})
    return {**s, "rules": rules}


def scorer_check(ws: Workspace) -> dict[str, Any] | None:
    return _json(ws.root / "check" / "scorer.json")


def run_info(ws: Workspace) -> dict[str, Any] | None:
    return _json(ws.root / "run" / "last.json")


def sample_points(s: list[SourceScores], group: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n_tokens, score, kept) of a group, at most MAX_POINTS of them (seeded), for the length scatter."""
    these = [x for x in s if x.group == group]
    if not these:
        return np.zeros(0), np.zeros(0), np.zeros(0, bool)
    n = np.concatenate([x.n_tokens for x in these])
    y = np.concatenate([x.scores for x in these])
    k = np.concatenate([x.kept for x in these])
    if len(n) > MAX_POINTS:
        idx = np.sort(np.random.default_rng(seed).choice(len(n), MAX_POINTS, replace=False))
        n, y, k = n[idx], y[idx], k[idx]
    return n, y, k

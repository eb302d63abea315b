"""`mira discover`: self-anchored rubrics. The teacher judges sampled records free-form, naming its own dimensions;
the judgments are embedded and clustered, and the point nearest each centroid becomes an anchor.

Nobody writes the rubric: what matters for agent trajectories (tool-call choice, error recovery) is found from the
agent group's own records, what matters for docs from the docs. qa_think groups get separate think / combined /
answer anchors (5 each by default) so reasoning and final answers are judged on their own terms.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from ..config import MiraConfig
from ..errors import MiraError
from ..sampling import SampledRecord, reservoir_sample
from .teacher_stage import TeacherStage
from ..teacher.prompts import prompt_version
from ..workspace import Workspace, atomic_write_bytes, read_json, write_json
from .group import load_groups

STAGE = "discover"


@dataclass
class DiscoverResult:
    rubrics: dict[str, dict[str, Any]]
    skipped: list[str]
    seconds: float


def stratified_sample(ws: Workspace, sources: list[str], n: int, seed: int) -> list[SampledRecord]:
    """About n records spread evenly over the sources (round-robin), seeded; short sources give what they have.

    Each source's pool holds twice its even share, so sources with spare records fill in for short ones.
    """
    per = math.ceil(n / max(len(sources), 1))
    pools = reservoir_sample(ws, sources, n=max(per * 2, per + 8), seed=seed)
    queues = {s: list(pools.get(s, [])) for s in sources}
    out: list[SampledRecord] = []
    while len(out) < n and any(queues.values()):
        for s in sources:
            if queues[s] and len(out) < n:
                out.append(queues[s].pop(0))
    return out


def group_members(ws: Workspace, cfg: MiraConfig) -> dict[str, list[str]]:
    groups = load_groups(ws)["groups"]
    manifest = ws.manifest()
    for name, sources in groups.items():
        if sum(manifest["sources"][s]["records"] for s in sources) == 0:
            raise MiraError(f"group {name!r} has no records (sources: {', '.join(sources)}); fix groups.override")
    return groups


def parts_for(records: list[SampledRecord]) -> bool:
    """A group is judged with think/combined/answer parts when most of its records carry a reasoning trace."""
    return sum(r.format == "qa_think" for r in records) * 2 > len(records)


class DiscoverStage(TeacherStage):
    stage = STAGE

    def rubric_path(self, group: str):
        return self.ws.root / "rubrics" / f"{group}.json"

    def run(self, force: bool = False) -> DiscoverResult:
        start = time.monotonic()
        d = self.cfg.discover
        groups = group_members(self.ws, self.cfg)
        rubrics, skipped = {}, []
        for group, sources in groups.items():
            fp = {"sources": sources, "discover": d.model_dump(mode="json"), "teacher": self.cfg.teacher.model,
                  "groups_embedder": load_groups(self.ws)["embedder"]}
            path = self.rubric_path(group)
            if not force and path.exists() and read_json(path).get("fingerprint") == fp:
                rubrics[group] = read_json(path)
                skipped.append(group)
                continue
            rubrics[group] = self._discover_group(group, sources, fp)
        if self._teacher is not None:
            self._teacher.save_accounting()
        return DiscoverResult(rubrics, skipped, time.monotonic() - start)

    def _discover_group(self, group: str, sources: list[str], fp: dict[str, Any]) -> dict[str, Any]:
        d = self.cfg.discover
        records = stratified_sample(self.ws, sources, d.records_per_group, seed=d.seed)
        notes = []
        if len(records) < d.records_per_group:
            notes.append(f"group has {len(records)} records, fewer than the {d.records_per_group} requested; "
                         "all of them were judged")
        with_parts = parts_for(records)
        teacher = self.teacher()
        items = [(r.id, "qa_think" if with_parts else r.format, r.text) for r in records]
        with self.reporter.task(f"discover {group}: judge {len(items)} records", total=len(items)) as bar:
            results = teacher.run(teacher.judge, items, on_result=lambda r: bar.advance())
        points, dead = [], []
        by_id = {r.id: r for r in records}
        for res in results:
            if res.data is None:
                dead.append({"record_id": res.record_id, "error": res.error})
                continue
            for dim in res.data["dimensions"]:
                points.append({"record_id": res.record_id, "source": by_id[res.record_id].source, **dim})
        out_dir = self.ws.root / "discover" / group
        atomic_write_bytes(out_dir / "judgments.jsonl", b"".join(orjson.dumps(p) + b"\n" for p in points))
        atomic_write_bytes(out_dir / "dead_letter.jsonl", b"".join(orjson.dumps(p) + b"\n" for p in dead))
        if not points:
            raise MiraError(f"discover {group}: the teacher produced no usable judgments "
                            f"({len(dead)} dead-lettered; see {out_dir / 'dead_letter.jsonl'})")
        anchors, projection = self._anchors(group, points, with_parts, notes)
        rubric = {
            "group": group, "fingerprint": fp, "sources": sources, "with_parts": with_parts,
            "teacher": teacher.model_id, "prompt_version": prompt_version("judge", "qa_think" if with_parts else
                                                                          records[0].format),
            "n_records": len(records), "n_judged": len(records) - len(dead), "n_dead": len(dead),
            "n_points": len(points), "anchors": anchors, "notes": notes,
        }
        write_json(self.rubric_path(group), rubric)
        write_json(out_dir / "projection.json", projection)
        return rubric

    def _anchors(self, group: str, points: list[dict[str, Any]], with_parts: bool,
                 notes: list[str]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        from sklearn.cluster import KMeans
        from sklearn.decomposition import PCA

        from ..embed import get_embedder

        d = self.cfg.discover
        embedder = get_embedder(self.cfg.groups.embedder)
        vecs = embedder.encode([f"{p['name']}: {p['reason']}" for p in points])
        parts = {"think": d.anchors_per_part, "combined": d.anchors_per_part, "answer": d.anchors_per_part} \
            if with_parts else {"combined": d.anchors}
        anchors: list[dict[str, Any]] = []
        labels = np.full(len(points), -1)
        for part, k_wanted in parts.items():
            idx = np.array([i for i, p in enumerate(points) if p["part"] == part or not with_parts])
            if len(idx) == 0:
                notes.append(f"no judgment points for part {part!r}")
                continue
            distinct = len(np.unique(np.round(vecs[idx], 5), axis=0))  # repeated judgments embed identically
            k = min(k_wanted, max(1, len(idx) // 2), distinct)
            if k < k_wanted:
                notes.append(f"part {part!r}: {len(idx)} points ({distinct} distinct), so {k} anchors instead of "
                             f"{k_wanted}")
            km = KMeans(n_clusters=k, n_init=10, random_state=d.seed).fit(vecs[idx])
            order = sorted(range(k), key=lambda c: (-int((km.labels_ == c).sum()), c))
            used_names: set[str] = set()
            order = [c for c in order if (km.labels_ == c).any()]  # KMeans may leave a cluster empty
            for rank, c in enumerate(order):
                members = idx[km.labels_ == c]
                dist = np.linalg.norm(vecs[members] - km.cluster_centers_[c], axis=1)
                ranked = members[np.argsort(dist, kind="stable")]
                # nearest member whose name is not taken yet: anchors in one rubric must read differently
                pick = next((i for i in ranked if name_key(points[i]["name"]) not in used_names), ranked[0])
                used_names.add(name_key(points[pick]["name"]))
                labels[members] = len(anchors)
                anchors.append({
                    "id": f"{part[:2]}{rank + 1:02d}" if with_parts else f"a{rank + 1:02d}",
                    "name": display_name(points[pick]["name"]),
                    "definition": points[pick]["reason"],
                    "exemplar": {"record_id": points[pick]["record_id"], "reason": points[pick]["reason"],
                                 "score": points[pick]["score"]},
                    "cluster_size": int(len(members)),
                    "part": part,
                    "member_names": sorted({points[i]["name"] for i in ranked[:8]}),
                })
        xy = PCA(n_components=2, random_state=0).fit_transform(vecs) if len(points) > 2 else np.zeros((len(points), 2))
        projection = {"x": np.round(xy[:, 0], 4).tolist(), "y": np.round(xy[:, 1], 4).tolist(),
                      "anchor": labels.tolist(), "names": [p["name"] for p in points]}
        return anchors, projection


def name_key(name: str) -> str:
    """Names that differ only in case, separators or plural endings are the same dimension."""
    words = re.sub(r"[^a-z0-9]+", " ", name.lower()).split()
    return " ".join(w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in words)


def display_name(name: str) -> str:
    """``use_of_observations`` → ``Use of observations``: teachers name dimensions in any case convention."""
    text = re.sub(r"[_\s]+", " ", name).strip()
    return text[:1].upper() + text[1:] if text.islower() else text


def load_rubric(ws: Workspace, group: str) -> dict[str, Any]:
    return read_json(ws.root / "rubrics" / f"{group}.json")

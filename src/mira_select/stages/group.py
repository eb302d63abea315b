"""`mira group`: cluster sources into capability groups; each group later gets its own rubric and budget.

A source is represented by the normalized mean embedding of a seeded sample of its records. Sources are first split
by their detected format (a trajectory corpus and a docs corpus should never share a rubric, whatever their
vocabulary), then KMeans (several seeds, best inertia) clusters within formats, with the k budget spread over the
formats that have the most sources. Config overrides win and are recorded as such. The automatic grouping is
recorded in the workspace's cache (a decision keyed by the sampled texts), so a shipped cache replays it exactly on
another CPU.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import MiraConfig
from ..errors import MiraError
from ..progress import Reporter
from ..sampling import reservoir_sample
from ..ledger import Ledger, Ref, Unit
from ..workspace import Counts, Workspace, write_json

STAGE = "group"


@dataclass
class GroupResult:
    groups: dict[str, list[str]]
    skipped: bool
    seconds: float


def _kmeans(x: np.ndarray, k: int, seeds: list[int]) -> tuple[np.ndarray, float]:
    from sklearn.cluster import KMeans

    if k >= len(x):
        return np.arange(len(x)), 0.0
    best = None
    for seed in seeds:
        km = KMeans(n_clusters=k, n_init=1, random_state=seed).fit(x)
        if best is None or km.inertia_ < best.inertia_:
            best = km
    return best.labels_, float(best.inertia_)


def _split_k(k: int, sizes: dict[str, int]) -> dict[str, int]:
    """One cluster per partition, extra clusters to the partitions with the most sources per cluster."""
    alloc = {p: 1 for p in sizes}
    for _ in range(max(0, k - len(sizes))):
        candidates = [p for p in sizes if alloc[p] < sizes[p]]
        if not candidates:
            break
        alloc[max(candidates, key=lambda p: (sizes[p] / alloc[p], p))] += 1
    return alloc


class GroupStage:
    def __init__(self, cfg: MiraConfig, ws: Workspace | None = None, reporter: Reporter | None = None):
        self.cfg = cfg
        self.ws = ws or Workspace(cfg.workspace_path)
        self.reporter = reporter or Reporter()

    @property
    def path(self):
        return self.ws.root / "groups.json"

    def unit(self) -> Unit:
        """One unit: the grouping config and the content of every source (as ingest recorded it)."""
        ledger = Ledger(self.ws)
        return ledger.unit(STAGE, "all", {"config.groups": self.cfg.groups.model_dump(mode="json"),
                                          "records": {n: Ref("ingest", f"{n}/_source") for n in self.cfg.source_names}},
                           [self.path])

    def units(self) -> list[Unit]:
        return [self.unit()]

    def run(self, force: bool = False) -> GroupResult:
        start = time.monotonic()
        manifest = self.ws.manifest()
        missing = [n for n in self.cfg.source_names if n not in manifest["sources"]]
        if missing:
            raise MiraError(f"sources not ingested yet: {', '.join(missing)}; run `mira ingest` first")
        unit = self.unit()
        if not force and Ledger(self.ws).is_current(unit):
            return GroupResult(load_groups(self.ws)["groups"], True, time.monotonic() - start)

        g = self.cfg.groups
        names = [n for n in self.cfg.source_names if manifest["sources"][n]["records"] > 0]
        formats = {n: manifest["sources"][n]["format"] for n in names}
        samples = reservoir_sample(self.ws, names, n=g.sample_per_source, seed=g.seeds[0])
        k = min(g.k, len(names))
        plan = self._plan(names, formats, samples, k)
        assignments: dict[str, str] = dict(plan["assignments"])
        auto = dict(assignments)
        assignments.update(g.override)
        groups: dict[str, list[str]] = {}
        for n in names:
            groups.setdefault(assignments[n], []).append(n)
        for n, group in g.override.items():  # an explicitly placed source stays visible even when it is empty
            if n not in names:
                groups.setdefault(group, []).append(n)
        result = {
            "embedder": plan["embedder"],
            "k": k, "k_requested": g.k, "seeds": g.seeds, "split_by_format": g.split_by_format,
            "sample_per_source": g.sample_per_source,
            "sources": names,
            "source_formats": formats,
            "assignments": assignments,
            "automatic_assignments": auto,
            "groups": dict(sorted(groups.items())),
            "overridden": bool(g.override),
            "overrides": dict(g.override),
            "inertia": plan["inertia"],
            "similarity": plan["similarity"],
            "sampled": {n: len(samples[n]) for n in names},
        }
        write_json(self.path, result)
        Ledger(self.ws).record(unit, Counts(len(names), len(names), 0, 0))
        return GroupResult(result["groups"], False, time.monotonic() - start)

    def _plan(self, names: list[str], formats: dict[str, str], samples: dict[str, list], k: int) -> dict[str, Any]:
        """Automatic assignments, recorded in the workspace cache by the exact sampled texts: embeddings and KMeans
        differ in their last bits between CPUs and best-of-seeds KMeans can turn that into another partition, which
        would change every later prompt (and miss a shipped cache). A recorded grouping also skips the embedder."""
        import hashlib

        from ..teacher.client import workspace_cache

        g = self.cfg.groups
        texts = {n: [hashlib.sha256(r.text.encode()).hexdigest() for r in samples[n]] for n in names}
        inputs = {"embedder": g.embedder, "k": k, "seeds": g.seeds, "split_by_format": g.split_by_format,
                  "formats": formats, "samples": texts}
        cache = workspace_cache(self.ws, self.cfg.teacher, self.cfg.base_dir)
        try:
            return cache.decision("group.kmeans", inputs, lambda: self._cluster(names, formats, samples, k))
        finally:
            cache.close()

    def _cluster(self, names: list[str], formats: dict[str, str], samples: dict[str, list], k: int) -> dict[str, Any]:
        from ..embed import get_embedder

        g = self.cfg.groups
        with self.reporter.task("group: embed source samples", total=len(names)) as bar:
            embedder = get_embedder(g.embedder)
            centroids = []
            for n in names:
                vecs = embedder.encode([r.text for r in samples[n]])
                c = vecs.mean(axis=0)
                centroids.append(c / max(np.linalg.norm(c), 1e-12))
                bar.advance()
        x = np.stack(centroids)
        partitions: dict[str, list[int]] = {}
        for i, n in enumerate(names):
            partitions.setdefault(formats[n] if g.split_by_format else "all", []).append(i)
        alloc = _split_k(k, {p: len(ix) for p, ix in partitions.items()})
        assignments: dict[str, str] = {}
        inertia = 0.0
        for part, idx in sorted(partitions.items()):
            labels, part_inertia = _kmeans(x[idx], alloc[part], g.seeds)
            inertia += part_inertia
            for i, label in zip(idx, labels):
                assignments[names[i]] = part if alloc[part] == 1 else f"{part}-{int(label) + 1}"
        if not g.split_by_format:  # name clusters by their members' most common format
            assignments = _name_by_format(assignments, formats)
        return {"assignments": assignments, "inertia": inertia, "embedder": embedder.id,
                "similarity": np.round(x @ x.T, 4).tolist()}


def _name_by_format(assignments: dict[str, str], formats: dict[str, str]) -> dict[str, str]:
    members: dict[str, list[str]] = {}
    for src, label in assignments.items():
        members.setdefault(label, []).append(src)
    named, used = {}, {}
    for label, srcs in sorted(members.items()):
        fmts = [formats[s] for s in srcs]
        base = max(set(fmts), key=lambda f: (fmts.count(f), f))
        used[base] = used.get(base, 0) + 1
        named[label] = base if used[base] == 1 else f"{base}-{used[base]}"
    return {src: named[label] for src, label in assignments.items()}


def group_members(ws: Workspace, cfg: MiraConfig) -> dict[str, list[str]]:
    """Group -> member sources, from groups.json; a group whose sources hold no record is a config error."""
    groups = load_groups(ws)["groups"]
    manifest = ws.manifest()
    for name, sources in groups.items():
        if sum(manifest["sources"][s]["records"] for s in sources) == 0:
            raise MiraError(f"group {name!r} has no records (sources: {', '.join(sources)}); fix groups.override")
    return groups


def only_groups(groups: dict[str, list[str]], only: list[str] | None) -> dict[str, list[str]]:
    """The groups a stage was asked for, in the asked order (all when ``only`` is empty); a name that is not a group
    is an error listing the groups."""
    if not only:
        return groups
    unknown = sorted(set(only) - groups.keys())
    if unknown:
        raise MiraError(f"unknown group(s) {', '.join(unknown)}; groups are {', '.join(sorted(groups))}")
    return {g: groups[g] for g in only}


def check_group_overrides(section: str, settings: Any, groups: dict[str, list[str]]) -> None:
    """A per-group override (``<section>.groups.<name>``) for a group this corpus does not have is a mistake the
    user should hear about, not a setting that silently never applies."""
    unknown = settings.unknown_groups(list(groups))
    if unknown:
        raise MiraError(f"{section}.groups names unknown group(s) {', '.join(unknown)}; groups are "
                        f"{', '.join(sorted(groups))}")


def load_groups(ws: Workspace) -> dict[str, Any]:
    from ..workspace import read_json

    return read_json(ws.root / "groups.json")

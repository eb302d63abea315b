"""`mira discover`: self-anchored rubrics. The teacher judges sampled records free-form, naming its own dimensions;
the judgments are embedded and clustered, and for each cluster the teacher writes one criterion from the cluster's
points: a name, a definition that applies to any record of the group, and what a 0, a 5 and a 10 look like.
Criteria that say the same thing are merged; spare candidates beyond the target let the label stage replace
anchors that turn out not to discriminate.

Nobody writes the rubric: what matters for agent trajectories (tool-call choice, error recovery) is found from the
agent group's own records, what matters for docs from the docs. qa_think groups get separate think / combined /
answer anchors (5 each by default) so reasoning and final answers are judged on their own terms.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from ..errors import MiraError
from ..sampling import SampledRecord, round_robin_sample
from ..specificity import GroupVocabulary, levels_of, mended_middle
from ..teacher.prompts import FORMATS, prompt_version
from .teacher_stage import TeacherStage
from ..ledger import Ref, Unit
from ..workspace import Counts, atomic_write_bytes, read_json, write_json
from .group import check_group_overrides, group_members, load_groups, only_groups

STAGE = "discover"
VOCAB_SAMPLE = 400  # records per group whose terms decide what is record-specific
# Bumped when the way anchors are made changes (not only prompts or config): rubrics are redone.
# v4: the generality check also rejects one source's terms, a judged record's own subject, numbers from the records
# and 0 / 5 / 10 levels that say the same thing (a general criterion whose 5 still repeats an end after the repair
# keeps its 0 and 10 and gets a neutral middle)
# v5: it also rejects the masked rewrite's "…" copied into a criterion, mixed scripts, and levels or definitions
# that describe the scale instead of records ("A 5 is neither the 0 nor the 10"); any criterion whose 5 is its only
# fault gets the neutral middle; every cluster that failed is written once more from masked points
# v6: in a group of two sources, a term of one source alone is that source's (specificity.TWO_SOURCE_SHARE)
# v7: a definition that copies a run of the criterion prompt's instructions is rejected (specificity.echoed_instruction)
LOGIC_VERSION = 7


@dataclass
class DiscoverResult:
    rubrics: dict[str, dict[str, Any]]
    skipped: list[str]
    seconds: float


def parts_for(records: list[SampledRecord]) -> bool:
    """A group is judged with think/combined/answer parts when most of its records carry a reasoning trace."""
    return sum(r.format == "qa_think" for r in records) * 2 > len(records)


class DiscoverStage(TeacherStage):
    stage = STAGE

    def rubric_path(self, group: str):
        return self.ws.root / "rubrics" / f"{group}.json"

    def unit(self, group: str, sources: list[str]) -> Unit:
        return self.ledger.unit(STAGE, group, {
            "members": sources, "records": {s: Ref("ingest", f"{s}/_source") for s in sources},
            "config.discover": self.cfg.discover.settings_dump(group), "teacher": self.cfg.teacher.model,
            "embedder": load_groups(self.ws)["embedder"], "logic": LOGIC_VERSION,
            "prompts": {f: [prompt_version("judge", f), prompt_version("anchor", f)] for f in FORMATS},
        }, [self.rubric_path(group)])

    def units(self) -> list[Unit]:
        return [self.unit(g, s) for g, s in group_members(self.ws, self.cfg).items()]

    def run(self, force: bool = False, only: list[str] | None = None) -> DiscoverResult:
        """Discover every group, or only the groups in ``only`` in that order (so a long teacher job can do the
        groups it needs first)."""
        start = time.monotonic()
        members = group_members(self.ws, self.cfg)
        check_group_overrides("discover", self.cfg.discover, members)
        groups = only_groups(members, only)
        rubrics, skipped = {}, []
        for group, sources in groups.items():
            unit = self.unit(group, sources)
            if not force and self.ledger.is_current(unit):
                rubrics[group] = read_json(self.rubric_path(group))
                skipped.append(group)
                continue
            rubrics[group] = self._discover_group(group, sources, dict(unit.inputs))
            n = rubrics[group]["n_records"]
            self.ledger.record(unit, Counts(n, rubrics[group]["n_judged"], 0, rubrics[group]["n_dead"]))
        if self._teacher is not None:
            self._teacher.save_accounting()
        return DiscoverResult(rubrics, skipped, time.monotonic() - start)

    def _discover_group(self, group: str, sources: list[str], fp: dict[str, Any]) -> dict[str, Any]:
        d = self.cfg.discover.for_group(group)
        records = round_robin_sample(self.ws, sources, d.records_per_group, seed=d.seed)
        notes = []
        if len(records) < d.records_per_group:
            notes.append(f"group has {len(records)} records, fewer than the {d.records_per_group} requested; "
                         "all of them were judged")
        with_parts = parts_for(records)
        self._judged_records = records
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
        fmt = "qa_think" if with_parts else Counter(r.format for r in records).most_common(1)[0][0]
        self._dropped: list[dict[str, Any]] = []
        anchors, projection = self._anchors(group, points, with_parts, notes, fmt)
        if not anchors:
            reasons = "; ".join(sorted({str(c["error"])[:160] for c in self._dropped}))[:600]
            raise MiraError(f"discover {group}: no cluster of the {len(points)} judgment points gave a usable "
                            f"anchor ({len(self._dropped)} invalid after one repair: {reasons}); judge more records "
                            "(discover.records_per_group) or use a stronger teacher")
        if self._dropped:
            notes.append(f"{len(self._dropped)} cluster(s) gave no usable anchor (invalid, or record-specific after "
                         "one repair)")
        rubric = {
            "group": group, "fingerprint": fp, "sources": sources, "with_parts": with_parts,
            "teacher": teacher.model_id, "format": fmt,
            "prompt_version": {"judge": prompt_version("judge", fmt), "anchor": prompt_version("anchor", fmt)},
            "n_records": len(records), "n_judged": len(records) - len(dead), "n_dead": len(dead),
            "n_points": len(points), "anchors": anchors, "notes": notes, "unusable_clusters": self._dropped,
        }
        write_json(self.rubric_path(group), rubric)
        write_json(out_dir / "projection.json", projection)
        return rubric

    def _anchors(self, group: str, points: list[dict[str, Any]], with_parts: bool, notes: list[str],
                 fmt: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Cluster the judgment points per part, let the teacher write one criterion per cluster (largest first),
        merge criteria that say the same thing, keep target + spare candidates per part."""
        from sklearn.decomposition import PCA

        from ..embed import get_embedder

        d = self.cfg.discover.for_group(group)
        self._dropped = getattr(self, "_dropped", [])  # clusters that gave no usable anchor (set per group)
        embedder = get_embedder(self.cfg.groups.embedder)
        vecs = point_vectors(embedder, points)
        if with_parts:
            spare = max(1, math.ceil(d.spare_anchors / 3)) if d.spare_anchors else 0
            parts = {p: (d.anchors_per_part, spare) for p in ("think", "combined", "answer")}
        else:
            parts = {"combined": (d.anchors, d.spare_anchors)}
        labels = np.full(len(points), -1)
        # recorded in the cache by the exact judgment points: the partition is float-sensitive (see teacher/cache.py)
        # and every anchor prompt shows it, so a cached discovery must not depend on this machine's last bits
        cache = self.teacher().cache
        plan = cache.decision("discover.clusters", {"embedder": embedder.name, "points": points, "parts": parts,
                                                    "with_parts": with_parts, "seed": d.seed,
                                                    "shown": d.points_per_anchor},
                              lambda: cluster_plan(vecs, points, parts, with_parts, d.seed, d.points_per_anchor))
        notes.extend(plan["notes"])
        clusters = [(c["part"], np.asarray(c["members"], dtype=np.int64), np.asarray(c["shown"], dtype=np.int64))
                    for c in plan["clusters"]]
        vocab = self._vocabulary(group, points)
        written = self._rewrite_failed(group, fmt, points, clusters, vocab,
                                       self._write(group, fmt, points, clusters, vocab), notes)
        anchors: list[dict[str, Any]] = []
        for part, (target, spare) in parts.items():
            drafts = [w for w in written if w["part"] == part]
            kept = merge_anchors([w for w in drafts if "_problem" not in w], embedder, d.merge_similarity,
                                 target + spare, cache)
            if not kept:  # a part without anchors cannot be labeled at all, so keep the well-formed drafts, each
                # marked with what was wrong with it
                kept = merge_anchors(drafts, embedder, d.merge_similarity, target + spare, cache)
                for w in kept:
                    w["problem"] = w.pop("_problem", "")
                if kept:
                    notes.append(f"part {part!r}: no criterion passed the generality check; kept {len(kept)} "
                                 "record-specific draft(s), marked 'problem' (a stronger teacher or more judged "
                                 "records usually fixes this)")
            if len(kept) < target + spare:
                notes.append(f"part {part!r}: {len(kept)} distinct candidate anchors (wanted {target} + {spare} spare)")
            for rank, w in enumerate(kept):
                w["id"] = f"{part[:2]}{rank + 1:02d}" if with_parts else f"a{rank + 1:02d}"
                labels[w.pop("_members")] = len(anchors)
                anchors.append(w)
        xy = PCA(n_components=2, random_state=0).fit_transform(vecs) if len(points) > 2 else np.zeros((len(points), 2))
        projection = {"x": np.round(xy[:, 0], 4).tolist(), "y": np.round(xy[:, 1], 4).tolist(),
                      "anchor": labels.tolist(), "names": [p["name"] for p in points]}
        return anchors, projection

    def _rewrite_failed(self, group: str, fmt: str, points: list[dict[str, Any]],
                        clusters: list[tuple[str, np.ndarray, np.ndarray]], vocab: GroupVocabulary,
                        written: list[dict[str, Any]], notes: list[str]) -> list[dict[str, Any]]:
        """Every cluster whose criterion failed the check (after its one repair) is written once more from its
        points with what only part of the records are about shown as "…": a small teacher copies a record's subject
        from the points ("the stock price changes"), and a new answer from other words often fixes a drifted script
        or a scale-describing level too. Its failed draft stays as the last-resort fallback of its part; a cluster
        is listed as unusable once, however many writes it took."""
        good = {cluster_key(group, w["_members"]) for w in written if "_problem" not in w}
        failed = [c for c in clusters if cluster_key(group, c[1]) not in good]
        if not failed:
            return written
        rewritten = self._write(group, fmt, points, failed, vocab, masked=True)
        saved = {cluster_key(group, w["_members"]) for w in rewritten if "_problem" not in w}
        self._dropped = [x for x in self._dropped if not x["cluster"].endswith("-masked") and x["cluster"] not in saved]
        notes.append(f"{len(failed)} cluster(s) failed the generality check; written again from points with the "
                     f"record-specific terms masked, {len(saved)} passed")
        by_key = {cluster_key(group, w["_members"]): w for w in written}
        by_key.update({cluster_key(group, w["_members"]): w for w in rewritten if "_problem" not in w})
        order = [cluster_key(group, c[1]) for c in clusters]  # largest cluster first, as written
        return [by_key[k] for k in order if k in by_key]

    def _vocabulary(self, group: str, points: list[dict[str, Any]]) -> GroupVocabulary:
        sources = group_members(self.ws, self.cfg).get(group, [])
        seed = self.cfg.discover.for_group(group).seed
        return group_vocabulary(self.ws, sources, seed, getattr(self, "_judged_records", []), points)

    def _write(self, group: str, fmt: str, points: list[dict[str, Any]],
               clusters: list[tuple[str, np.ndarray, np.ndarray]], vocab: GroupVocabulary,
               masked: bool = False) -> list[dict[str, Any]]:
        """One teacher call per cluster: its most central points in, one criterion with 0/5/10 levels out, checked
        by ``vocab`` (`GroupVocabulary.criterion_problems`). With ``masked`` the points' record-specific terms are
        shown as "…" (`GroupVocabulary.masked`)."""
        shown = vocab.masked if masked else (lambda text: text)
        items = []
        for part, members, central in clusters:
            pts = [{"name": shown(points[i]["name"]), "score": points[i]["score"], "reason": shown(points[i]["reason"])}
                   for i in central]
            key = cluster_key(group, members) + ("-masked" if masked else "")
            items.append((key, fmt, pts, part if fmt == "qa_think" else None))
        teacher = self.teacher()
        with self.reporter.task(f"discover {group}: write {len(items)} anchors", total=len(items)) as bar:
            results = teacher.run(lambda *item: teacher.write_anchor(*item, check=vocab.criterion_problems), items,
                                  on_result=lambda r: bar.advance())
        written = []
        for (part, members, central), res in zip(clusters, results):
            a = res.data or res.extra.get("draft")
            mended = None
            if res.data is None and a is not None and (m := mended_middle(a, vocab.criterion_problems)):
                mended = levels_of(m)  # its 5 was its one fault
            if res.data is None and mended is None:  # invalid or still specific after the repair: the spares fill in
                self._dropped.append({"cluster": res.record_id, "error": res.error})
                if a is None:
                    continue
            ex = points[int(central[0])]
            written.append({
                "name": display_name(a["name"]), "definition": a["definition"],
                "levels": mended or levels_of(a), **({"levels_mended": True} if mended else {}),
                "exemplar": {"record_id": ex["record_id"], "reason": ex["reason"], "score": ex["score"]},
                "cluster_size": int(len(members)), "part": part,
                "member_names": sorted({points[int(i)]["name"] for i in central}),
                "merged": [], "_members": members,
                **({} if res.data is not None or mended else {"_problem": res.error}),
            })
        return written


def cluster_key(group: str, members: np.ndarray) -> str:
    """A cluster's name in notes and dead letters: its group and first judgment point."""
    return f"{group}/cluster-{int(np.min(members)):03d}"


def group_vocabulary(ws, sources: list[str], seed: int, judged: list[SampledRecord],
                     points: list[dict[str, Any]]) -> GroupVocabulary:
    """What counts as record-specific for a group: term frequencies over a sample of its records (per source) plus
    the judged ones, and which terms the judgments took from the records they judged."""
    sample = round_robin_sample(ws, sources, VOCAB_SAMPLE, seed=seed + 1)
    by_id = {r.id: r for r in judged}
    records = [r for r in sample if r.id not in by_id] + list(by_id.values())
    reasons: dict[str, list[str]] = {}
    for p in points:
        reasons.setdefault(p["record_id"], []).append(f"{p['name']} {p['reason']}")
    return GroupVocabulary.from_texts([r.text for r in records], reasons, [r.source for r in records],
                                      {i: (r.source, r.text) for i, r in by_id.items()})


def point_vectors(embedder, points: list[dict[str, Any]]) -> np.ndarray:
    """Embedding of a judgment point, weighted towards its dimension name: the reason names the record's topic,
    and clustering on it groups records by topic ("covers distcc") instead of by criterion."""
    names = embedder.encode([p["name"] for p in points])
    reasons = embedder.encode([p["reason"] for p in points])
    v = 2.0 * _unit(names) + _unit(reasons)
    return _unit(v)


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def cluster_plan(vecs: np.ndarray, points: list[dict[str, Any]], parts: dict[str, tuple[int, int]], with_parts: bool,
                 seed: int, shown: int) -> dict[str, Any]:
    """Per part, KMeans clusters of the judgment points (largest first), each with its ``shown`` most central
    points (what the anchor prompt quotes), as point indices; plus notes on parts that got fewer clusters."""
    notes: list[str] = []
    clusters = []
    for part, (target, spare) in parts.items():
        idx = np.array([i for i, p in enumerate(points) if p["part"] == part or not with_parts])
        if len(idx) == 0:
            notes.append(f"no judgment points for part {part!r}")
            continue
        for members in cluster_points(vecs[idx], target + spare, seed, notes, part):
            m = idx[members]
            centre = vecs[m].mean(axis=0)
            central = m[np.argsort(-(vecs[m] @ centre), kind="stable")][:shown]
            clusters.append({"part": part, "members": m.tolist(), "shown": central.tolist()})
    return {"clusters": clusters, "notes": notes}


def cluster_points(vecs: np.ndarray, k_wanted: int, seed: int, notes: list[str], part: str) -> list[np.ndarray]:
    """KMeans over one part's points -> member index arrays, largest cluster first (empty clusters dropped)."""
    from sklearn.cluster import KMeans

    distinct = len(np.unique(np.round(vecs, 5), axis=0))  # repeated judgments embed identically
    k = min(k_wanted, max(1, len(vecs) // 2), distinct)
    if k < k_wanted:
        notes.append(f"part {part!r}: {len(vecs)} points ({distinct} distinct), so {k} clusters instead of {k_wanted}")
    km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(vecs)
    order = sorted(range(k), key=lambda c: (-int((km.labels_ == c).sum()), c))
    return [np.flatnonzero(km.labels_ == c) for c in order if (km.labels_ == c).any()]


def merge_anchors(written: list[dict[str, Any]], embedder, threshold: float, limit: int,
                  cache=None) -> list[dict[str, Any]]:
    """Fold near-duplicate anchors into the first (largest-cluster) one (`merge_plan`); with a response cache the
    plan is a recorded decision, so the same drafts merge the same way on every machine."""
    if not written:
        return []
    if cache is None:
        plan = merge_plan(written, embedder, threshold, limit)
    else:
        plan = cache.decision("discover.merge", {"embedder": embedder.name, "threshold": threshold, "limit": limit,
                                                 "anchors": [[w["name"], w["definition"]] for w in written]},
                              lambda: merge_plan(written, embedder, threshold, limit))
    kept = []
    for host_index, *folded in plan:
        host = written[host_index]
        for i in folded:
            host["merged"].append(written[i]["name"])
            host["cluster_size"] += written[i]["cluster_size"]
            host["_members"] = np.concatenate([host["_members"], written[i]["_members"]])
        kept.append(host)
    return kept


def merge_plan(written: list[dict[str, Any]], embedder, threshold: float, limit: int) -> list[list[int]]:
    """Greedy, largest cluster first: an anchor whose (name-weighted) name + definition embedding is within
    ``threshold`` cosine of a kept one (or has the same name) folds into it; stop at ``limit`` kept anchors.
    -> per kept anchor, [its index, the indices folded into it in order]."""
    # name-weighted like the points: definitions of a small teacher share boilerplate ("The code is ... and
    # well-documented"), so on the definition alone different criteria look alike
    names = _unit(embedder.encode([w["name"] for w in written]))
    vecs = _unit(2.0 * names + _unit(embedder.encode([w["definition"] for w in written])))
    plan: list[list[int]] = []
    for i, w in enumerate(written):
        twin = next((g for g in plan if name_key(written[g[0]]["name"]) == name_key(w["name"])
                     or float(vecs[i] @ vecs[g[0]]) >= threshold), None)
        if twin is not None:
            twin.append(i)
        elif len(plan) < limit:
            plan.append([i])
    return plan


def name_key(name: str) -> str:
    """Names that differ only in case, separators or plural endings are the same dimension."""
    words = re.sub(r"[^a-z0-9]+", " ", name.lower()).split()
    return " ".join(w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in words)


def display_name(name: str) -> str:
    """``use_of_observations`` → ``Use of observations``: teachers name dimensions in any case convention."""
    text = re.sub(r"[_\s]+", " ", name).strip()
    return text[:1].upper() + text[1:] if text.islower() else text

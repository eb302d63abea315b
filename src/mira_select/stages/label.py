"""`mira label`: the teacher scores a sample of each group on every candidate anchor of the group's rubric.

Scores only: one call per record, each anchor's score the expected value of the model's digit distribution at its
slot, no rationale text (a rationale per anchor made a label ~5x dearer and the 1.5B teacher mostly restated the
definition). A small explained sample per group also gets evidence + rationale, for the report.

What gets labeled: records spread over sources and, within a source, over length quantile bins, plus (``label.twins``)
corrupted copies of some of them, scored by the teacher like any record, so the student sees the low tail of quality.
Twins only ever go to the train split. Afterwards the anchors that do not discriminate on the labeled sample (almost
constant) are dropped and the spare candidates take their place (``anchor_choice``); ``anchors.json`` beside the
labels says which are active, with each anchor's share of labels at the ends of the scale and how far its labels
follow record length.

Prompt injection (opt-in, ``label.injection_check``): after each scores-only label the teacher is asked, on the same
prompt, whether the record holds text addressed to its reviewer; records at or above ``injection_threshold`` and their
twins are quarantined from the labels (``addressed.jsonl``). A question rather than a phrase list, so it does not
depend on the attack's wording; off by default because the embedded 1.5B teacher cannot answer it (its P(yes) is the
same on clean and injected records, bench/injection.py).

Checkpointed in chunks: a chunk's rows are written and marked before the next starts, and the teacher cache answers
anything already asked, so ``kill -9`` costs at most one chunk of calls and never duplicates a row. Each source's
labeled records are split train/validation by a hash of the id.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..anchor_choice import choose_anchors
from ..config import LabelConfig
from ..errors import MiraError
from ..io.shards import write_table
from ..ledger import Ref, Unit
from ..rubric import anchor_choice_path, anchors_of, load_rubric
from ..sampling import SampledRecord, length_stratified_sample
from ..teacher.client import Teacher
from ..teacher.prompts import ADDRESSED, FORMATS, prompt_version
from ..teacher.twins import make_twins
from ..teacher.types import Anchor, TeacherResult
from ..tokens import get_counter
from ..workspace import Counts, atomic_write_bytes, write_json
from .group import check_group_overrides, group_members, only_groups
from .teacher_stage import TeacherStage

STAGE = "label"
LOGIC_VERSION = 3  # bumped when how labels are finalized changes (anchor choice): groups re-finalize from cache


@dataclass
class LabelResult:
    counts: dict[str, dict[str, Any]]
    seconds: float
    skipped: list[str]  # groups that were already labeled with the current rubric and config


@dataclass(frozen=True)
class LabelItem:
    """One record to label: a sampled record, or a corrupted twin of one (``twin_kind`` set)."""

    id: str
    source: str
    format: str
    text: str
    n_tokens: int
    twin_kind: str = ""
    explain: bool = False


# Label settings read only by the final pass (splits, quarantine, anchor choice and flags), after every teacher call
FINAL_PASS_ONLY = frozenset({"val_share", "min_val", "injection_threshold", "min_std", "min_std_ratio",
                             "end_share_flag", "length_rho_flag", "drop_length_following"})
# ... of which these only flag anchors in anchors.json for the report: no label, split or active anchor depends on
# them, so they are the final pass's private inputs and a change leaves the students current
REPORT_ONLY = "config.label.report"


def report_only_settings(settings: LabelConfig) -> set[str]:
    """The end-share flag always; the length flag unless flagged anchors are dropped (then it decides ``active``)."""
    return {"end_share_flag"} | (set() if settings.drop_length_following else {"length_rho_flag"})


def split_of(record_id: str, source_rank: int, n_source: int, val_share: float, min_val: int) -> str:
    """Deterministic per-source split: the records with the lowest id hashes form validation."""
    n_val = min(max(math.ceil(val_share * n_source), min_val), n_source // 2) if n_source > 1 else 0
    return "val" if source_rank < n_val else "train"


def _id_rank_key(record_id: str) -> str:
    return hashlib.sha256(record_id.encode("utf-8", "surrogatepass")).hexdigest()


class LabelStage(TeacherStage):
    """Labels every group on its discovered rubric. The DataMan baseline subclasses it with a fixed rubric, one
    corpus-wide group and its own prompt (see baselines/dataman.py)."""

    stage = STAGE
    chooses_anchors = True  # drop non-discriminating anchors, keep the target count

    def groups(self) -> dict[str, list[str]]:
        return group_members(self.ws, self.cfg)

    def rubric(self, group: str) -> dict[str, Any]:
        return load_rubric(self.ws, group)

    def labels_dir(self, group: str) -> Path:
        return self.ws.root / "labels" / group

    def settings(self, group: str) -> LabelConfig:
        """The label settings ``group`` runs with (``label.groups.<group>`` applied)."""
        return self.cfg.label.for_group(group)

    def records_per_group(self, group: str) -> int:
        return self.settings(group).records_per_group

    def teacher_config(self):
        cut = self.cfg.label.max_record_tokens
        return self.cfg.teacher.model_copy(update={"max_record_tokens": cut}) if cut else self.cfg.teacher

    def record_cut(self, group: str) -> int:
        """Tokens of a record the teacher sees when labeling ``group`` (head + tail, the middle marked omitted)."""
        return self.settings(group).max_record_tokens or self.teacher_config().max_record_tokens

    def check_overrides(self) -> None:
        """Both sections a group's labels read (discover's: the anchor targets) name only groups the corpus has."""
        members = group_members(self.ws, self.cfg)
        check_group_overrides("label", self.cfg.label, members)
        check_group_overrides("discover", self.cfg.discover, members)

    def group_teacher(self, group: str) -> Teacher:
        """The stage's teacher, with ``group``'s record cut (same model, cache and accounting)."""
        return self.teacher().with_record_tokens(self.record_cut(group))

    def prompt_format(self, rubric: dict[str, Any]) -> str | None:
        """One prompt family for every record (None: each record's own format)."""
        return "qa_think" if rubric["with_parts"] else None

    def sample(self, group: str, sources: list[str]) -> list[SampledRecord]:
        lc = self.settings(group)
        return length_stratified_sample(self.ws, sources, lc.records_per_group, seed=lc.seed, bins=lc.length_bins,
                                        pool=lc.sample_pool)

    def n_twins(self, group: str) -> int:
        lc = self.settings(group)
        return round(lc.twins_share * lc.records_per_group) if lc.twins else 0

    def n_explained(self, group: str) -> int:
        return self.settings(group).explained

    def checks_injection(self) -> bool:
        return self.cfg.label.injection_check

    async def call(self, teacher: Teacher, item: LabelItem, fmt: str, anchors: list[Anchor],
                   explain: bool) -> TeacherResult:
        result = await teacher.label(item.id, fmt, item.text, anchors, explain=explain)
        if not explain and result.data is not None and self.checks_injection():
            # right after the label, so a local teacher answers from the prompt it has just evaluated
            check = await teacher.addressed(item.id, fmt, item.text, anchors)
            result.extra["addressed"] = None if check.data is None else check.data[ADDRESSED.id]["score"]
        return result

    def prompt_versions(self) -> list[str]:
        tasks = ("label", "addressed") if self.checks_injection() else ("label",)
        return [prompt_version(t, f, self.cfg.teacher.datamark) for t in tasks for f in FORMATS]

    # ---- run ------------------------------------------------------------------------------------------------------
    def run(self, force: bool = False, only: list[str] | None = None) -> LabelResult:
        """Label every group, or only the groups in ``only`` in that order (long teacher jobs: the groups that
        matter first; each group resumes on its own)."""
        start = time.monotonic()
        groups = only_groups(self.groups(), only)
        self.check_overrides()
        if force:
            self.ws.clear_stage(self.stage)
        counts, skipped = {}, []
        for group, sources in groups.items():
            counts[group], current = self._label_group(group, sources)
            if current:
                skipped.append(group)
        if self._teacher is not None:
            self._teacher.save_accounting()
        return LabelResult(counts, time.monotonic() - start, skipped)

    def inputs(self, group: str, sources: list[str], rubric: dict[str, Any]) -> dict[str, Any]:
        """What a group's labels depend on (the final pass; the chunks depend on all but `FINAL_PASS_ONLY`)."""
        settings = self.settings(group)
        config = settings.model_dump(mode="json", exclude={"groups"})
        report = report_only_settings(settings)
        return {"config.label": {k: v for k, v in config.items() if k not in report},
                REPORT_ONLY: {k: v for k, v in config.items() if k in report},
                "anchors": rubric["anchors"], "teacher": self.cfg.teacher.model, "readout": self.readout(),
                "n": self.records_per_group(group), "prompts": self.prompt_versions(),
                "logic": LOGIC_VERSION, "cut": self.record_cut(group),
                "records": {s: Ref("ingest", f"{s}/_source") for s in sources}}

    def readout(self) -> dict[str, Any]:
        """How scores are read from the teacher (a different read-out is a different label)."""
        t = self.teacher_config()
        return {"logprobs": t.logprobs, "local_scores": t.local_scores, "score_slots": t.score_slots}

    def chunk_inputs(self, group: str, sources: list[str]) -> dict[str, str]:
        """The final pass's inputs without the settings only it reads: changing how anchors are chosen or flagged,
        or how labels are split, re-runs the (cheap) final pass, not every chunk through the teacher cache."""
        raw = self.inputs(group, sources, self.rubric(group))
        raw["config.label"] = {k: v for k, v in raw["config.label"].items() if k not in FINAL_PASS_ONLY}
        del raw[REPORT_ONLY]
        return self.ledger.unit(self.stage, f"{group}/_chunks", raw).inputs

    def final_unit(self, group: str, sources: list[str]) -> Unit:
        d = self.labels_dir(group)
        return self.ledger.unit(self.stage, f"{group}/_final", self.inputs(group, sources, self.rubric(group)),
                                [d / "train.parquet", d / "val.parquet"], private=frozenset({REPORT_ONLY}))

    def units(self) -> list[Unit]:
        return [self.final_unit(g, s) for g, s in self.groups().items()]

    def items(self, group: str, sources: list[str], fmt_for_all: str | None) -> list[LabelItem]:
        """The sample, its first ``n_explained`` records flagged for rationales, then the twins."""
        records = self.sample(group, sources)
        n_exp = self.n_explained(group)
        items = [LabelItem(r.id, r.source, r.format, r.text, r.n_tokens, explain=i < n_exp)
                 for i, r in enumerate(records)]
        n_twins = self.n_twins(group)
        if n_twins and records:
            fmts = {fmt_for_all or r.format for r in records}
            per_format = math.ceil(n_twins / len(fmts))
            by_id = {r.id: r for r in records}
            twins = make_twins([(r.id, fmt_for_all or r.format, r.text) for r in records], per_format,
                               seed=self.settings(group).seed)[:n_twins]
            counts = get_counter(self.cfg.tokenizer).count([t.corrupted for t in twins]) if twins else []
            for t, n_tok in zip(twins, counts):
                src = by_id[t.clean_id]
                items.append(LabelItem(f"{t.clean_id}~{t.kind}", src.source, src.format, t.corrupted, n_tok,
                                       twin_kind=t.kind))
        return items

    def _label_group(self, group: str, sources: list[str]) -> tuple[dict[str, Any], bool]:
        """-> (counts, whether the group was already labeled with this rubric and config)."""
        lc = self.settings(group)
        rubric = self.rubric(group)
        anchors = anchors_of(rubric)
        if not anchors:
            raise MiraError(f"{self.stage} {group}: the rubric has no anchors; edit it or re-run "
                            f"`mira discover --force` (a stronger teacher, or more judged records)")
        final = self.final_unit(group, sources)
        if self.ledger.is_current(final):
            return self.ledger.info(self.stage, final.key)["summary"], True
        fmt_for_all = self.prompt_format(rubric)
        items = self.items(group, sources, fmt_for_all)
        chunks = [items[i:i + lc.chunk] for i in range(0, len(items), lc.chunk)]
        work = self.ws.work_dir(self.stage, group)
        chunk_inputs = self.chunk_inputs(group, sources)
        calls = len(items) + sum(it.explain for it in items)
        with self.reporter.task(f"{self.stage} {group}: {len(items)} records x {len(anchors)} anchors",
                                total=calls) as bar:
            for ci, chunk in enumerate(chunks):
                out = work / f"chunk-{ci:05d}.parquet"
                unit = Unit(self.stage, f"{group}/chunk-{ci:05d}", chunk_inputs, (out,))
                if self.ledger.is_current(unit):
                    bar.advance(len(chunk) + sum(it.explain for it in chunk))
                    continue
                rows, dead = self._label_chunk(self.group_teacher(group), chunk, fmt_for_all, anchors, bar)
                write_table(out, label_table(rows, anchors))
                atomic_write_bytes(work / f"chunk-{ci:05d}.dead.jsonl",
                                   b"".join(orjson.dumps(d) + b"\n" for d in dead))
                self.ledger.record(unit, Counts(len(chunk), len(rows), 0, len(dead)))
        summary = self._finalize(group, len(chunks), anchors, rubric)
        summary["requested"] = self.records_per_group(group)
        summary["sampled"] = sum(not it.twin_kind for it in items)
        summary["twins_sampled"] = sum(bool(it.twin_kind) for it in items)
        self.ledger.record(final, Counts(len(items), summary["labeled"], 0, summary["dead"] + summary["addressed"]),
                           summary=summary)
        return summary, False

    def _label_chunk(self, teacher: Teacher, chunk: list[LabelItem], fmt_for_all: str | None,
                     anchors: list[Anchor], bar) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        calls = [(it, fmt_for_all or it.format, False) for it in chunk]
        calls += [(it, fmt_for_all or it.format, True) for it in chunk if it.explain]
        results = teacher.run(lambda it, f, e: self.call(teacher, it, f, anchors, e), calls,
                              on_result=lambda r: bar.advance())
        scored = {it.id: res for (it, _, e), res in zip(calls, results) if not e}
        explained = {it.id: res for (it, _, e), res in zip(calls, results) if e}
        rows, dead = [], []
        for it in chunk:
            res = scored[it.id]
            if res.data is None:
                dead.append({"id": it.id, "source": it.source, "error": res.error})
                continue
            row = {"id": it.id, "source": it.source, "format": it.format, "n_tokens": it.n_tokens,
                   "twin": it.twin_kind, "twin_text": it.text if it.twin_kind else "", "readout": res.readout, "model": res.model, "prompt_hash": res.prompt_hash,
                   "addressed": res.extra.get("addressed")}
            why = explained.get(it.id)
            for a in anchors:
                row[f"score:{a.id}"] = float(res.data[a.id]["score"])
                row[f"greedy:{a.id}"] = int(res.data[a.id]["greedy"])
                item = (why.data or {}).get(a.id, {}) if why is not None else res.data[a.id]
                row[f"rationale:{a.id}"] = item.get("rationale", "")
                row[f"evidence:{a.id}"] = item.get("evidence", "")
            rows.append(row)
        return rows, dead

    def _finalize(self, group: str, n_chunks: int, anchors: list[Anchor], rubric: dict[str, Any]) -> dict[str, Any]:
        lc = self.settings(group)
        work = self.ws.work_dir(self.stage, group)
        tables = [pq.read_table(work / f"chunk-{i:05d}.parquet") for i in range(n_chunks)]
        table = pa.concat_tables(tables) if tables else label_table([], anchors)
        out = self.labels_dir(group)
        table, n_addressed = quarantine_addressed(table, lc.injection_threshold, out / "addressed.jsonl")
        split = write_splits(out, table, lc.val_share, lc.min_val)
        dead = b"".join((work / f"chunk-{i:05d}.dead.jsonl").read_bytes() for i in range(n_chunks))
        atomic_write_bytes(out / "dead_letter.jsonl", dead)
        choice = choose_anchors(table, anchors, self._targets(group, rubric), lc.min_std, lc.end_share_flag,
                                drop=self.chooses_anchors, min_std_ratio=lc.min_std_ratio,
                                length_flag=lc.length_rho_flag, drop_length=lc.drop_length_following)
        write_json(anchor_choice_path(out), choice)
        return {"labeled": table.num_rows, "dead": dead.count(b"\n"), "addressed": n_addressed,
                "twins": int(pc.sum(pc.not_equal(table.column("twin"), "")).as_py() or 0),
                "train": sum(v == "train" for v in split.values()), "val": sum(v == "val" for v in split.values()),
                "active": len(choice["active"]), "dropped": len(choice["dropped"])}

    def _targets(self, group: str, rubric: dict[str, Any]) -> dict[str, int]:
        d = self.cfg.discover.for_group(group)
        if rubric.get("with_parts"):
            return {p: d.anchors_per_part for p in ("think", "combined", "answer")}
        return {"combined": d.anchors}


def quarantine_addressed(table: pa.Table, threshold: float, listing: Path) -> tuple[pa.Table, int]:
    """Records the teacher found addressed to their reviewer (and twins made from them) leave the labels: their
    scores may be the injection's, and a student fitted on them would learn that asking for a score earns one.
    They are listed in ``listing`` (JSON lines); -> (the labels kept, how many left)."""
    ids, twins = table.column("id").to_pylist(), table.column("twin").to_pylist()
    values = table.column("addressed").to_pylist()
    flagged = {rid for rid, v in zip(ids, values) if v is not None and v >= threshold}
    drop = [rid in flagged or bool(tw and rid.rsplit("~", 1)[0] in flagged) for rid, tw in zip(ids, twins)]
    lines = [orjson.dumps({"id": rid, "source": src, "twin": tw, "addressed": v})
             for rid, src, tw, v, d in zip(ids, table.column("source").to_pylist(), twins, values, drop) if d]
    atomic_write_bytes(listing, b"".join(line + b"\n" for line in lines))
    return table.filter(pa.array([not d for d in drop], pa.bool_())), len(lines)


def write_splits(out: Path, table: pa.Table, val_share: float, min_val: int) -> dict[str, str]:
    """Split labeled rows train/val per source (lowest id hashes → val) and write ``out``/{train,val}.parquet.
    Twins (corrupted copies) are always train: validation measures agreement on the corpus as it is."""
    ids, srcs = table.column("id").to_pylist(), table.column("source").to_pylist()
    twin = table.column("twin").to_pylist() if "twin" in table.column_names else [""] * len(ids)
    by_source: dict[str, list[str]] = {}
    split = {}
    for rid, src, tw in zip(ids, srcs, twin):
        if tw:
            split[rid] = "train"
        else:
            by_source.setdefault(src, []).append(rid)
    for src, members in by_source.items():
        for rank, rid in enumerate(sorted(members, key=_id_rank_key)):
            split[rid] = split_of(rid, rank, len(members), val_share, min_val)
    table = table.append_column("split", pa.array([split[i] for i in ids], pa.string()))
    for name in ("train", "val"):
        write_table(out / f"{name}.parquet", table.filter(pc.equal(table.column("split"), name)))
    return split


def label_table(rows: list[dict[str, Any]], anchors: list[Anchor]) -> pa.Table:
    fields = [pa.field("id", pa.string()), pa.field("source", pa.string()), pa.field("format", pa.string()),
              pa.field("n_tokens", pa.int32()), pa.field("twin", pa.string()), pa.field("twin_text", pa.string()),
              pa.field("readout", pa.string()), pa.field("addressed", pa.float32()),
              pa.field("model", pa.string()), pa.field("prompt_hash", pa.string())]
    for a in anchors:
        fields += [pa.field(f"score:{a.id}", pa.float32()), pa.field(f"greedy:{a.id}", pa.int8()),
                   pa.field(f"rationale:{a.id}", pa.string()), pa.field(f"evidence:{a.id}", pa.string())]
    schema = pa.schema(fields)
    return pa.Table.from_pylist(rows, schema=schema)

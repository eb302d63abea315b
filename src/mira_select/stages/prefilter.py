"""`mira prefilter`: cheap rules, dedup and the contamination guard between ingest and group, so no model time is
spent on what rules decide.

Two passes. Per record shard, in parallel on the executor: every enabled rule of the record's format (see
prefilter/rules.py), the record's dedup keys (normalized-text hash, MinHash signature) and its contamination flag
(benchmark n-gram overlap, contamination.py) go to ``_work/prefilter/<source>/part-NNNNN.parquet``. Then one pass
over all shards in config order decides exact and near duplicates and writes the sidecar every later stage reads,
row-aligned with records/: ``prefilter/<source>/part-NNNNN.parquet`` = id, drop, fired rules, their reasons,
duplicate-of, contaminated. Per source, input = kept + dropped, with a per-rule table and the contaminated count in
``prefilter/summary.json``. Dropped records stay in records/ (a changed threshold never needs a re-ingest) and are
excluded from the selection variants that apply the prefilter; contaminated ones are excluded from every variant.

The guard runs here, not at ingest: ingest stays a reader (its throughput is the I/O floor a corpus pays once), and
a new benchmark set re-flags from the shards without re-reading the inputs. With ``prefilter.enabled: false`` the
stage still runs, for the guard alone.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from ..benchmarks import benchmarks_digest
from ..config import PrefilterConfig
from ..contamination import guard
from ..errors import MiraError
from ..io.shards import read_sidecar_columns, shard_writer
from ..prefilter.dedup import DuplicateIndex, signatures, text_hash
from ..ledger import Ref, Unit
from ..prefilter.rules import DEDUP_RULES, RULES, record_flags, rules_batch
from ..workspace import Counts, Workspace, read_json, write_json
from .shard_stage import ShardStage

STAGE = "prefilter"
BATCH = 256

KEYS_SCHEMA = pa.schema([("id", pa.string()), ("flags", pa.string()), ("text_hash", pa.string()),
                         ("minhash", pa.binary()), ("contaminated", pa.bool_())])
SIDECAR_SCHEMA = pa.schema([("id", pa.string()), ("drop", pa.bool_()), ("rules", pa.list_(pa.string())),
                            ("reasons", pa.string()), ("dup_of", pa.string()), ("contaminated", pa.bool_())])


@dataclass(frozen=True)
class RulesUnit:
    source: str
    shard: str
    out: str
    config: str  # PrefilterConfig as JSON (units must pickle cheaply to workers)
    unit: Unit


@dataclass
class PrefilterResult:
    shards_done: int
    shards_skipped: int
    summary: dict[str, Any]
    seconds: float


def rules_shard(unit: RulesUnit) -> Counts:
    """Rules, dedup keys and contamination flags of one record shard (rules and dedup keys only when enabled)."""
    cfg = PrefilterConfig.model_validate_json(unit.config)
    nd = cfg.rules.near_dup
    contaminated = guard(cfg.contamination)
    n = 0
    with shard_writer(Path(unit.out), KEYS_SCHEMA) as w:
        for batch in pq.ParquetFile(unit.shard).iter_batches(batch_size=BATCH, columns=["id", "format", "text"]):
            ids, fmts, texts = (batch.column(c).to_pylist() for c in ("id", "format", "text"))
            flags, hashes, sig = ["{}"] * len(ids), [""] * len(ids), np.zeros((len(ids), 0), np.uint32)
            if cfg.enabled:  # off: the guard's column alone is real
                with rules_batch():
                    flags = [orjson.dumps(record_flags(t, f, cfg)).decode() for t, f in zip(texts, fmts)]
                hashes = [text_hash(t) for t in texts]
                if nd.action != "off":
                    sig = signatures(texts, nd.ngram, nd.num_perm)
            w.write_table(pa.table({"id": ids, "flags": flags, "text_hash": hashes,
                                    "minhash": [row.tobytes() for row in sig], "contaminated": contaminated(texts)},
                                   schema=KEYS_SCHEMA))
            n += len(ids)
    return Counts(n, n, 0, 0)


def prefilter_path(ws: Workspace, source: str, shard: Path) -> Path:
    return ws.root / "prefilter" / source / shard.name


def logic_version(cfg: PrefilterConfig) -> str:
    """Hash of the rule, dedup and guard code and of the benchmark solutions: a changed rule or benchmark file redoes
    the shards it ran on, not only a changed config."""
    from .. import contamination
    from ..prefilter import dedup, rules

    h = hashlib.sha256()
    for module in (rules, dedup, contamination):
        h.update(Path(module.__file__).read_bytes())
    for spec in cfg.contamination.benchmarks:
        h.update(benchmarks_digest(spec).encode())
    return h.hexdigest()[:12]


class PrefilterStage(ShardStage):
    stage = STAGE

    def plan(self) -> list[RulesUnit]:
        if not self.ws.manifest_path.exists():
            raise MiraError("nothing ingested yet: run `mira ingest` first")
        conf = self.cfg.prefilter.model_dump_json()
        logic = logic_version(self.cfg.prefilter)
        units = []
        for source in self.cfg.source_names:
            for shard in self.ws.record_shards(source):
                out = self.ws.work_dir(STAGE, source) / shard.name
                key = self.key(source, shard)
                unit = self.ledger.unit(STAGE, key, {"config.prefilter": conf, "logic": logic, "records": shard,
                                                     "ingested": Ref("ingest", key)}, [out])
                units.append(RulesUnit(source, str(shard), str(out), conf, unit))
        return units

    def summary_unit(self, units: list[RulesUnit]) -> Unit:
        """The global dedup/decision pass: current while every shard's rules output is the one it last read."""
        return self.ledger.unit(STAGE, "_summary", {"shards": {u.unit.key: Ref(STAGE, u.unit.key) for u in units}},
                                [self.summary_path])

    @property
    def summary_path(self) -> Path:
        return self.ws.root / "prefilter" / "summary.json"

    def units(self) -> list[Unit]:
        items = self.plan()
        return [i.unit for i in items] + [self.summary_unit(items)]

    def run(self, force: bool = False) -> PrefilterResult:
        start = time.monotonic()
        units = self.plan()
        todo = [u for u in units if force or not self.current(u)]
        self.run_units(rules_shard, todo, f"prefilter: rules on {len(todo)} shard(s)")
        final = self.summary_unit(units)
        if not force and self.ledger.is_current(final):
            summary = read_json(self.summary_path)
        else:
            summary = self._decide(units, final.fingerprint)
            t = summary["totals"]
            self.ledger.record(final, Counts(t["input"], t["kept"], t["dropped"], 0))
        return PrefilterResult(len(todo), len(units) - len(todo), summary, time.monotonic() - start)

    def _decide(self, units: list[RulesUnit], fp: str) -> dict[str, Any]:
        """The global pass, in config order: dedup verdicts, drop decisions, sidecars, per-source rule table."""
        rules = self.cfg.prefilter.rules
        on = self.cfg.prefilter.enabled
        action = {name: getattr(rules, name).action if on else "off" for name in (*RULES, *DEDUP_RULES)}
        nd = rules.near_dup
        index = DuplicateIndex(nd.threshold, nd.num_perm, near=on and nd.action != "off")
        per_source: dict[str, dict[str, Any]] = {}
        with self.reporter.task(f"prefilter: dedup and decide over {len(units)} shard(s)", total=len(units)) as bar:
            for unit in units:
                row = per_source.setdefault(unit.source, {"input": 0, "kept": 0, "dropped": 0, "fired": {},
                                                          "dropped_by": {}, "contaminated": 0})
                keys = pq.read_table(unit.out)
                out = {"id": [], "drop": [], "rules": [], "reasons": [], "dup_of": [], "contaminated": []}
                for rid, flags, h, sig, tainted in zip(*(keys.column(c).to_pylist() for c in KEYS_SCHEMA.names)):
                    reasons = orjson.loads(flags)
                    exact, near = index.add(rid, h, np.frombuffer(sig, np.uint32)) if on else (None, None)
                    row["contaminated"] += bool(tainted)
                    if exact and action["exact_dup"] != "off":
                        reasons["exact_dup"] = f"same text as {exact}"
                    if near:
                        reasons["near_dup"] = f"near-duplicate of {near}"
                    fired = sorted(reasons)
                    drop = any(action[r] == "drop" for r in fired)
                    row["input"] += 1
                    row["dropped" if drop else "kept"] += 1
                    for r in fired:
                        row["fired"][r] = row["fired"].get(r, 0) + 1
                        if action[r] == "drop":
                            row["dropped_by"][r] = row["dropped_by"].get(r, 0) + 1
                    for k, v in (("id", rid), ("drop", drop), ("rules", fired),
                                 ("reasons", orjson.dumps(reasons).decode()), ("dup_of", exact or near or ""),
                                 ("contaminated", bool(tainted))):
                        out[k].append(v)
                with shard_writer(prefilter_path(self.ws, unit.source, Path(unit.shard)), SIDECAR_SCHEMA) as w:
                    w.write_table(pa.table(out, schema=SIDECAR_SCHEMA))
                bar.advance()
        for name, row in per_source.items():
            if row["input"] != row["kept"] + row["dropped"]:
                raise AssertionError(f"prefilter {name}: input {row['input']} != kept + dropped")
        summary = {"fingerprint": fp, "enabled": on, "actions": action, "sources": per_source,
                   "near_dup_clusters": len(index.clusters),
                   "totals": {k: sum(r[k] for r in per_source.values())
                              for k in ("input", "kept", "dropped", "contaminated")}}
        write_json(self.summary_path, summary)
        return summary


def excluded_mask(ws: Workspace, source: str, shard: Path, ids: list[str], drops: bool) -> np.ndarray:
    """Which records of a record shard no selection may take: the contaminated ones, and with ``drops`` those the
    prefilter dropped. The sidecar must exist and list the same ids in the same order; anything else is an error
    naming it (contamination is only known once the prefilter has run)."""
    path = prefilter_path(ws, source, shard)
    if not path.exists():
        raise MiraError(f"{path} is missing: run `mira prefilter` (it flags contaminated records, which every "
                        "selection excludes)")
    columns = read_sidecar_columns(path, shard, ids, ["contaminated", "drop"] if drops else ["contaminated"],
                                   "mira prefilter")
    return np.logical_or.reduce([v.astype(bool) for v in columns.values()])

"""mira.yaml: one typed, strict configuration for every stage.

Strict on purpose: an unknown key is almost always a typo that would otherwise silently fall back to a default,
so every model forbids extras, and a failed load lists *every* problem with its key path and YAML line.
Sections that later stages read (groups, teacher, student, budget) live here too, so a config is validated as a
whole before any stage writes anything.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError

FORMATS = ("text", "code", "qa", "qa_think", "agent")
FormatName = Literal["text", "code", "qa", "qa_think", "agent"]

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_safe_name(name: str, what: str = "source name") -> str:
    """Reject names that could escape the workspace when used as a directory or file name.

    Source and group names become paths (records/<source>/, labels/<group>/); ``../evil`` or ``a/b`` would write
    outside their folder, control characters break terminals and logs.
    """
    problems = []
    if "/" in name or "\\" in name:
        problems.append("contains a path separator")
    if ".." in name:
        problems.append("contains '..'")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        problems.append("contains a control character")
    if not problems and not _SAFE_NAME.match(name):
        problems.append("must start with a letter or digit and use only letters, digits, '.', '_', '-' (max 128)")
    if problems:
        raise ValueError(f"unsafe {what} {name!r}: {'; '.join(problems)}")
    return name


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class FieldMap(_Strict):
    """Where a source keeps its text, id and structure. Missing fields are fine: the detector looks for the rest."""

    text: str = "text"
    id: str | None = "id"


class SourceConfig(_Strict):
    name: str
    paths: list[str] = Field(min_length=1, description="local paths, globs or fsspec URLs")
    format: Literal["auto", "text", "code", "qa", "qa_think", "agent"] = "auto"
    reader: Literal["auto", "jsonl", "parquet", "hf"] = "auto"
    fields: FieldMap = Field(default_factory=FieldMap)
    exclude_fields: list[str] = Field(
        default_factory=list, description="dotted field paths never copied into the workspace (e.g. labels)"
    )

    @field_validator("name")
    @classmethod
    def _safe(cls, v: str) -> str:
        return check_safe_name(v)

    @field_validator("paths")
    @classmethod
    def _non_empty(cls, v: list[str]) -> list[str]:
        for p in v:
            if not p.strip():
                raise ValueError("empty path")
        return v


class ContaminationConfig(_Strict):
    benchmarks: list[str] = Field(default_factory=lambda: ["bundled"],
                                  description="'bundled' (MBPP+, Spider, BIRD in the package), folders or .jsonl")
    n: int = Field(13, gt=0, description="word n-gram length")
    min_words: int = Field(8, gt=0, description="shorter solutions are too generic to attribute")
    threshold: float = Field(0.5, gt=0, le=1, description="share of a solution's n-grams a record must cover")


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.I)
_SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
               "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}


def parse_size(value: Any) -> Any:
    """``256MiB`` / ``1GB`` / ``4096`` -> bytes; anything else is left for pydantic to reject with the field name."""
    if isinstance(value, bool):  # YAML `yes` would otherwise pass as 1 byte
        raise ValueError(f"expected a size in bytes, got {value!r}")
    if isinstance(value, str):
        m = _SIZE.match(value)
        if not m:
            raise ValueError(f"expected a size in bytes such as 268435456, '256MiB' or '1GB', got {value!r}")
        return int(float(m.group(1)) * _SIZE_UNITS[(m.group(2) or "").lower()])
    return value


class IngestConfig(_Strict):
    unit_bytes: int = Field(
        256 << 20, gt=0, description="a larger plain JSONL file is cut into line-aligned units of about this size, a "
                                     "Parquet file into groups of row groups: its parts are ingested in parallel")
    max_record_chars: int = Field(1_000_000, gt=0, description="longer records are quarantined, not truncated")
    row_group_records: int = Field(2048, gt=0, description="records buffered before a Parquet row group is written")
    row_group_chars: int = Field(
        8 << 20, ge=1 << 16, description="a row group also ends at this many characters of text + meta: every reader "
                                         "of a shard (prefilter, score, baselines, eval) holds one row group at a time, "
                                         "so this bounds their memory whatever the record lengths")
    quarantine_raw_chars: int = Field(2000, ge=0, description="how much of a rejected line the quarantine keeps")
    on_duplicate_id: Literal["quarantine", "rename"] = "quarantine"
    exclude_fields: list[str] = Field(default_factory=list, description="applied to every source")
    tokenizer_batch: int = Field(256, gt=0)

    @field_validator("unit_bytes", mode="before")
    @classmethod
    def _size(cls, v: Any) -> Any:
        return parse_size(v)


class ExecutorConfig(_Strict):
    """Where work units run. The Ray keys only matter with ``kind: ray``; the local process pool has one unit per
    process and lets a GPU unit see every GPU of the machine (see executor/)."""

    kind: Literal["local", "ray"] = "local"
    workers: int = Field(0, ge=0, description="units in flight; 0 = one per CPU core (Ray: per cluster CPU); "
                                              "1 = in-process (local)")
    address: str | None = Field(None, description="Ray cluster address (e.g. 10.0.0.1:6379 or auto); None starts "
                                                  "a local cluster. A given address gets the shared-storage check")
    cpus_per_task: float = Field(1.0, gt=0, description="Ray: CPUs each unit reserves")
    gpus_per_task: float = Field(1.0, gt=0, description="Ray: GPUs a unit that needs one reserves (0.5: two units "
                                                        "share a GPU); units that need none reserve none")
    max_retries: int = Field(3, ge=0, description="Ray: re-runs of a unit whose worker or node died (units write "
                                                  "atomically, so a re-run never duplicates output)")

    @field_validator("cpus_per_task", "gpus_per_task")
    @classmethod
    def _ray_quantity(cls, v: float) -> float:
        # Ray's own rule, checked here so the mistake is named before a cluster is contacted.
        if v > 1 and v != int(v):
            raise ValueError(f"{v} is fractional and above 1; Ray takes a fraction only below 1 (e.g. 0.5) or a "
                             "whole number")
        return v

    @field_validator("address")
    @classmethod
    def _address(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("empty address; leave it out to start a local Ray cluster")
        return v


class GroupsConfig(_Strict):
    k: int = Field(5, gt=0)
    sample_per_source: int = Field(200, gt=0)
    embedder: Literal["minilm-static", "minilm"] = "minilm-static"
    split_by_format: bool = True
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4])
    override: dict[str, str] = Field(default_factory=dict, description="source -> group name")

    @field_validator("override")
    @classmethod
    def _safe_groups(cls, v: dict[str, str]) -> dict[str, str]:
        for group in v.values():
            check_safe_name(group, "group name")
        return v


class TeacherConfig(_Strict):
    backend: Literal["local", "openai", "replay"] = "local"
    model: str = Field("qwen2.5-coder-1.5b-instruct", description="packaged model name (local) or served model id")
    base_url: str | None = Field(None, description="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    api_key_env: str | None = Field(None, description="name of the env var holding the API key (never the key)")
    concurrency: int = Field(4, gt=0)
    timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(4, ge=0)
    backoff_base_s: float = Field(0.5, ge=0)
    backoff_max_s: float = Field(30.0, ge=0)
    temperature: float = Field(0.0, ge=0)
    max_record_tokens: int = Field(1024, gt=0, description="records are cut head+tail to this many tokens")
    response_format: Literal["json_schema", "json_object", "none"] = "json_schema"
    logprobs: bool = Field(True, description="expected-score read-out from digit probabilities where available")
    top_logprobs: int = Field(10, ge=1, le=20)
    n_ctx: int = Field(4096, gt=0, description="local backend context window")
    local_scores: Literal["logits", "generate"] = Field(
        "logits", description="local backend, scores-only labels: read the digits from the logits (fast) or "
                              "generate the JSON under the grammar (what a server does)")
    score_slots: Literal["independent", "sequential"] = Field(
        "independent", description="scores-only labels on a backend that reads logits (local): read each criterion's "
                                   "score from the shared prompt alone, so no score conditions the next "
                                   "(independent), or one after another as a generated JSON does (sequential)")
    datamark: bool = Field(
        True, description="label prompts show the record datamarked (every space between words replaced by a marker "
                          "symbol), so instructions planted in a record read as marked data whatever their wording "
                          "(bench/injection.py: with the 1.5B teacher max shift +4.6 -> +2.9, at ~28 % less "
                          "clean-vs-corrupted separation); changing it relabels")
    threads: int = Field(0, ge=0, description="local backend threads; 0 = all cores")
    replay_as: Literal["local", "openai"] = Field("local", description="replay: which backend's cache entries to use")
    warm_cache: str | None = Field(
        None, description="folder with teacher.sqlite + nonce.key copied into a new workspace (e.g. the demo's)")


class _PerGroup(_Strict):
    """A stage section whose settings a group may override: ``groups: {<group>: {<field>: <value>}}``.

    Groups differ in ways one setting cannot serve: a group of long reasoning traces needs a longer label cut than
    a group of short Q&A, a thin group more judged records. An override is checked like the section itself (same
    fields, same bounds); `for_group` gives the settings a group runs with. Fingerprints use `settings_dump`, so
    adding an override for one group redoes that group's work only.
    """

    groups: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="group name -> settings of this section that differ for that group")
    _stage_wide: ClassVar[frozenset[str]] = frozenset()  # keys read once per stage, so no group can differ

    @model_validator(mode="after")
    def _check_group_overrides(self):
        for name, override in self.groups.items():
            check_safe_name(name, "group name")
            fixed = sorted(set(override) & (self._stage_wide | {"groups"}))
            if fixed:
                raise ValueError(f"groups.{name}: {', '.join(fixed)} cannot differ per group (set it for the section)")
            try:
                self.for_group(name)
            except ValidationError as e:
                problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
                raise ValueError(f"groups.{name}: {problems}") from None
        return self

    def for_group(self, group: str):
        """This section with ``group``'s overrides applied (the section itself when it has none)."""
        override = self.groups.get(group)
        if not override:
            return self
        return type(self).model_validate({**self.model_dump(exclude={"groups"}), **override})

    def settings_dump(self, group: str) -> dict[str, Any]:
        """What ``group``'s work depends on in this section: its effective settings, without other groups'."""
        return self.for_group(group).model_dump(mode="json", exclude={"groups"})

    def unknown_groups(self, known: list[str]) -> list[str]:
        return sorted(set(self.groups) - set(known))


class DiscoverConfig(_PerGroup):
    records_per_group: int = Field(64, gt=0, description="records judged free-form per group")
    anchors: int = Field(15, gt=0, description="anchors per group (fewer if there are too few judgment points)")
    anchors_per_part: int = Field(5, gt=0, description="qa_think groups: anchors each for think/combined/answer")
    spare_anchors: int = Field(
        5, ge=0, description="candidates written beyond the target (per part: a third, at least 1), so the label "
                             "stage can replace anchors that turn out not to discriminate")
    merge_similarity: float = Field(
        0.85, gt=0, le=1, description="anchors whose name + definition embed closer than this are merged")
    points_per_anchor: int = Field(10, gt=0, description="judgment points shown to the teacher per anchor it writes")
    seed: int = 0


class LabelConfig(_PerGroup):
    _stage_wide: ClassVar[frozenset[str]] = frozenset({"injection_check"})  # decides the stage's prompt set
    records_per_group: int = Field(400, gt=0, description="records scored on every anchor per group")
    val_share: float = Field(0.2, gt=0, lt=1)
    min_val: int = Field(30, ge=0, description="validation records per source, when the source has them")
    chunk: int = Field(16, gt=0, description="records per checkpoint")
    max_record_tokens: int | None = Field(None, gt=0, description="record cut for labeling (default: the "
                                                                    "teacher's max_record_tokens)")
    length_bins: int = Field(4, gt=0, description="token-count quantile bins per source the sample is spread over")
    sample_pool: int = Field(
        256, ge=2, description="records per source in the seeded reservoir a sample starts from (its length-bin "
                               "edges and first records); beyond it, records follow by a seeded id hash. Samples "
                               "are nested at any size: raising records_per_group only adds labels. Changing this "
                               "redraws every sample")
    twins: bool = Field(True, description="add teacher-scored corrupted copies of sampled records (train split)")
    twins_share: float = Field(0.15, ge=0, le=1, description="twins per group, as a share of records_per_group")
    explained: int = Field(8, ge=0, description="records per group also labeled with evidence + rationale (report)")
    min_std: float = Field(0.1, ge=0, description="anchors whose labels vary less than this (score points) are "
                                                   "dropped, refilled from the spare candidates")
    min_std_ratio: float = Field(
        0.5, ge=0, le=1, description="... and so are anchors whose spread is below this share of the group's median "
                                     "anchor spread (how widely a teacher uses the scale depends on its read-out)")
    end_share_flag: float = Field(0.6, gt=0, le=1, description="flag anchors with more labels than this at 0-1 or 9-10")
    length_rho_flag: float = Field(
        0.6, gt=0, le=1, description="flag anchors whose labels follow record length within their sources (|Spearman "
                                     "of label vs. tokens| at or above this): a token counter, not a criterion")
    drop_length_following: bool = Field(
        False, description="drop the flagged length-following anchors too, refilled from the spare candidates")
    injection_check: bool = Field(
        False, description="after each label, ask the teacher whether the record holds text addressed to its reviewer "
                           "(a prompt injection); such records are quarantined from the labels, so the student never "
                           "learns that asking for a score earns one. Off by default: the embedded 1.5B teacher "
                           "cannot tell (bench/injection.py); worth it with a capable teacher")
    injection_threshold: float = Field(5.0, gt=0, le=10, description="the teacher's certainty (0-10) at which a "
                                                                      "record counts as addressed to its reviewer")
    seed: int = 1


class StudentConfig(_Strict):
    kind: Literal["hashed_linear", "embed_heads", "embed_trees", "blend", "generative", "auto"] = Field(
        "hashed_linear", description="auto = fit every CPU tier (hashed_linear, embed_heads, each with and without "
                                     "structural signals, embed_trees, and blend: the mean of hashed_linear+structure "
                                     "and embed_trees), keep the one closest to the teacher on validation")
    params: dict[str, dict[str, Any]] = Field(default_factory=dict, description="per kind: constructor arguments")
    folds: int = Field(
        5, ge=0, description="cross-fitting: every labeled record is predicted by a student fitted without its fold, "
                             "those predictions decide tier, metrics and mask, and the kept student is fitted on all "
                             "labels (CPU tiers; the generative tier keeps the split); 0 = fit on the train split, "
                             "judge on the val split")
    min_n: int = Field(20, gt=0, description="validation records needed before an anchor can count as reliable")
    max_mae: float = Field(1.5, gt=0)
    min_spearman: float = Field(0.3, ge=-1, le=1)
    trim: float = Field(0.1, ge=0, lt=0.5, description="share trimmed at each end of a record's anchor scores")
    unreliable: Literal["teacher_mean", "drop"] = Field(
        "teacher_mean", description="an anchor the student cannot rank on a source: teacher_mean = it enters that "
                                    "source's score at the teacher's mean label for the source (the order within "
                                    "the source is unchanged, levels across sources stay the teacher's); drop = "
                                    "left out (the paper's trimmed mean of reliable anchors only)")
    batch: int = Field(512, gt=0, description="records scored per student call")


SelectionVariant = Literal["group", "source", "global", "group-len", "group-temp", "group-noprefilter", "random",
                           "ppl", "dsir", "dataman", "full"]


class BudgetConfig(_Strict):
    fraction: float = Field(0.5, gt=0, le=1)
    variant: Literal["group", "source", "global"] = "group"
    method: Literal["top", "temperature"] = Field(
        "top", description="top: best scores first; temperature: sample without replacement with the scores as "
                           "logits (Gumbel top-k), same exact token accounting")
    temperature: float = Field(1.0, gt=0, description="temperature of `method: temperature` (score points)")
    length_residual: bool = Field(
        False, description="take the length component out inside each unit: rank by the residual of the score "
                           "regressed on log tokens")
    seed: int = 0
    compare: list[SelectionVariant] = Field(
        default_factory=lambda: ["source", "global"],
        description="variants `mira run` selects beside `variant`, for the report (dataman also labels its rubric)")

    def variants(self) -> list[str]:
        """The configured variant first, then the comparison variants, each once."""
        return list(dict.fromkeys([self.variant, *self.compare]))


class ReferenceConfig(_Strict):
    sources: list[str] = Field(default_factory=list,
                               description="sources whose sample is the 'high quality' target of ppl and DSIR")
    share: float = Field(0.05, ge=0, lt=1, description="share of each reference source held out as the target")


class BaselinesConfig(_Strict):
    reference: ReferenceConfig = Field(default_factory=ReferenceConfig)
    ppl_prefix_tokens: int = Field(1024, gt=0, description="ppl scores this many tokens of each record")
    dsir_buckets: int = Field(10_000, gt=0, description="hashed n-gram buckets of DSIR's feature space")
    dataman_max_record_tokens: int = Field(256, gt=0, description="DataMan teacher input cut (short, fixed)")
    dataman_records: int | None = Field(None, gt=0, description="DataMan labels in all (default: as many as MIRA "
                                                                "labels over all its groups)")
    seed: int = 0


class EvalConfig(_Strict):
    holdout_share: float = Field(0.0, ge=0, lt=0.5, description="of every source, never selected (eval coverage)")
    benchmarks: str = Field("bundled", description="'bundled' (MBPP+, Spider, BIRD) or a folder / .jsonl")
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
    train_bytes: int = Field(400_000, gt=0, description="transformer proxy: training bytes per run (every variant)")
    context: int = Field(256, gt=8, description="transformer proxy context (bytes)")
    layers: int = Field(4, gt=0)
    width: int = Field(128, gt=0)
    heads: int = Field(4, gt=0)
    batch: int = Field(16, gt=0)
    lr: float = Field(2e-3, gt=0)
    ngram_order: int = Field(4, gt=0, le=8, description="count-based proxy: n-gram order over hashed tokens")
    variants: list[str] = Field(default_factory=lambda: ["group", "source", "global", "random", "ppl", "dsir",
                                                         "dataman", "full"])
    threads: int = Field(0, ge=0, description="torch threads; 0 = all cores")
    full_double: bool = Field(True, description="also train the transformer on the full corpus with 2x the bytes")


RuleAction = Literal["drop", "flag", "off"]


class GopherRepetitionRule(_Strict):
    """datatrove's GopherRepetitionFilter with its defaults (web-text repetition thresholds)."""
    action: RuleAction = "flag"


class GopherQualityRule(_Strict):
    action: RuleAction = "flag"


class C4QualityRule(_Strict):
    action: RuleAction = "flag"


class FineWebQualityRule(_Strict):
    action: RuleAction = "flag"


class SyntaxErrorRule(_Strict):
    action: RuleAction = "flag"
    max_error_share: float = Field(0.02, ge=0, le=1, description="share of bytes in tree-sitter error nodes allowed")
    max_bytes: int = Field(100_000, gt=0, description="bytes of the file parsed")


class LongLinesRule(_Strict):
    action: RuleAction = "drop"
    max_line: int = Field(1000, gt=0, description="longest line allowed (StarCoder: 1000)")
    max_mean: float = Field(100.0, gt=0, description="mean line length allowed (StarCoder: 100)")


class AlnumFractionRule(_Strict):
    action: RuleAction = "drop"
    min_fraction: float = Field(0.25, ge=0, le=1, description="alphanumeric share of characters (StarCoder: 0.25)")


class DataBlobRule(_Strict):
    action: RuleAction = "drop"
    max_run: int = Field(1024, gt=0, description="longest base64/hex/escape run allowed (characters)")
    max_share: float = Field(0.5, gt=0, le=1, description="share of the file such runs may take")


class MinifiedRule(_Strict):
    action: RuleAction = "flag"
    min_mean_line: float = Field(80.0, gt=0, description="mean non-empty line length from which a file may be minified")
    max_whitespace: float = Field(0.12, ge=0, le=1, description="... and whitespace share below which it is")


class AutogeneratedRule(_Strict):
    action: RuleAction = "drop"
    header_lines: int = Field(5, gt=0, description="lines read for an auto-generated notice")


class RepeatedActionRule(_Strict):
    action: RuleAction = "flag"
    min_repeats: int = Field(3, ge=2, description="same action + same observation this many times")


class NoFinalAnswerRule(_Strict):
    action: RuleAction = "flag"


class EmptyAnswerRule(_Strict):
    action: RuleAction = "drop"
    min_chars: int = Field(2, gt=0, description="shorter answers are empty")


class RefusalRule(_Strict):
    action: RuleAction = "flag"
    max_chars: int = Field(400, gt=0, description="longer answers that start with a refusal are kept")


class EchoAnswerRule(_Strict):
    action: RuleAction = "flag"
    min_similarity: float = Field(0.9, gt=0, le=1, description="answer vs question similarity (difflib ratio)")


class ExactDupRule(_Strict):
    action: RuleAction = "drop"


class NearDupRule(_Strict):
    action: RuleAction = "flag"
    threshold: float = Field(0.8, gt=0, lt=1, description="estimated Jaccard similarity of word n-gram sets")
    ngram: int = Field(5, gt=0, le=20, description="words per shingle")
    num_perm: int = Field(128, ge=16, le=1024, description="MinHash permutations")


class PrefilterRules(_Strict):
    gopher_repetition: GopherRepetitionRule = Field(default_factory=GopherRepetitionRule)
    gopher_quality: GopherQualityRule = Field(default_factory=GopherQualityRule)
    c4_quality: C4QualityRule = Field(default_factory=C4QualityRule)
    fineweb_quality: FineWebQualityRule = Field(default_factory=FineWebQualityRule)
    syntax_error: SyntaxErrorRule = Field(default_factory=SyntaxErrorRule)
    long_lines: LongLinesRule = Field(default_factory=LongLinesRule)
    alnum_fraction: AlnumFractionRule = Field(default_factory=AlnumFractionRule)
    data_blob: DataBlobRule = Field(default_factory=DataBlobRule)
    minified: MinifiedRule = Field(default_factory=MinifiedRule)
    autogenerated: AutogeneratedRule = Field(default_factory=AutogeneratedRule)
    repeated_action: RepeatedActionRule = Field(default_factory=RepeatedActionRule)
    no_final_answer: NoFinalAnswerRule = Field(default_factory=NoFinalAnswerRule)
    empty_answer: EmptyAnswerRule = Field(default_factory=EmptyAnswerRule)
    refusal: RefusalRule = Field(default_factory=RefusalRule)
    echo_answer: EchoAnswerRule = Field(default_factory=EchoAnswerRule)
    exact_dup: ExactDupRule = Field(default_factory=ExactDupRule)
    near_dup: NearDupRule = Field(default_factory=NearDupRule)


class PrefilterConfig(_Strict):
    """Cheap rules and dedup before grouping; per rule ``action: drop | flag | off`` and its thresholds. The
    contamination guard runs in the same pass and is not switched off with ``enabled``: contaminated records are
    excluded from every selection whatever the rules."""
    enabled: bool = Field(True, description="false: no rules and no dedup (the contamination guard still runs)")
    rules: PrefilterRules = Field(default_factory=PrefilterRules)
    contamination: ContaminationConfig = Field(default_factory=ContaminationConfig)


class CheckConfig(_Strict):
    """`mira check` (the last stage of `mira run`): held-out twin pairs per format ranked by the finished scorer.
    With 24 pairs an accuracy of 0.88 has a 95 % interval of about 0.69-0.96, so a bar like 0.85 needs more."""
    pairs_per_format: int = Field(24, gt=0, description="twin pairs per format (the interval narrows as 1/sqrt)")
    seed: int = 0


class MiraConfig(_Strict):
    workspace: str = "ws"
    tokenizer: str = Field("qwen2.5-coder", description="'qwen2.5-coder' (bundled) or a path to a tokenizer.json")
    sources: list[SourceConfig] = Field(min_length=1)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    prefilter: PrefilterConfig = Field(default_factory=PrefilterConfig)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    groups: GroupsConfig = Field(default_factory=GroupsConfig)
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    discover: DiscoverConfig = Field(default_factory=DiscoverConfig)
    label: LabelConfig = Field(default_factory=LabelConfig)
    student: StudentConfig = Field(default_factory=StudentConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    baselines: BaselinesConfig = Field(default_factory=BaselinesConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    check: CheckConfig = Field(default_factory=CheckConfig)

    # Set by load_config: the directory relative paths in this file are resolved against. Not part of the YAML.
    base_dir: Path = Field(default=Path("."), exclude=True)

    @model_validator(mode="after")
    def _unique_sources(self) -> "MiraConfig":
        seen: set[str] = set()
        for s in self.sources:
            if s.name in seen:
                raise ValueError(f"source {s.name!r} is defined twice")
            seen.add(s.name)
        unknown = sorted(set(self.groups.override) - seen)
        if unknown:
            raise ValueError(f"groups.override names unknown sources: {', '.join(unknown)}")
        unknown = sorted(set(self.baselines.reference.sources) - seen)
        if unknown:
            raise ValueError(f"baselines.reference.sources names unknown sources: {', '.join(unknown)}")
        return self

    def source(self, name: str) -> SourceConfig:
        for s in self.sources:
            if s.name == name:
                return s
        raise ConfigError(f"no source named {name!r} in the config (have: {', '.join(self.source_names)})")

    @property
    def source_names(self) -> list[str]:
        return [s.name for s in self.sources]

    @property
    def workspace_path(self) -> Path:
        return resolve_local(self.workspace, self.base_dir)

    def resolved_dump(self) -> dict[str, Any]:
        """The config as it ran, with the workspace made absolute, for ws/mira.yaml."""
        data = self.model_dump(mode="json")
        data["workspace"] = str(self.workspace_path)
        return data


def resolve_local(path: str, base_dir: Path) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else (base_dir / p).resolve()


def _yaml_lines(text: str) -> dict[tuple, int]:
    """Map every key path in the YAML document to its 1-based line, so errors can point into the file."""
    lines: dict[tuple, int] = {}
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return lines

    def walk(node: Any, path: tuple) -> None:
        lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                k = key.value
                lines[path + (k,)] = key.start_mark.line + 1
                walk(value, path + (k,))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, path + (i,))

    if root is not None:
        walk(root, ())
    return lines


def _format_loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def format_validation_error(err: ValidationError, where: str, lines: dict[tuple, int]) -> str:
    problems = []
    for e in err.errors():
        loc = tuple(e["loc"])
        line = None
        for cut in range(len(loc), -1, -1):  # deepest key that exists in the file
            if loc[:cut] in lines:
                line = lines[loc[:cut]]
                break
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key (typo?)"
        at = f"{where}:{line}" if line else where
        problems.append(f"  {at}: {_format_loc(loc)}: {msg}")
    return f"{where}: {len(problems)} problem(s) in the config:\n" + "\n".join(problems)


def parse_config(text: str, where: str = "mira.yaml", base_dir: Path | None = None) -> MiraConfig:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping with a 'sources' list at the top level")
    if "base_dir" in data:
        raise ConfigError(f"{where}: 'base_dir' is not a config key (paths resolve against the config's folder)")
    if isinstance(data.get("ingest"), dict) and "contamination" in data["ingest"]:
        line = _yaml_lines(text).get(("ingest", "contamination"))
        raise ConfigError(f"{where}{f':{line}' if line else ''}: ingest.contamination moved to "
                          "prefilter.contamination (the guard runs in the prefilter pass)")
    try:
        cfg = MiraConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, where, _yaml_lines(text))) from None
    cfg.base_dir = (base_dir or Path(".")).resolve()
    return cfg


def load_config(path: str | Path) -> MiraConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path} (create one with `mira init`)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from None
    return parse_config(text, where=str(path), base_dir=path.resolve().parent)

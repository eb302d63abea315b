"""Units of the rubric → label chain: length-stratified sampling, anchor choice after labeling, merging of
near-duplicate anchors, and the scores-only answer format (schema, validation, expected-score read-out)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import orjson
import pyarrow as pa

from mira_select.io.shards import write_table
from mira_select.sampling import _quantile_edges, length_bin, length_stratified_sample, round_robin_sample
from mira_select.stages.discover import merge_anchors
from mira_select.anchor_choice import choose_anchors, label_dimensionality
from mira_select.stages.label import label_table, quarantine_addressed, write_splits
from mira_select.teacher.prompts import PromptBuilder, rubric_line
from mira_select.teacher.schema import expected_scores, scores_only_schema, validate_scores
from mira_select.teacher.types import Anchor
from mira_select.workspace import Workspace


def _ws_with_lengths(tmp_path, sizes: dict[str, list[int]]) -> Workspace:
    ws = Workspace(tmp_path / "ws")
    for source, lengths in sizes.items():
        rows = [{"id": f"{source}-{i}", "source": source, "format": "text", "text": "w " * n, "n_tokens": n}
                for i, n in enumerate(lengths)]
        write_table(ws.records_dir(source) / "part-00000.parquet", pa.Table.from_pylist(rows))
    return ws


def test_length_stratified_sample_covers_every_source_and_length_bin(tmp_path):
    rng = np.random.default_rng(0)
    # a source that is mostly short with a thin long tail: a uniform sample of 10 rarely sees the tail
    sizes = {"skewed": sorted(rng.integers(5, 20, 190).tolist() + rng.integers(2000, 4000, 10).tolist()),
             "even": list(range(10, 2010, 10)), "tiny": [7, 8, 9]}
    ws = _ws_with_lengths(tmp_path, sizes)
    out = length_stratified_sample(ws, list(sizes), n=24, seed=3, bins=4)
    assert len(out) == 24 and len({r.id for r in out}) == 24
    by_source = {s: [r for r in out if r.source == s] for s in sizes}
    assert len(by_source["tiny"]) == 3  # a short source gives what it has, the others fill in
    for s in ("skewed", "even"):
        edges = _quantile_edges(sizes[s], 4)
        assert {length_bin(r.n_tokens, edges) for r in by_source[s]} == set(range(len(edges) + 1)), s
    even = sorted(r.n_tokens for r in by_source["even"])
    assert even[0] < 510 and even[-1] > 1510  # the source's lowest and highest quartiles are both in
    again = length_stratified_sample(ws, list(sizes), n=24, seed=3, bins=4)
    assert [r.id for r in again] == [r.id for r in out]
    assert len(round_robin_sample(ws, list(sizes), n=24, seed=3)) == 24


def _labels(scores: dict[str, list[float]], twin: list[str] | None = None,
            ids: list[str] | None = None, addressed: list[float | None] | None = None) -> pa.Table:
    anchors = [Anchor(a, a, "d") for a in scores]
    n = len(next(iter(scores.values())))
    rows = [{"id": (ids or [f"r{i}" for i in range(n)])[i], "source": "s" if i % 2 else "t", "format": "text",
             "n_tokens": 10, "addressed": (addressed or [None] * n)[i],
             "twin": (twin or [""] * n)[i], "twin_text": "", "readout": "expected", "model": "m", "prompt_hash": "p",
             **{f"score:{a}": v[i] for a, v in scores.items()}, **{f"greedy:{a}": int(v[i]) for a, v in scores.items()},
             **{f"rationale:{a}": "" for a in scores}, **{f"evidence:{a}": "" for a in scores}} for i in range(n)]
    return label_table(rows, anchors)


def test_choose_anchors_drops_constant_ones_and_refills_from_spares():
    varied = [float(i % 10) for i in range(40)]
    flat = [10.0] * 39 + [9.0]
    table = _labels({"a01": varied, "a02": flat, "a03": varied[::-1], "a04": varied, "a05": flat})
    anchors = [Anchor(a, a, "d") for a in ("a01", "a02", "a03", "a04", "a05")]
    choice = choose_anchors(table, anchors, {"combined": 3}, min_std=0.5, end_flag=0.6)
    assert choice["active"] == ["a01", "a03", "a04"]  # a04 was a spare; it replaces the constant a02
    assert "does not discriminate" in choice["dropped"]["a02"] and "a05" in choice["dropped"]
    assert choice["stats"]["a02"]["top_share"] == 1.0 and choice["stats"]["a02"]["end_flag"]
    assert not choice["stats"]["a01"]["end_flag"]
    # nothing varies: the part keeps its most varied anchor rather than none
    only_flat = _labels({"a01": flat, "a02": [5.0] * 39 + [0.0]})
    c2 = choose_anchors(only_flat, [Anchor("a01", "x", "d"), Anchor("a02", "y", "d")], {"combined": 2}, 0.5, 0.6)
    assert c2["active"] == ["a02"]
    assert choose_anchors(table, anchors, {"combined": 3}, 0.5, 0.6, drop=False)["active"] == [a.id for a in anchors]


def test_choose_anchors_judges_spread_relative_to_the_groups_scale():
    """Independent score slots spread labels ~0.5 points, sequential ones ~3: an anchor is 'not discriminating'
    relative to how the group's anchors use the scale, with the absolute floor for truly constant ones."""
    rng = np.random.default_rng(0)
    narrow = {f"a0{i}": list(6 + 0.5 * rng.standard_normal(60)) for i in range(1, 5)}
    narrow["a05"] = list(6 + 0.05 * rng.standard_normal(60))  # a tenth of the others' spread
    table = _labels(narrow)
    anchors = [Anchor(a, a, "d") for a in narrow]
    absolute = choose_anchors(table, anchors, {"combined": 5}, min_std=0.5, end_flag=0.6)
    assert len(absolute["active"]) <= 2  # an absolute 0.5 drops most of an independent read-out's anchors
    relative = choose_anchors(table, anchors, {"combined": 5}, min_std=0.1, end_flag=0.6, min_std_ratio=0.5)
    assert relative["active"] == ["a01", "a02", "a03", "a04"]
    assert "does not discriminate" in relative["dropped"]["a05"]
    assert 0.2 < relative["min_std"] < 0.3  # half the median spread (~0.5)


def test_choose_anchors_flags_and_optionally_drops_anchors_that_follow_length():
    """An anchor whose labels rank records by their length inside each source is flagged (and dropped when asked);
    one that separates a short good source from a long poor one, but not records within a source, is not."""
    rng = np.random.default_rng(1)
    n = 80
    src = ["s" if i % 2 else "t" for i in range(n)]
    tokens = [int(50 + 900 * rng.random()) + (2000 if s == "t" else 0) for s in src]
    counter = [t / 300 + 0.3 * rng.standard_normal() for t in tokens]  # more tokens, higher score, in each source
    by_source = [(2.0 if s == "t" else 8.0) + rng.standard_normal() for s in src]  # long source low, no order within
    quality = list(5 + 2 * rng.standard_normal(n))
    table = _labels({"a01": counter, "a02": by_source, "a03": quality, "a04": list(quality[::-1])})
    table = table.set_column(table.schema.get_field_index("n_tokens"), "n_tokens", pa.array(tokens, pa.int32()))
    table = table.set_column(table.schema.get_field_index("source"), "source", pa.array(src, pa.string()))
    anchors = [Anchor(a, a, "d") for a in ("a01", "a02", "a03", "a04")]
    flagged = choose_anchors(table, anchors, {"combined": 3}, 0.1, 0.6, length_flag=0.6)
    st = flagged["stats"]
    assert st["a01"]["length_rho"] > 0.8 and st["a01"]["length_flag"]
    assert abs(st["a02"]["length_rho"]) < 0.4 and not st["a02"]["length_flag"]  # pooled over both sources: -0.74
    assert flagged["active"] == ["a01", "a02", "a03"]  # flagged only: the choice is unchanged
    dropped = choose_anchors(table, anchors, {"combined": 3}, 0.1, 0.6, length_flag=0.6, drop_length=True)
    assert dropped["active"] == ["a02", "a03", "a04"] and "follows length" in dropped["dropped"]["a01"]
    # a source with too few labeled records does not vote; none qualifies -> no figure rather than a guess
    small = table.slice(0, 10)
    assert choose_anchors(small, anchors, {"combined": 3}, 0.1, 0.6)["stats"]["a01"]["length_rho"] is None


def test_label_dimensionality_tells_one_repeated_judgment_from_separate_ones():
    """A teacher that repeats one overall score on every anchor gives one judgment, whatever the anchor count;
    independent anchors give about as many as there are; a source better on every anchor at once is not a halo."""
    rng = np.random.default_rng(0)
    n, k = 400, 6
    sources = ["a" if i % 2 else "b" for i in range(n)]
    overall = rng.normal(5, 2, n)
    halo = label_dimensionality(overall[:, None] + 0.2 * rng.standard_normal((n, k)), sources)
    assert halo["pc1_share"] > 0.95 and halo["effective"] < 1.1 and halo["halo"] and halo["anchors"] == k
    independent = label_dimensionality(rng.normal(5, 2, (n, k)), sources)
    assert independent["pc1_share"] < 0.3 and independent["effective"] > 0.9 * k and not independent["halo"]
    shift = np.array([[3.0] * k if s == "a" else [0.0] * k for s in sources])  # source a better on every anchor
    assert label_dimensionality(rng.normal(5, 1, (n, k)) + shift, sources)["pc1_share"] < 0.3
    assert label_dimensionality(overall[:, None], sources) is None  # one anchor: nothing to compare
    assert label_dimensionality(np.full((n, k), 7.0), sources) is None  # no spread at all


def test_twins_are_excluded_from_anchor_stats_and_always_train(tmp_path):
    scores = [float(i % 10) for i in range(20)] + [0.0] * 20
    table = _labels({"a01": scores}, twin=[""] * 20 + ["splice_spam"] * 20)
    choice = choose_anchors(table, [Anchor("a01", "x", "d")], {"combined": 1}, 0.5, 0.6)
    assert choice["stats"]["a01"]["n"] == 20 and choice["stats"]["a01"]["bottom_share"] == 0.2
    split = write_splits(tmp_path, table, val_share=0.5, min_val=5)
    assert all(split[f"r{i}"] == "train" for i in range(20, 40))
    assert sum(split[f"r{i}"] == "val" for i in range(20)) == 10


def test_records_addressed_to_the_reviewer_leave_the_labels_with_their_twins(tmp_path):
    ids = ["r0", "r1", "r2", "r1~splice_spam", "r2~truncate"]
    table = _labels({"a01": [5.0, 9.0, 4.0, 8.0, 1.0]}, twin=["", "", "", "splice_spam", "truncate"], ids=ids,
                    addressed=[1.0, 7.5, None, 2.0, 6.0])
    kept, n = quarantine_addressed(table, 5.0, tmp_path / "addressed.jsonl")
    # r1 is flagged, so is its twin (same text plus a defect); r2's twin is flagged on its own; a dead check (None)
    # never flags; r2 itself (its check failed) stays
    assert kept.column("id").to_pylist() == ["r0", "r2"] and n == 3
    listed = [orjson.loads(line) for line in (tmp_path / "addressed.jsonl").read_bytes().splitlines()]
    assert [d["id"] for d in listed] == ["r1", "r1~splice_spam", "r2~truncate"]
    assert quarantine_addressed(table, 9.0, tmp_path / "none.jsonl")[1] == 0


class _Embedder:
    """Bag-of-words vectors over a fixed vocabulary: texts with the same words embed identically."""

    VOCAB = sorted(set("correctness check the answer is correct output right readability code easy to read tool "
                       "choice called for each step speed security good".split()))

    def encode(self, texts):
        return np.array([[t.lower().split().count(w) for w in self.VOCAB] for t in texts], float)


def _written(name, definition, size):
    return {"name": name, "definition": definition, "cluster_size": size, "merged": [],
            "_members": np.arange(size)}


def test_merge_anchors_folds_same_name_and_near_same_meaning():
    written = [_written("Correctness", "the answer is correct", 9),
               _written("Correctness", "is the output right", 7),  # same name
               _written("Correctness check", "the answer is correct", 5),  # near-same name + definition
               _written("Readability", "the code is easy to read", 4),
               _written("Tool choice", "the right tool is called for each step", 3)]
    kept = merge_anchors(written, _Embedder(), threshold=0.75, limit=2)
    assert [k["name"] for k in kept] == ["Correctness", "Readability"]
    assert kept[0]["merged"] == ["Correctness", "Correctness check"] and kept[0]["cluster_size"] == 21
    # the same definition under a different name is a different criterion: names weigh double
    apart = merge_anchors([_written("Speed", "the code is good", 3), _written("Security", "the code is good", 2)],
                          _Embedder(), threshold=0.75, limit=5)
    assert [k["name"] for k in apart] == ["Speed", "Security"]
    assert len(kept[0]["_members"]) == 21


def test_scores_only_answer_round_trip_and_expected_read_out():
    anchors = [Anchor("a01", "Clarity", "d", levels=("bad", "ok", "great")), Anchor("a02", "Depth", "d")]
    schema = scores_only_schema(anchors)
    assert schema["required"] == ["a01", "a02"] and schema["properties"]["a01"]["enum"][-1] == 10
    text = '{"a01": 10, "a02": 3}'
    data, problems = validate_scores(text, anchors)
    assert not problems and data["a01"]["score"] == 10
    probs = [(8, {"1": 0.8, "9": 0.2}), (9, {"0": 0.75}), (19, {"3": 0.5, "4": 0.5})]
    exp = expected_scores(text, anchors, data, probs)
    assert abs(exp["a01"] - (0.8 * (0.75 * 10 + 0.25 * 1) + 0.2 * 9)) < 1e-3 and exp["a02"] == 3.5
    assert "0 = bad 5 = ok 10 = great" in rubric_line(anchors[0]) and " 0 = " not in rubric_line(anchors[1])
    req = PromptBuilder(secret=b"k" * 32).label("text", "r1", "some text", anchors)
    assert req.score_ids == ("a01", "a02") and "score_ids" in req.cache_fields()
    assert "great" in req.messages[0]["content"] and "some text" in req.messages[1]["content"]
    assert "score_ids" not in PromptBuilder(secret=b"k" * 32).judge("text", "r1", "x").cache_fields()


def test_judge_prompt_names_no_dimensions():
    """The judge prompt describes the kind of record only; the rubric must come from the teacher's judgments."""
    pb = PromptBuilder(secret=b"k" * 32)
    for fmt in ("text", "code", "qa", "qa_think", "agent"):
        system = pb.judge(fmt, "r", "x").messages[0]["content"].lower()
        for word in ("readability", "correctness", "clarity", "idiomatic", "tool call", "efficiency", "depth",
                     "accuracy", "boilerplate", "error"):
            assert word not in system, (fmt, word)


def test_length_stratified_samples_are_nested(tmp_path):
    """Raising records_per_group must only add labels (the teacher cache answers the earlier ones)."""
    ws = _ws_with_lengths(tmp_path, {"a": list(range(1, 300)), "b": list(range(5, 905, 3)), "c": [4, 5, 6]})
    small = [r.id for r in length_stratified_sample(ws, ["a", "b", "c"], n=30, seed=1)]
    large = [r.id for r in length_stratified_sample(ws, ["a", "b", "c"], n=120, seed=1)]
    assert large[:30] == small and len(set(large)) == 120


def test_samples_stay_nested_beyond_the_reservoir_and_keep_every_length_bin(tmp_path):
    """Past ``pool`` records per source the order goes on by a seeded id hash: any two sizes are nested, every length
    bin of the base keeps its turn, a small source gives what it has and the others fill in."""
    rng = np.random.default_rng(4)
    sizes = {"a": rng.integers(5, 900, 700).tolist(), "b": sorted(rng.integers(5, 50, 380).tolist() + [3000] * 20),
             "c": [4, 5, 6, 7, 8]}
    ws = _ws_with_lengths(tmp_path, sizes)
    draws = {n: [r for r in length_stratified_sample(ws, list(sizes), n=n, seed=2, pool=16)]
             for n in (10, 45, 200, 900, 1200)}
    for small, large in ((10, 45), (45, 200), (200, 900), (900, 1200)):
        assert [r.id for r in draws[large][:small]] == [r.id for r in draws[small]], (small, large)
    everything = draws[1200]
    assert len(everything) == 1105 and len({r.id for r in everything}) == 1105  # every record once, none twice
    # the first 200: both large sources give ~ the same share, c all of its 5
    got = {s: [r for r in draws[200] if r.source == s] for s in sizes}
    assert len(got["c"]) == 5 and abs(len(got["a"]) - len(got["b"])) <= 1
    # past the reservoir (16 per source) every length bin of b keeps its turn: as many from each as it has
    from mira_select.sampling import reservoir_sample

    edges = _quantile_edges([r.n_tokens for r in reservoir_sample(ws, ["b"], n=16, seed=2)["b"]], 4)
    has = Counter(length_bin(n, edges) for n in sizes["b"])
    took = Counter(length_bin(r.n_tokens, edges) for r in got["b"])
    share = len(got["b"]) // len(has)
    assert len(has) >= 3 and all(took[b] >= min(has[b], share - 1) for b in has), (has, took)
    # the base is the seeded reservoir of `pool`, as before: a sample within it does not read further
    base = length_stratified_sample(ws, list(sizes), n=30, seed=2, pool=16)
    assert [r.id for r in base] == [r.id for r in draws[200][:30]]
    # a different seed is a different order
    assert [r.id for r in length_stratified_sample(ws, list(sizes), n=200, seed=3, pool=16)] != \
        [r.id for r in draws[200]]


def test_reservoir_sample_reads_texts_of_the_winners_only_and_matches_a_one_pass_reservoir(tmp_path, monkeypatch):
    """Positions are chosen from the source/format columns, texts read afterwards from the row groups holding a
    winner. The result must equal a plain one-pass reservoir over whole records (same seeded decisions), across
    shards and row groups, per key."""
    import pyarrow.parquet as pq

    from mira_select.sampling import _rng, reservoir_sample

    ws = Workspace(tmp_path / "ws")
    for source, n_rows in (("a", 2500), ("b", 40)):
        for part in range(2):
            rows = [{"id": f"{source}-{part}-{i}", "source": source, "format": "code" if i % 3 else "text",
                     "text": f"text of {source} {part} {i}", "n_tokens": i} for i in range(n_rows)]
            path = ws.records_dir(source) / f"part-{part:05d}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=300)  # many row groups

    def one_pass(key, n, seed):
        res, seen = {}, {}
        for source in ("a", "b"):
            for shard in ws.record_shards(source):
                for r in pq.read_table(shard).to_pylist():
                    k = key(r["source"], r["format"])
                    c = seen[k] = seen.get(k, 0) + 1
                    rng = res.setdefault(k, (_rng(seed, k), []))[0]
                    slot = c - 1 if c <= n else rng.randrange(c)
                    if slot < n:
                        (res[k][1].append if c <= n else res[k][1].__setitem__)(*(((c, r["id"]),) if c <= n
                                                                                  else (slot, (c, r["id"]))))
        return {k: [i for _, i in sorted(v[1])] for k, v in sorted(res.items())}

    read_groups = []
    real = pq.ParquetFile.read_row_group
    monkeypatch.setattr(pq.ParquetFile, "read_row_group",
                        lambda self, g, **kw: read_groups.append(g) or real(self, g, **kw))
    for key, n in ((lambda s, f: s, 50), (lambda s, f: f, 7)):
        read_groups.clear()
        got = reservoir_sample(ws, ["a", "b"], n=n, seed=5, key=key)
        assert {k: [r.id for r in v] for k, v in got.items()} == one_pass(key, n, seed=5)
        for recs in got.values():
            assert all(r.text == "text of " + r.id.replace("-", " ") for r in recs)  # the winner's own text
    assert len(read_groups) <= 2 * 7 < 20  # 7 winners per format: at most 14 of the 20 row groups are decoded

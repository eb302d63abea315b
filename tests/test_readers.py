from pathlib import Path

import fsspec
import zstandard
import orjson
import pytest
import pyarrow as pa
import pyarrow.parquet as pq

from mira_select.config import load_config
from mira_select.stages.ingest import IngestStage
from mira_select.tokens import get_counter

from .conftest import write_config, write_jsonl

ROWS = [{"doc_id": f"d{i}", "body": f"document number {i} about parsing", "lang": "en"} for i in range(5)]


def _ingest(tmp_path, sources, **sections):
    cfg = load_config(write_config(tmp_path, sources, **sections))
    return IngestStage(cfg).run().manifest["sources"]


def _ids(tmp_path, source):
    return [i for p in sorted((tmp_path / "ws" / "records" / source).glob("*.parquet"))
            for i in pq.read_table(p).column("id").to_pylist()]


def test_all_input_kinds_with_field_mapping(tmp_path: Path):
    fields = {"text": "body", "id": "doc_id"}
    write_jsonl(tmp_path / "in" / "a.jsonl.gz", ROWS, compress="gz")
    write_jsonl(tmp_path / "in" / "b.jsonl.zst", ROWS, compress="zst")
    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "in" / "c.parquet")
    (tmp_path / "in" / "d.json").write_bytes(orjson.dumps(ROWS))  # a JSON array file

    import datasets

    datasets.Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "in" / "hfdir"))
    with fsspec.open("memory://bucket/e.jsonl", "wb") as fh:
        fh.write(b"".join(orjson.dumps(r) + b"\n" for r in ROWS))

    m = _ingest(tmp_path, [
        {"name": "gz", "paths": ["in/a.jsonl.gz"], "fields": fields},
        {"name": "zst", "paths": ["in/b.jsonl.zst"], "fields": fields},
        {"name": "pq", "paths": ["in/c.parquet"], "fields": fields},
        {"name": "arr", "paths": ["in/d.json"], "fields": fields},
        {"name": "hf", "paths": ["in/hfdir"], "fields": fields},
        {"name": "mem", "paths": ["memory://bucket/*.jsonl"], "fields": fields},
    ])
    for name in ("gz", "zst", "pq", "arr", "hf", "mem"):
        assert m[name]["records"] == 5, name
        assert m[name]["formats"] == {"text": 5}, name
        assert _ids(tmp_path, name) == [f"d{i}" for i in range(5)], name
        meta = orjson.loads(pq.read_table(tmp_path / "ws" / "records" / name / "part-00000.parquet")
                            .column("meta")[0].as_py())
        assert meta == {"lang": "en"}  # text and id fields are not duplicated into meta


def test_stable_ids_when_records_have_none(tmp_path: Path):
    rows = [{"text": f"t{i}"} for i in range(3)]
    write_jsonl(tmp_path / "in" / "sub" / "x.jsonl", rows)
    write_jsonl(tmp_path / "in" / "sub" / "y.jsonl", rows)
    _ingest(tmp_path, [{"name": "s", "paths": ["in"]}])
    first = _ids(tmp_path, "s")
    assert first == [f"s/sub/{f}.jsonl/{i}" for f in "xy" for i in (1, 2, 3)]
    import shutil

    shutil.rmtree(tmp_path / "ws")
    _ingest(tmp_path, [{"name": "s", "paths": ["in"]}])
    assert _ids(tmp_path, "s") == first


def test_excluded_fields_never_reach_the_workspace(tmp_path: Path):
    rows = [{"text": "hello", "group": "code", "meta": {"lowq_kind": "spam", "path": "a.md"}}]
    write_jsonl(tmp_path / "x.jsonl", rows)
    _ingest(tmp_path, [{"name": "s", "paths": ["x.jsonl"]}],
            ingest={"exclude_fields": ["group", "meta.lowq_kind"]})
    meta = pq.read_table(tmp_path / "ws" / "records" / "s" / "part-00000.parquet").column("meta")[0].as_py()
    assert orjson.loads(meta) == {"meta": {"path": "a.md"}}


def test_qwen_token_counts_are_real():
    counter = get_counter("qwen2.5-coder")
    # Reference ids from Qwen2.5's own tokenizer: def / hello / (): / return / " " / 1
    assert counter.count(["def hello(): return 1"]) == [6]
    assert counter.info.vocab_size >= 151643  # Qwen2 BPE vocab + special tokens (GGUF pads to 151936)
    assert len(counter.info.sha256) == 64


def test_fast_counts_equal_the_tokenizers_library(tmp_path):
    """Counts come from fastokens over the bundled tokenizer.json: they must equal `tokenizers` on the same file,
    on real records of every format, special-token strings and unnormalized Unicode included."""
    from mira_select.tokens import TokenCounter

    from .conftest import DEMO_CORPUS

    counter = TokenCounter("qwen2.5-coder")
    assert counter._fast is not None
    texts = []
    for path in sorted(DEMO_CORPUS.glob("*.jsonl.zst")):
        lines = zstandard.ZstdDecompressor().decompress(path.read_bytes(), max_output_size=1 << 30).splitlines()
        texts += [orjson.loads(line)["text"] for line in lines[:40]]
    texts += ["<|im_start|>user\nhi<|im_end|>", "Cafe\u0301 vs caf\u00e9", "x" * 5000, "\t\n \r\n  ", "日本語のテキスト"]
    slow = [len(e.ids) for e in counter._tok.encode_batch(texts, add_special_tokens=False)]
    assert counter.count(texts) == slow
    assert counter.count(texts, max_chars_per_call=1000) == slow  # batching does not change a count


def test_a_user_tokenizer_is_probed_and_counted_exactly(tmp_path):
    """A tokenizer.json that is not bundled is checked against `tokenizers` on probe strings before fastokens
    counts it; either way the counts are the real ones."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    from mira_select.tokens import TokenCounter

    tok = Tokenizer(models.WordLevel({"a": 0, "b": 1, "[UNK]": 2}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    counter = TokenCounter(str(path))
    assert counter.count(["a b c", "a"]) == [3, 1]
    assert counter.info.vocab_size == 3


def test_tokenizer_info_needs_no_tokenizer_and_agrees_with_tokenizers():
    """The driver records the tokenizer from its file alone; the vocabulary size is the library's own."""
    from mira_select.tokens import tokenizer_info

    counter = get_counter("qwen2.5-coder")
    info = tokenizer_info("qwen2.5-coder")
    assert info.vocab_size == counter._tok.get_vocab_size(with_added_tokens=True) == 151936
    assert info.sha256 == counter.info.sha256


def test_an_unreadable_tokenizer_is_a_clear_error(tmp_path):
    from mira_select.errors import MiraError
    from mira_select.tokens import TokenCounter

    for name, body in [("broken.json", "{not json"), ("odd.json", '{"model": {"type": "Nonsense"}}')]:
        path = tmp_path / name
        path.write_text(body)
        with pytest.raises(MiraError, match=f"cannot load tokenizer '{path}'"):
            TokenCounter(str(path)).count(["a"])

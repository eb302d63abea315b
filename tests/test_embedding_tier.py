"""The hashed n-gram student with a sentence embedding beside it (the auto tier hashed_linear+structure+minilm)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse
from scipy.stats import spearmanr
from sklearn.linear_model import RidgeCV

from mira_select import embed
from mira_select.students.registry import load_student, make_student
from mira_select.students.ridge import ALPHAS, fit_ridge_with_block
from mira_select.students.structure import remembered


def test_the_block_weight_is_chosen_per_anchor_and_folded_into_the_coefficients():
    rng = np.random.default_rng(0)
    n = 240
    x = sparse.random(n, 400, density=0.05, random_state=1, format="csr") * 10
    block = rng.normal(size=(n, 12))
    block /= np.linalg.norm(block, axis=1, keepdims=True)
    y = np.column_stack([block @ rng.normal(size=12) * 3 + rng.normal(scale=0.05, size=n),  # the block's anchor
                         x @ rng.normal(size=400) + rng.normal(scale=0.05, size=n)])  # the n-grams' anchor
    coef, intercept, alpha, scale = fit_ridge_with_block(x, block, y, (0.1, 10.0))
    # the anchor that lives in the block gets the block at the weight that penalises it least, the other does not
    assert scale[0] == 10.0 and scale[1] == 0.1
    # the returned coefficients predict from the unscaled block exactly as the chosen scaled fit does
    for j, s in enumerate(scale):
        scaled = sparse.hstack([x, sparse.csr_matrix(block * s)]).tocsr()
        ref = RidgeCV(alphas=ALPHAS, alpha_per_target=True).fit(scaled, y[:, j])
        ours = sparse.hstack([x, sparse.csr_matrix(block)]).tocsr() @ coef[j] + intercept[j]
        assert np.allclose(ours, ref.predict(scaled), atol=1e-3)
        assert alpha[j] == pytest.approx(ref.alpha_)


# Two kinds of record the teacher scores apart, each written in two disjoint vocabularies of the same word lengths:
# the students learn on the first and are asked about the second, where no word they saw occurs.
_TRAIN = {8.0: ["puppies kittens ponies rabbits hamsters parrots item {}.",
                "wolves tigers eagles dolphins turtles lizards item {}."],
          2.0: ["stocks bonds dividends mortgages invoices payroll item {}.",
                "tariffs rents pensions credits audits ledgers item {}."]}
_TEST = {8.0: ["dogs cats horses bunnies goldfish canaries item {}.",
               "lions bears sharks owls frogs snakes monkeys item {}."],
         2.0: ["shares loans interest budget taxes salary item {}.",
               "debts wages profits fees accounts revenue item {}."]}


def _records(table: dict[float, list[str]], n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """n records per kind, each padded with a random count of a filler word so length says nothing about the kind."""
    rng = np.random.default_rng(seed)
    texts, y = [], []
    for i in range(n):
        for score, templates in table.items():
            texts.append(templates[i % len(templates)].format(i) + " etc" * int(rng.integers(0, 6)))
            y.append([score])
    return texts, np.asarray(y)


def test_the_embedding_carries_a_judgment_to_records_in_words_the_labels_never_used(tmp_path):
    train_texts, train_y = _records(_TRAIN, 30)
    test_texts, test_y = _records(_TEST, 10, seed=1)
    sources = ["s"] * len(train_texts)
    plain = make_student("hashed_linear", ["a01"], structure=True).fit(train_texts, train_y, sources)
    with_embedding = make_student("hashed_linear", ["a01"], structure=True, embedder="minilm")
    with_embedding.fit(train_texts, train_y, sources)
    rho_plain = spearmanr(plain.predict(test_texts)[:, 0], test_y[:, 0]).statistic
    got = with_embedding.predict(test_texts)
    rho_embedding = spearmanr(got[:, 0], test_y[:, 0]).statistic
    assert rho_embedding > 0.8 and rho_embedding > rho_plain + 0.3
    # saved and loaded, it scores the same
    with_embedding.save(tmp_path / "s")
    again = load_student(tmp_path / "s")
    assert again.params["embedder"] == "minilm" and len(again.params["embed_scale"]) == 1
    assert np.allclose(again.predict(test_texts), got, atol=1e-5)


def test_inside_remembered_each_text_is_embedded_once_across_fits(monkeypatch):
    texts, y = _records(_TRAIN, 6)
    real = embed.Embedder._encode
    encoded: list[str] = []
    monkeypatch.setattr(embed.Embedder, "_encode", lambda self, cut, bs: encoded.extend(cut) or real(self, cut, bs))
    with remembered():
        for _ in range(3):  # as `mira train` fits folds and the kept student on the same labels
            make_student("hashed_linear", ["a01"], embedder="minilm").fit(texts, y, ["s"] * len(texts))
    assert sorted(encoded) == sorted(set(texts))
    embed.get_embedder("minilm").encode(texts[:2])  # outside: nothing is kept
    assert len(encoded) == len(set(texts)) + 2


def test_students_saved_without_the_option_keep_their_params():
    student = make_student("hashed_linear", ["a01"], structure=True)
    assert "embedder" not in student.params and "embed_scales" not in student.params

"""The generality check of discovered criteria (specificity.py), rule by rule, on small made-up groups.

The demo's own rubrics are re-checked against its records in test_demo_rubrics.py; here each rule is shown to fire on
the kind of text it exists for and to stay quiet on the general words a rubric needs.
"""

from __future__ import annotations

import pytest

from mira_select.specificity import GroupVocabulary, levels_problem

pytest.importorskip("wordfreq")

WORD_PROBLEM = ("Question: A trader buys stock at 40 dollars a share and sells the stock at 52. How much does the "
                "stock earn per share?\n<think>52 - 40 = 12</think>\nAnswer: 12")
OTHER_PROBLEMS = [f"Question: Tom has {n} apples and gives away {n // 2}. How many are left?\n<think>{n} - {n // 2} "
                  f"= {n - n // 2}</think>\nAnswer: {n - n // 2}" for n in range(20, 60)]


def gsm_vocabulary() -> GroupVocabulary:
    texts = [WORD_PROBLEM, *OTHER_PROBLEMS]
    judgments = {"r0": ["Accuracy The trace calculates the stock profit per share correctly",
                        "Clarity The steps are easy to follow"],
                 "r1": ["Clarity The steps are easy to follow and concise"],
                 "r2": ["Concision The steps are concise"]}
    judged = {"r0": ("gsm", WORD_PROBLEM), "r1": ("gsm", OTHER_PROBLEMS[0]), "r2": ("gsm", OTHER_PROBLEMS[1])}
    return GroupVocabulary.from_texts(texts, judgments, ["gsm"] * len(texts), judged)


def test_a_judged_records_own_subject_is_specific_and_evaluative_words_are_not():
    vocab = gsm_vocabulary()
    found = vocab.specific_terms("The trace accurately calculates the stock price changes and the final value")
    assert "stock" in found  # three times in the one record a judgment took it from
    general = "The steps are easy to follow, concise and every calculation is correct"
    assert vocab.specific_terms(general) == []


def test_numbers_and_versions_from_the_records_are_specific_but_the_scale_is_not():
    vocab = gsm_vocabulary()
    assert vocab.specific_terms("The answer is the expected output, which is 52.") == ["52"]
    assert vocab.specific_terms("A record scoring 10 has every step right; a 0 has none.") == []
    assert "8.5.1" in vocab.specific_terms("It lists the changes made in version 8.5.1 of the software.")


def docs_vocabulary(n_sources: int, elsewhere: int = 0) -> GroupVocabulary:
    """Docs of several sources; one source is about a web framework, its name in most of its records (and in
    ``elsewhere`` records of the next source)."""
    texts, sources = [], []
    for i in range(40):
        texts.append(f"Flask routing guide part {i}: register a view with the Flask app and return a response. "
                     "Flask handles the request.")
        sources.append("pkg_docs")
    for s in range(n_sources - 1):
        for i in range(40):
            aside = " Unlike Flask." if s == 0 and i < elsewhere else ""
            texts.append(f"Manual page {i} of tool {s}: options, examples and exit status of the command.{aside}")
            sources.append(f"other{s}")
    judgments = {"f0": ["Relevance It teaches Flask routing with a clear example"],
                 "f1": ["Usefulness A Flask developer learns how views respond"],
                 "m0": ["Clarity The options are explained with examples"]}
    judged = {"f0": ("pkg_docs", texts[0]), "f1": ("pkg_docs", texts[1]), "m0": ("other0", texts[40])}
    return GroupVocabulary.from_texts(texts, judgments, sources, judged)


def test_a_term_typical_of_one_source_is_specific():
    definition = "The record is relevant to learning Flask, with clear examples."
    assert "Flask" in docs_vocabulary(3).specific_terms(definition)
    assert docs_vocabulary(3).specific_terms("The record explains its options with clear examples.") == []
    # 40 of the 48 records holding it are one source's: that source's term among three sources...
    assert "Flask" in docs_vocabulary(3, elsewhere=8).specific_terms(definition)
    # ... but with two sources, where chance gives half, only a term of one source alone is
    assert "Flask" not in docs_vocabulary(2, elsewhere=8).specific_terms(definition)
    assert "Flask" in docs_vocabulary(2).specific_terms(definition)


def test_identifiers_from_part_of_the_records_stay_specific():
    texts = ["def wikipedia_search(q): ..."] * 3 + ["plain prose"] * 10
    vocab = GroupVocabulary.from_texts(texts)
    assert vocab.specific_terms("Calls wikipedia_search only when needed") == ["wikipedia_search"]


def test_levels_must_say_different_things():
    same = {"0": "The code is unclear.", "5": "The code is clear and tidy.", "10": "The code is clear and tidy!"}
    problem = levels_problem(same)
    assert problem is not None and "score_5" in problem and "score_10" in problem
    assert levels_problem({"0": "No step is shown.", "5": "Some steps are shown.", "10": "Every step is shown."}) is None


def test_a_middle_level_that_is_the_criterions_one_fault_is_mended():
    from mira_select.specificity import MIDDLE_LEVEL, mended_middle

    problems = GroupVocabulary.from_texts([]).criterion_problems  # levels and form; no records, so no terms

    repeated = {"name": "Step clarity", "definition": "Every step of the record is explained.",
                "score_0": "No step is explained.", "score_5": "Every step is explained.",
                "score_10": "Every step is explained."}
    assert mended_middle(repeated, problems) == {**repeated, "score_5": MIDDLE_LEVEL}
    scale = {**repeated, "score_5": "Not as clear as the record at 10."}  # describes the scale, not a record
    assert problems(scale) and mended_middle(scale, problems) == {**repeated, "score_5": MIDDLE_LEVEL}
    flat = {**repeated, "score_0": "Every step is explained."}  # the 0 and the 10 alike: nothing to mend
    assert mended_middle(flat, problems) is None
    copied = {**repeated, "definition": "Every … is explained."}  # a fault beside the middle
    assert mended_middle(copied, problems) is None


def test_masked_hides_what_only_part_of_the_records_are_about():
    vocab = gsm_vocabulary()
    shown = vocab.masked("The trace calculates the Stock profit per share of 52 dollars clearly")
    assert "stock" not in shown.lower() and "52" not in shown and shown.startswith("The trace calculates the …")
    assert vocab.masked("The steps are easy to follow and concise") == "The steps are easy to follow and concise"


def criterion(definition: str, low: str, mid: str, high: str, name: str = "Reasoning Steps") -> dict[str, str]:
    return {"name": name, "definition": definition, "score_0": low, "score_5": mid, "score_10": high}


GOOD = criterion("The reasoning shows each step needed to reach the answer.", "A record scoring 0 shows no step.",
                 "A record scoring 5 shows some steps and skips others.", "A record scoring 10 shows every step.")


def test_a_criterion_that_describes_the_scale_or_copies_the_mask_is_unusable():
    """What the embedded 1.5B wrote under v4 (qa_think co02, co03, th04, th01; text a04, a06), shortened."""
    from mira_select.specificity import MIDDLE_LEVEL, form_problems

    assert form_problems(GOOD) == []
    assert form_problems({**GOOD, "score_5": MIDDLE_LEVEL}) == []  # the mended middle is ours, not the teacher's
    parroted = criterion("The problem is solved step by step.", "A 0 is neither the 0 nor the 10.",
                         "A 5 is neither the 0 nor the 10.", "A 10 is the only valid score for this criterion.")
    assert [p.split(" ")[0] for p in form_problems(parroted)] == ["score_0", "score_5"]
    assert any("definition states a score" in p for p in form_problems(
        {**GOOD, "definition": "The combined score is 10 because the reasoning and the answer agree."}))
    compared = {**GOOD, "score_10": "Every step is shown, more than the answer provided at score 5.",
                "score_5": "Some steps, not as detailed as the 10-point version."}
    assert [p.split(" ")[0] for p in form_problems(compared)] == ["score_5", "score_10"]
    assert form_problems({**GOOD, "score_0": "Irrelevant to the topic, the 0th"})
    assert form_problems({**GOOD, "definition": "Understanding the structure of the … and its depth."})[0].startswith(
        'it contains "…"')
    assert form_problems({**GOOD, "score_0": "The steps are not well-组织ed."}) == [
        "it mixes scripts; write every sentence in one language"]
    assert form_problems({**GOOD, "definition": "It defines a function `f` with size `n + 1`."})[0].startswith(
        "it quotes code ('f', 'n + 1')")
    # numbers that are not scale points stay: a 10-line function, 5.5 points, "at 10%"
    assert form_problems({**GOOD, "score_10": "A record scoring 10 explains a 10-line function at 10% cost."}) == []


def test_a_definition_that_repeats_the_criterion_prompts_rules_is_unusable():
    """What the embedded 1.5B wrote for a qa_think cluster when discovery judged 48 records: the prompt's "never
    mention a topic, library, ..." rule came back as the criterion's definition."""
    from mira_select.specificity import echoed_instruction, form_problems

    answered_the_rule = {**GOOD, "definition": "The final answer provided by the user is accurate and does not contain "
                                               "any topic, library, product, file, person, number, or version from "
                                               "the examples."}
    problems = form_problems(answered_the_rule)
    assert len(problems) == 1 and problems[0].startswith('the definition repeats the instructions ("topic library')
    assert echoed_instruction(GOOD["definition"]) is None
    # a level that opens with the prompt's wording still describes a record: only the definition is held to this
    assert form_problems({**GOOD, "score_0": "A record scoring 0 on this criterion looks like a record with no "
                                             "steps at all."}) == []

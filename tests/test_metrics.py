"""The evaluation metrics on small hand-made cases whose figures are worked out by hand."""

from __future__ import annotations

import pytest

from backstory_tools.quality.metrics import (
    PRF,
    extraction_scores,
    f1,
    keyphrase_doc_scores,
    keyphrase_scores,
    ner_scores,
    normalize_phrase,
    page_score,
    related_scores,
    shingles,
    to_conll,
)

approx = pytest.approx


# --- extraction ------------------------------------------------------------------------------


def test_shingles_are_4_token_windows_with_case_kept():
    sh = shingles("The cat sat on the mat.")
    assert sh == {
        ("The", "cat", "sat", "on"): 1,
        ("cat", "sat", "on", "the"): 1,
        ("sat", "on", "the", "mat"): 1,
    }
    assert sum(shingles("one two three four").values()) == 1  # exactly n tokens: one shingle


def test_short_and_empty_texts():
    assert shingles("two words") == {("two", "words"): 1}
    assert shingles("") == {}
    assert shingles(" ,.; ") == {}
    # non-word characters split tokens: "don't" is two tokens
    assert shingles("don't stop me now") == {("don", "t", "stop", "me"): 1, ("t", "stop", "me", "now"): 1}


def test_page_score_counts_shingles_as_multisets():
    # truth "a b c d a b c d" has shingles abcd x2, bcda, cdab, dabc
    score = page_score("a b c d a b c d", "a b c d")
    assert (score.tp, score.fp, score.fn) == (1, 0, 4)
    assert score.precision == 1.0 and score.recall == approx(0.2)
    # a prediction repeating the truth twice: the extra copies are false positives
    score = page_score("a b c d", "a b c d. a b c d")
    assert (score.tp, score.fp, score.fn) == (1, 4, 0)
    assert score.precision == approx(0.2) and score.recall == 1.0


def test_case_matters_for_extraction():
    score = page_score("Alpha beta gamma delta", "alpha beta gamma delta")
    assert (score.tp, score.fp, score.fn) == (0, 1, 1)
    assert score.precision == 0.0 and score.recall == 0.0


def test_empty_prediction_is_left_out_of_precision_but_counts_zero_recall():
    score = page_score("w1 w2 w3 w4 w5", "")
    assert score.precision is None and score.recall == 0.0
    result = extraction_scores(
        [
            ("w1 w2 w3 w4 w5", "w1 w2 w3 w4"),  # P 1, R 1/2
            ("x1 x2 x3 x4 x5", ""),  # P left out, R 0
        ]
    )
    assert result.precision == approx(1.0)
    assert result.recall == approx(0.25)
    assert result.f1 == approx(2 * 1.0 * 0.25 / 1.25)  # F1 of the means = 0.4
    assert (result.pages, result.empty_predictions) == (2, 1)


def test_extraction_averages_pages_not_shingles():
    long_truth = " ".join(f"t{i}" for i in range(103))  # 100 shingles
    result = extraction_scores(
        [
            (long_truth, long_truth),  # P 1, R 1
            ("a b c d e", "a b c d x y z w"),  # 1 of 5 predicted right, 1 of 2 truth found
        ]
    )
    assert result.precision == approx((1.0 + 0.2) / 2)
    assert result.recall == approx((1.0 + 0.5) / 2)
    assert result.f1 == approx(f1(0.6, 0.75))
    # the mean of per-page F1 would be different: the figure must come from the means
    assert result.f1 != approx((1.0 + f1(0.2, 0.5)) / 2)


def test_empty_truth_has_no_recall_and_zero_precision():
    score = page_score("", "some extra words here")
    assert score.precision == 0.0 and score.recall is None
    assert extraction_scores([]).f1 == 0.0


# --- keyphrases ------------------------------------------------------------------------------


def test_normalize_phrase_lowercases_splits_and_stems():
    assert normalize_phrase("Oil-Spills") == "oil spill"
    assert normalize_phrase("oil spill") == normalize_phrase("OIL  spills")
    assert normalize_phrase("U.S. tanker") == "u s tanker"
    assert normalize_phrase(" -- ") == ""


def test_keyphrase_dedup_after_stemming_then_cut_at_k():
    gold = ["oil spill", "tanker", "alaska", "cleanup"]
    predicted = ["Oil spills", "oil-spill", "tankers", "ship", "alaska"]
    s = keyphrase_doc_scores(predicted, gold, k=3)
    # kept: oil spill, tanker, ship (the duplicate does not use a slot)
    assert s == PRF(approx(2 / 3), approx(2 / 4), approx(f1(2 / 3, 0.5)))


def test_keyphrase_precision_divides_by_predictions_kept():
    s = keyphrase_doc_scores(["alaska", "Alaska"], ["alaska", "oil spill"], k=10)
    assert s.precision == approx(1.0)  # one kept, one right: not 1/10
    assert s.recall == approx(0.5)
    assert keyphrase_doc_scores([], ["alaska"], k=10) == PRF(0.0, 0.0, 0.0)
    assert keyphrase_doc_scores(["alaska"], [], k=10) is None


def test_keyphrase_whole_phrase_match_only():
    s = keyphrase_doc_scores(["oil", "crude oil spill"], ["crude oil", "oil spill"], k=10)
    assert s.precision == 0.0 and s.recall == 0.0


def test_keyphrase_scores_average_per_document_f1():
    docs = [
        (["a", "b"], ["a", "b"]),  # P 1, R 1, F1 1
        (["a", "x", "y", "z"], ["a"]),  # P 1/4, R 1, F1 0.4
        (["q"], []),  # no gold: left out
    ]
    r = keyphrase_scores(docs, k=10)
    assert r.documents == 2
    assert r.precision == approx((1 + 0.25) / 2)
    assert r.recall == approx(1.0)
    assert r.f1 == approx((1 + 0.4) / 2)
    r5 = keyphrase_scores([(["x", "y", "z", "w", "v", "a"], ["a"])], k=5)
    assert r5.f1 == 0.0 and r5.k == 5


# --- NER -------------------------------------------------------------------------------------


def test_label_map():
    assert to_conll("PERSON") == "PER"
    assert to_conll("gpe") == "LOC"
    assert to_conll("FAC") == "LOC"
    assert to_conll("NORP") == "MISC"
    assert to_conll("DATE") is None
    assert to_conll("LOC") == "LOC"
    assert to_conll("SOMETHING") is None


def test_ner_exact_span_and_type():
    gold = [(0, 4, "PER"), (10, 16, "ORG"), (20, 26, "LOC"), (30, 35, "MISC")]
    predicted = [
        (0, 4, "PERSON"),  # right
        (10, 15, "ORG"),  # span off by one: fp + fn
        (20, 26, "ORG"),  # wrong type: fp ORG, fn LOC
        (30, 35, "NORP"),  # right MISC
        (40, 44, "DATE"),  # dropped
        (0, 4, "PERSON"),  # repeated: counted once
    ]
    r = ner_scores([(gold, predicted)])
    assert r.per_type["PER"] == PRF(1.0, 1.0, 1.0)
    assert r.per_type["ORG"] == PRF(0.0, 0.0, 0.0)
    assert r.per_type["LOC"] == PRF(0.0, 0.0, 0.0)
    assert r.per_type["MISC"] == PRF(1.0, 1.0, 1.0)
    # micro over PER/ORG/LOC only: tp 1, fp 2, fn 2
    assert r.micro == PRF(approx(1 / 3), approx(1 / 3), approx(1 / 3))
    assert (r.gold, r.predicted) == (4, 4)


def test_ner_micro_sums_counts_over_documents():
    docs = [
        ([(0, 3, "PER")], [(0, 3, "PERSON"), (5, 8, "GPE")]),  # tp1 fp1
        ([(0, 3, "LOC"), (5, 8, "LOC"), (9, 12, "ORG")], [(0, 3, "LOC")]),  # tp1 fn2
    ]
    r = ner_scores(docs)
    assert r.micro.precision == approx(2 / 3)
    assert r.micro.recall == approx(2 / 4)
    assert r.micro.f1 == approx(f1(2 / 3, 0.5))
    assert r.per_type["LOC"] == PRF(approx(1 / 2), approx(1 / 2), approx(1 / 2))
    assert r.documents == 2


# --- related ---------------------------------------------------------------------------------

EVENT = {"a1": "A", "a2": "A", "a3": "A", "b1": "B", "b2": "B", "c1": "C", "c2": "C"}
TOPIC = {"a1": 1, "a2": 1, "a3": 1, "b1": 1, "b2": 1, "c1": 2, "c2": 2}


def test_related_precision_and_hard_share():
    results = [
        ("a1", ["a1", "a2", "b1", "c1", "a3", "b2", "c2"]),  # self removed: a2 b1 c1 a3 b2
        ("c1", ["c2"]),  # only one returned
    ]
    r = related_scores(results, EVENT, TOPIC, k=5)
    assert r.p_at_k == approx((2 / 5 + 1 / 5) / 2)
    # a1 has 2 relevant: top 2 = a2, b1 -> 1/2 ; c1 has 1 relevant: top 1 = c2 -> 1
    assert r.p_at_r == approx((0.5 + 1.0) / 2)
    # hard: b1, b2 are same topic other event for a1 (2/5); c1 none
    assert r.hard_share == approx((2 / 5 + 0) / 2)
    assert (r.queries, r.empty_results) == (2, 0)


def test_related_empty_and_k():
    r = related_scores([("b1", [])], EVENT, TOPIC, k=5)
    assert (r.p_at_k, r.p_at_r, r.hard_share, r.empty_results) == (0.0, 0.0, 0.0, 1)
    r = related_scores([("b1", ["b2", "a1", "a2"])], EVENT, TOPIC, k=1)
    assert (r.p_at_k, r.p_at_r, r.hard_share) == (1.0, 1.0, 0.0)

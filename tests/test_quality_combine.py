"""The extractor-combination study (backstory_tools.quality.combine): its text measures, its
merging of paragraphs and its choice of settings on training folds only."""

from types import SimpleNamespace

from backstory_tools.quality import combine

STORY = [
    "The council voted on Tuesday to rebuild the old river bridge before the winter floods arrive.",
    "Engineers said the work would take eleven weeks and close the road to lorries in the meantime.",
    "Residents of both banks have asked for a ferry while the bridge is shut to all traffic.",
]


def _page(product, truth):
    text = "\n\n".join(product)
    return SimpleNamespace(out={"product": list(product)}, truth=truth, texts={"product": combine._Text(text)})


def test_holds_counts_shingles_of_long_paragraphs_and_whole_short_ones():
    text = combine._Text("\n\n".join(STORY) + "\n\nHostage swap")
    assert text.holds(STORY[1]) == 1.0
    assert text.holds("Something else entirely was said by the mayor of the town today.") == 0.0
    half = " ".join(STORY[0].split()[:8] + "the mayor of a far town spoke".split())
    assert 0.3 < text.holds(half) < 0.7
    assert text.holds("hostage swap") == 1.0  # under four tokens: the whole of it, normalised
    assert text.holds("Hostage talks") == 0.0


def test_combined_adds_candidates_in_place_and_drops_what_the_rule_drops():
    page = _page(STORY, "")
    cands = [(1, "A paragraph only another extractor keeps, between the first two of ours here.", 1.0, 0.0, 13),
             (3, "Share this story with your friends and family on every network you use.", 0.0, 0.0, 13)]
    add = combine._add_rule("first", 0.8, True, 5)
    text = combine._combined(page, add, lambda p, t: t == STORY[2], cands)
    assert text.split("\n\n") == [STORY[0], cands[0][1], STORY[1]]  # the one after the last kept is not "between"
    assert combine._combined(page, None, None, cands).split("\n\n") == STORY


def test_study_keeps_nothing_when_no_setting_gains_on_training_folds():
    truth = "\n\n".join(STORY)
    pages = [_page(STORY, truth) for _ in range(10)]
    fold = [i % combine._K for i in range(10)]
    settings = {"none": lambda i: truth, "drop last": lambda i: "\n\n".join(STORY[:2])}
    report = combine._study(pages, fold, settings)
    assert report["best_plain"] == ("none", 1.0)
    assert {f["chosen"] for f in report["per_fold"]} == {"none"}
    assert report["cross_validated"] == (1.0, 1.0, 1.0)


def test_study_scores_a_setting_on_the_folds_it_was_not_chosen_on():
    truth = "\n\n".join(STORY)
    pages = [_page(STORY, truth) for _ in range(10)]
    fold = [i % combine._K for i in range(10)]
    # "cut" helps on fold 0's pages only (there the product keeps a stray line): it is chosen on
    # every training set that holds them, and gains nothing on the folds held back there.
    product = {i: truth + ("\n\nSubscribe to our newsletter for the latest headlines" if fold[i] == 0 else "") for i in range(10)}
    settings = {"none": lambda i: product[i], "cut": lambda i: truth}
    report = combine._study(pages, fold, settings)
    chosen = [f["chosen"] for f in report["per_fold"]]
    assert chosen[0] == "none" and all(c == "cut" for c in chosen[1:])
    assert report["per_fold"][0]["held_back_gain"] == 0
    assert report["cross_validated"][0] < 1.0  # fold 0 held back keeps its stray line

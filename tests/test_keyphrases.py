"""Keyphrases with the real spaCy pipeline and the real ONNX embedder, on texts written here."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from backstory.embed import MiniLMEmbedder
from backstory.keyphrases import Candidate, KeyphraseExtractor, Weights, phrase_key, select_candidates
from backstory.nlp import load_nlp
from backstory.schemas import Keyphrase

TITLE = "Lakeport council approves light rail line despite cost worries"
STORY = "\n\n".join(
    [
        "The Lakeport City Council voted 7 to 2 on Tuesday to approve a $1.2 billion light rail "
        "line linking the downtown waterfront with the airport, ending a decade of debate over "
        "the city's traffic congestion.",
        "Mayor Dana Whitfield called the light rail line the largest public works project in the "
        "city's history. The new trains will carry about 40,000 riders a day, the transit "
        "authority estimates, and should cut commuting times on the crowded harbour highway.",
        "Opponents on the council warned that construction costs could climb, pointing to other "
        "light rail projects that ran years late. Councillor Omar Reyes said the city had not "
        "explained how it would pay for the trains once federal grants run out.",
        "Residents of the Eastside neighbourhood, where the rail line will run along an old "
        "freight corridor, asked for noise barriers and new bus connections. The transit authority "
        "said construction would begin next spring and the first trains would run in 2031.",
        "Business groups praised the vote. The chamber of commerce said the light rail line would "
        "bring investment to the waterfront and ease parking shortages downtown.",
    ]
)
DETERMINERS = {"the", "a", "an", "this", "that", "these", "those", "its", "their", "his", "her"}


@pytest.fixture(scope="module")
def nlp():
    return load_nlp()


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


@pytest.fixture(scope="module")
def extractor(embedder: MiniLMEmbedder) -> KeyphraseExtractor:
    return KeyphraseExtractor(embedder)


def texts(cands: list[Candidate]) -> list[str]:
    return [c.text for c in cands]


def test_extracts_the_topic_best_first(nlp, extractor: KeyphraseExtractor) -> None:
    found = extractor.extract(nlp(STORY), TITLE, top_n=10)
    phrases = [k.phrase for k in found]
    assert 5 <= len(found) <= 10
    assert all(isinstance(k, Keyphrase) for k in found)
    assert "light rail line" in phrases[:3], phrases
    assert {"traffic congestion", "Lakeport City Council"} & set(phrases), phrases
    scores = [k.score for k in found]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)
    # Real phrases only: no determiners or possessives, no dates or amounts, no repeats.
    for phrase in phrases:
        words = phrase.split()
        assert words[0].lower() not in DETERMINERS, phrase
        assert "'s" not in phrase and "’s" not in phrase, phrase
        assert not any(ch.isdigit() for ch in phrase), phrase
        assert "tuesday" not in phrase.lower(), phrase
    assert len({phrase_key(p) for p in phrases}) == len(phrases)
    # Common nouns are lower-cased, proper nouns keep their capitals.
    assert "light rail line" in phrases and "Light rail line" not in phrases


def test_top_n_is_a_prefix_and_doc_embedding_is_optional(nlp, extractor, embedder) -> None:
    doc = nlp(STORY)
    ten = extractor.extract(doc, TITLE, top_n=10)
    five = extractor.extract(doc, TITLE, top_n=5)
    assert five == ten[:5]
    given = extractor.extract(doc, TITLE, doc_embedding=embedder.embed_document(f"{TITLE}\n\n{STORY}"))
    assert given == ten


def test_a_title_free_call_and_texts_without_phrases(nlp, extractor) -> None:
    assert extractor.extract(nlp("Yes. And then? 42."), None) == []
    assert extractor.extract(nlp(""), None) == []
    found = extractor.extract(nlp(STORY), None, top_n=8)
    assert 5 <= len(found) <= 8


def test_candidates_are_noun_phrases(nlp, extractor: KeyphraseExtractor) -> None:
    doc = nlp(
        "The biggest oil spill in Alaska's history was caused by the 987-foot tanker Exxon Valdez "
        "on Friday, costing $2 billion. Fishermen said the spill ruined the salmon season."
    )
    found = texts(extractor.candidates(doc, "Tanker spills oil"))
    for expected in ("oil spill", "biggest oil spill", "Alaska", "history", "Exxon Valdez", "salmon season", "spill"):
        assert expected in found, (expected, found)
    assert any(t.startswith("987-foot tanker") for t in found), found
    for text in found:
        assert text.split()[0].lower() not in DETERMINERS, text
        assert "'s" not in text and "Friday" not in text and "billion" not in text, text
    # No verbs, prepositions or bare adjectives.
    assert not {"caused", "ruined", "biggest", "in", "costing"} & set(found)


def test_names_keep_their_words_and_lose_determiners(nlp, extractor: KeyphraseExtractor) -> None:
    doc = nlp("A reporter for The New York Times said many other people saw the new cars in New Mexico.")
    found = texts(extractor.candidates(doc))
    assert "New York Times" in found and "New Mexico" in found, found
    assert "cars" in found and "new cars" not in found and "people" not in found, found
    assert not [t for t in found if t.split()[0].lower() in DETERMINERS], found


def test_candidates_merge_spellings_and_count(nlp, extractor: KeyphraseExtractor) -> None:
    doc = nlp(
        "Regulators are looking at ad tech. Critics say adtech depends on cookies, and the growth "
        "of ad-tech worries them. One tornado hit the town; two tornadoes hit the county."
    )
    cands = {c.key: c for c in extractor.candidates(doc)}
    assert phrase_key("Ad Tech") == phrase_key("adtech") == phrase_key("ad-tech") == phrase_key("ad tech")
    ad = cands[phrase_key("adtech")]
    assert ad.count >= 3 and len(ad.forms) >= 2, ad
    assert phrase_key("tornadoes") in cands
    assert cands[phrase_key("tornado")].count == 2
    assert len(cands) == len({phrase_key(c.text) for c in cands.values()})


def test_position_and_title_features(nlp, extractor: KeyphraseExtractor) -> None:
    cands = {c.text: c for c in extractor.candidates(nlp(STORY), TITLE)}
    assert cands["light rail line"].first < 0.1 < 0.5 < cands["freight corridor"].first
    assert cands["light rail line"].in_title == 1.0
    assert cands["freight corridor"].in_title == 0.0
    assert cands["light rail line"].count == 3
    assert cands["rail line"].count == 4  # also counted inside "light rail line"


def test_similarity_comes_from_keybert(nlp, extractor: KeyphraseExtractor, embedder: MiniLMEmbedder,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    phrases = ["light rail line", "traffic congestion", "chamber of commerce"]
    doc_vec = embedder.embed_document(STORY)
    vectors = embedder.embed(phrases)
    calls: list[dict] = []
    scorer = extractor.keybert.extract_keywords

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return scorer(*args, **kwargs)

    monkeypatch.setattr(extractor.keybert, "extract_keywords", spy)
    sims = extractor._similarities(STORY, phrases, doc_vec, vectors)
    # KeyBERT does the scoring, once, over exactly our candidates.
    assert len(calls) == 1 and calls[0]["top_n"] == len(phrases)
    assert calls[0]["vectorizer"].vocabulary == phrases
    # Its scores are cosine similarities, computed here from the raw vectors (not assuming the
    # embedder normalises them), rounded as KeyBERT rounds (4 places).
    assert set(sims) == set(phrases)
    for phrase, vector in zip(phrases, vectors):
        cosine = float(vector @ doc_vec) / float(np.linalg.norm(vector) * np.linalg.norm(doc_vec))
        assert sims[phrase] == pytest.approx(cosine, abs=1e-3)


def test_overlap_penalty_spreads_the_list(nlp, embedder: MiniLMEmbedder) -> None:
    doc = nlp(STORY)
    plain = KeyphraseExtractor(embedder, weights=Weights(overlap=0.0)).extract(doc, TITLE)
    spread = KeyphraseExtractor(embedder, weights=Weights(overlap=1.0)).extract(doc, TITLE)

    def rail_phrases(found: list[Keyphrase]) -> int:
        return sum("rail" in k.phrase for k in found)

    assert rail_phrases(spread) < rail_phrases(plain)
    assert spread[0].phrase == plain[0].phrase


def test_the_same_article_gives_the_same_keyphrases(nlp, embedder: MiniLMEmbedder) -> None:
    # Candidates are embedded by embed_phrases, which bypasses the embedder's cache: nothing of
    # an earlier article carries over, and the document vector's dtype does not matter either.
    extractor = KeyphraseExtractor(embedder)
    doc = nlp(STORY)
    vec = embedder.embed_document(STORY)
    first = extractor.extract(doc, TITLE, doc_embedding=vec)
    assert extractor.extract(doc, TITLE, doc_embedding=vec) == first
    assert first == extractor.extract(doc, TITLE, doc_embedding=np.asarray(vec, dtype=np.float64))


def test_extractors_share_models_across_threads(nlp, embedder: MiniLMEmbedder) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from backstory import keyphrases

    stories = [STORY, STORY.replace("light rail", "tram"), STORY.replace("Lakeport", "Ridgeway")]
    docs = [nlp(s) for s in stories]
    expected = [KeyphraseExtractor(MiniLMEmbedder(cache_size=0)).extract(d, TITLE) for d in docs]
    keyphrases._stem.cache_clear()  # make the threads stem (and race) for real
    embedder.clear_cache()
    shared = KeyphraseExtractor(embedder)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, so shared state would show
    try:
        with ThreadPoolExecutor(max_workers=6) as pool:
            results = list(pool.map(lambda i: shared.extract(docs[i % 3], TITLE), range(12)))
    finally:
        sys.setswitchinterval(interval)
    for i, found in enumerate(results):
        assert [k.phrase for k in found] == [k.phrase for k in expected[i % 3]]
        assert [k.score for k in found] == pytest.approx([k.score for k in expected[i % 3]], abs=1e-3)


def test_candidates_need_only_the_tagger_and_skip_dates(nlp) -> None:
    # The spaCy process picks candidates before NER has run: they must not depend on it.
    text = (
        "The Lakeport City Council met on Tuesday, Sept. 26, and again last year in March to debate "
        "the light rail line; the salmon season opens next week."
    )
    tagged = nlp.make_doc(text)
    for name, component in nlp.pipeline:
        if name != "ner":
            tagged = component(tagged)
    assert not tagged.ents
    assert [c.text for c in select_candidates(tagged)] == [c.text for c in select_candidates(nlp(text))]
    found = {c.text.lower() for c in select_candidates(tagged)}
    assert "light rail line" in found and "salmon season" in found
    assert not {"tuesday", "sept", "march", "year", "week", "last year"} & found

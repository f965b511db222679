"""The slips a reader notices at once (issue 20), on a story written here like the one a new user
tried, and the hand-labelled modern news snippets as a regression set."""

from __future__ import annotations

import pytest
from backstory_tools.quality import snippets

from backstory.embed import MiniLMEmbedder
from backstory.entities import entity_spans, extract_entities
from backstory.generic_terms import is_generic_term
from backstory.keyphrases import KeyphraseExtractor, phrase_key
from backstory.nlp import load_nlp

TITLE = "OpenAI Considers Open-Sourcing Its Models in Industry Shift"
STORY = "\n\n".join(
    [
        TITLE,
        "OpenAI considers releasing the weights of some of its older AI models, CEO Sam Altman told "
        "reporters on Thursday, a reversal for a company that has kept its most capable systems closed "
        "since 2019.",
        'Sam Altman said the company had been "on the wrong side of history" on open models. The chief '
        "executive Sam Altman added that AI labs now compete with open rivals on price as much as on quality.",
        "The shift follows the rise of DeepSeek, the Chinese start-up whose open models matched American "
        "rivals at a fraction of the cost. DeepSeek released its reasoning model in January and DeepSeek "
        "raised no outside money, according to people familiar with the company.",
        "Meta has published its Llama models openly for two years, and Microsoft, OpenAI's largest "
        "investor, offers open models on its Azure cloud. Analysts said AI companies are under pressure "
        "to cut prices as GPU costs fall.",
        '"Open models are going to be part of the industry," said Ion Stoica, a professor at the '
        "University of California, Berkeley. Executive Sam Altman did not say when the first open model "
        "would ship.",
        "OpenAI was valued at $300 billion in its latest funding round, led by SoftBank. AI chips from "
        "Nvidia remain scarce, and each GPU costs tens of thousands of dollars. The CEO said AI would "
        "change how software is built.",
    ]
)


@pytest.fixture(scope="module")
def nlp():
    return load_nlp()


@pytest.fixture(scope="module")
def extractor() -> KeyphraseExtractor:
    return KeyphraseExtractor(MiniLMEmbedder())


def test_the_keyphrases_have_no_slips(nlp, extractor: KeyphraseExtractor) -> None:
    found = extractor.extract(nlp(STORY), TITLE, top_n=10)
    phrases = [k.phrase for k in found]
    assert len(phrases) == 10, phrases
    assert "Sam Altman" in phrases and "OpenAI" in phrases and "DeepSeek" in phrases, phrases
    # No title glued to a name, no headline piece, no clause fragment.
    lowered = [p.lower() for p in phrases]
    assert not [p for p in lowered if p.endswith("sam altman") and p != "sam altman"], phrases
    assert "industry shift" not in lowered, phrases
    assert not [p for p in lowered if p.split()[-1] in {"considers", "considers open-sourcing"}], phrases
    # One phrase per head: none ends another.
    words = [tuple(phrase_key(w) for w in p.split()) for p in phrases]
    for i, a in enumerate(words):
        for b in words[i + 1:]:
            short, long = sorted((a, b), key=len)
            assert long[len(long) - len(short):] != short, (a, b, phrases)


def test_keyphrase_mentions_are_offsets_into_the_text(nlp, extractor: KeyphraseExtractor) -> None:
    found = extractor.extract(nlp(STORY), TITLE, top_n=10)
    for kp in found:
        assert kp.mentions, kp
        starts = [m.start for m in kp.mentions]
        assert starts == sorted(set(starts))
        for m in kp.mentions:
            assert phrase_key(STORY[m.start:m.end]) == phrase_key(kp.phrase), (kp, STORY[m.start:m.end])
    altman = next(k for k in found if k.phrase == "Sam Altman")
    assert len(altman.mentions) == STORY.count("Sam Altman") == 4  # "CEO Sam Altman" and the rest
    # A merged spelling is a mention too: "open model" counts for "open models".
    opens = next(k for k in found if k.phrase == "open models")
    assert {STORY[m.start:m.end] for m in opens.mentions} >= {"open models", "open model", "Open models"}


def test_a_verb_the_tagger_took_for_a_noun_ends_no_phrase(nlp, extractor: KeyphraseExtractor) -> None:
    doc = nlp("Nvidia eyes the Chinese market again. Nvidia sold more chips in China than ever.")
    assert [t.tag_ for t in doc[:2]] == ["NNP", "NNS"]  # the misreading this rule is for
    found = [c.text for c in extractor.candidates(doc)]
    assert "Nvidia" in found and "chinese market" in found, found
    assert not [t for t in found if t.split()[-1] == "eyes"], found


def test_titles_before_names_are_their_own_phrases(nlp, extractor: KeyphraseExtractor) -> None:
    doc = nlp("Chief executive Sam Altman met CEO Satya Nadella. The tanker Exxon Valdez ran aground.")
    found = [c.text for c in extractor.candidates(doc)]
    for expected in ("Sam Altman", "Satya Nadella", "Exxon Valdez", "tanker", "chief executive"):
        assert expected in found, (expected, found)
    assert not [t for t in found if t.lower().endswith(("executive sam altman", "ceo satya nadella", "tanker exxon valdez"))], found


def test_the_entities_have_no_slips(nlp) -> None:
    entities = extract_entities(nlp(STORY))
    labels = {(e.name, e.label) for e in entities}
    names = {e.name for e in entities}
    assert not {"AI", "CEO", "GPU"} & names, labels
    assert ("DeepSeek", "ORG") in labels and ("OpenAI", "ORG") in labels, labels
    assert ("Sam Altman", "PERSON") in labels, labels
    assert TITLE not in names  # the headline is no organisation
    for e in entities:
        for m in e.mentions:
            assert not is_generic_term(STORY[m.start:m.end]), e


def test_a_product_stays_a_product_without_business_cues(nlp) -> None:
    text = "Reviewers liked the iPhone 16 Pro. The iPhone 16 Pro released in September sold well in Japan."
    spans = {(text[s:e], label) for s, e, label in entity_spans(nlp(text))}
    assert not [s for s in spans if s[0].startswith("iPhone") and s[1] == "ORG"], spans


SNIPPET_F1 = 0.85  # measured 0.868 (PER/ORG/LOC micro-F1) when written; docs/quality.md has the figures


def test_modern_news_snippets_regression(nlp) -> None:
    rows = snippets.load_snippets()
    assert len(rows) == 30
    for row in rows:
        assert snippets.gold_spans(row), row  # every labelled name is in its sentence
    result = snippets.score(lambda text: entity_spans(nlp(text)), rows)
    assert result.micro.f1 >= SNIPPET_F1, result
    # No generic acronym anywhere ("AI agents", "the CEO of Salesforce", "a single GPU").
    for row in rows:
        text = row["text"]
        assert not [text[s:e] for s, e, _ in entity_spans(nlp(text)) if is_generic_term(text[s:e])], text


def test_heading_lines_are_found_by_their_letters() -> None:
    from backstory.headings import caps_lines, heading_lines, title_lines

    text = (f"{TITLE}\nBy Priya Raman\nAI RACE HEATS UP\nOpenAI considers releasing its models.\n"
            "Markets, Money and the Fed")
    lines = [text[s:e] for s, e in heading_lines(text)]
    assert lines == [TITLE, "By Priya Raman", "AI RACE HEATS UP", "Markets, Money and the Fed"]
    assert [text[s:e] for s, e in caps_lines(text)] == ["AI RACE HEATS UP"]
    # Two capitalised words may be a name as well as a subheading: the entity repairs, which
    # re-case Title Case lines, leave them alone.
    assert [text[s:e] for s, e in title_lines(text)] == [TITLE, "Markets, Money and the Fed"]


def test_a_subheading_alone_gives_no_keyphrase(nlp, extractor: KeyphraseExtractor) -> None:
    text = ("Chip makers raised prices again this quarter.\n\nIndustry Shift\n\nCloud providers now "
            "design their own chips, and chip makers are losing their biggest customers.")
    found = [c.text for c in extractor.candidates(nlp(text))]
    assert "chip makers" in found, found  # the body's phrases stay
    assert not [t for t in found if t.lower() in {"industry shift", "shift"}], found


def test_an_apposition_that_names_someone_else_is_no_cue(nlp) -> None:
    text = ("Police detained the dissident Wang Donghai, the New York-based pressure group Human Rights in "
            "China said. Wang Donghai had been held before.")
    labels = {text[s:e]: label for s, e, label in entity_spans(nlp(text))}
    assert labels.get("Wang Donghai") == "PERSON", labels
    text = "Investors backed Mistral, the Paris start-up, again this year. Mistral said demand was strong."
    labels = {text[s:e]: label for s, e, label in entity_spans(nlp(text))}
    assert labels.get("Mistral") == "ORG", labels

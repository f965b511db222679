"""nlp.py + entities.py with the real spaCy model, on texts written here."""

from __future__ import annotations

import pytest

from backstory.entities import SHOWN_LABELS, entity_spans, extract_entities
from backstory.nlp import load_nlp
from backstory.schemas import Entity


@pytest.fixture(scope="module")
def nlp():
    return load_nlp()


def by_name(entities: list[Entity]) -> dict[str, Entity]:
    return {e.name: e for e in entities}


def assert_exact(doc, entities: list[Entity]) -> None:
    for ent in entities:
        assert ent.count == len(ent.mentions)
        for m in ent.mentions:
            mention = doc.text[m.start:m.end]
            assert mention == mention.strip() and mention
            assert not mention.lower().startswith("the ")
            assert not mention.endswith(("'s", "\u2019s"))


def test_pipeline_has_pos_tags_and_ner_without_the_parser(nlp) -> None:
    assert set(nlp.pipe_names) == {"tok2vec", "tagger", "ner"}
    assert nlp.max_length >= 1_000_000
    doc = nlp("Angela Merkel visited Paris on Monday.")
    assert [t.tag_ for t in doc] == ["NNP", "NNP", "VBD", "NNP", "IN", "NNP", "."]
    assert load_nlp() is nlp


def test_person_grouping_offsets_and_filters(nlp) -> None:
    text = (
        "Sam Altman, the chief executive of OpenAI, spoke in London on Tuesday. "
        "The company raised $6.6 billion last year, and 40 percent of it came from Microsoft. "
        "Altman said Microsoft's support had been essential. Later, Altman flew to Paris."
    )
    doc = nlp(text)
    entities = extract_entities(doc)
    named = by_name(entities)
    assert named["Sam Altman"].label == "PERSON"
    assert named["Sam Altman"].count == 3
    assert [text[m.start:m.end] for m in named["Sam Altman"].mentions] == ["Sam Altman", "Altman", "Altman"]
    microsoft = named["Microsoft"]
    assert [text[m.start:m.end] for m in microsoft.mentions] == ["Microsoft", "Microsoft"]  # possessive stripped
    assert entities[0].name == "Sam Altman"  # most mentions first
    labels = {e.label for e in entities}
    assert labels <= SHOWN_LABELS
    assert not labels & {"DATE", "MONEY", "PERCENT", "CARDINAL", "TIME", "ORDINAL", "QUANTITY"}
    assert not any("billion" in e.name or "Tuesday" in e.name for e in entities)
    assert_exact(doc, entities)


def test_the_fed_and_fed_are_one_group(nlp) -> None:
    text = (
        "The Federal Reserve held rates steady. Traders had expected the Fed to cut, "
        "but Fed officials said inflation was still too high. The Fed meets again in June."
    )
    doc = nlp(text)
    spans = [(s, e) for s, e, _ in entity_spans(doc)]
    fed = [text[s:e] for s, e in spans if text[s:e] == "Fed"]
    assert len(fed) == 3
    groups = [e for e in extract_entities(doc) if e.name == "Fed"]
    assert len(groups) == 1 and groups[0].count == 3
    assert_exact(doc, extract_entities(doc))


def test_all_caps_headline_and_dateline_are_recased_with_exact_offsets(nlp) -> None:
    text = (
        "SOCCER - ARSENAL SIGN BRAZILIAN STRIKER FROM PORTO\n"
        "LONDON 2024-05-14\n"
        "Arsenal have signed the Brazilian striker Gabriel Souza from Porto for a club record fee, "
        "the London club said on Tuesday. Souza, 24, scored 31 goals for Porto last season."
    )
    doc = nlp(text)
    spans = entity_spans(doc)
    found = {(text[s:e], label) for s, e, label in spans}
    assert ("LONDON", "GPE") in found
    # Re-cased, the club is not taken for a person (the small model misses it altogether: a known slip).
    assert ("ARSENAL", "PERSON") not in found
    assert any(text[s:e] == "PORTO" for s, e, _ in spans)
    for s, e, _ in spans:
        assert text[s:e].strip() == text[s:e]
    assert sorted(spans) == spans
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))


def _doc_with(nlp, text: str, ents: list[tuple[str, str, int]]):
    """A real Doc whose entities are set by hand (to test the corrections one by one)."""
    doc = nlp.make_doc(text)
    spans = []
    for phrase, label, nth in ents:
        start = -1
        for _ in range(nth + 1):
            start = text.index(phrase, start + 1)
        span = doc.char_span(start, start + len(phrase), label=label)
        assert span is not None, phrase
        spans.append(span)
    doc.ents = spans
    return doc


def test_country_named_as_person_or_org_becomes_a_place(nlp) -> None:
    text = "Officials from Belarus met envoys from Moldova and Rwandan diplomats in Vienna."
    doc = _doc_with(nlp, text, [("Belarus", "PERSON", 0), ("Moldova", "ORG", 0), ("Rwandan", "PERSON", 0)])
    labels = {text[s:e]: label for s, e, label in entity_spans(doc)}
    assert labels == {"Belarus": "GPE", "Moldova": "GPE", "Rwandan": "NORP"}


def test_one_label_per_name_and_missed_mentions_are_added(nlp) -> None:
    text = (
        "Lotte Group said on Monday it would sell its hotels. Lotte shares rose 4 percent. "
        "Analysts said Lotte had little choice. Lotte is based in Seoul."
    )
    doc = _doc_with(
        nlp, text, [("Lotte", "ORG", 1), ("Lotte", "PERSON", 2), ("Lotte", "ORG", 3), ("Seoul", "GPE", 0)]
    )
    spans = entity_spans(doc)
    lotte = [(s, label) for s, e, label in spans if text[s:e] == "Lotte"]
    assert {label for _, label in lotte} == {"ORG"}
    assert len(lotte) == 4  # the first mention, inside "Lotte Group", was not tagged: added


def test_surname_follows_the_full_name(nlp) -> None:
    text = "Wang Zhizhi scored 20 points. Wang later said the team was tired, and Wang rested."
    doc = _doc_with(nlp, text, [("Wang Zhizhi", "PERSON", 0), ("Wang", "ORG", 1), ("Wang", "ORG", 2)])
    entities = extract_entities(doc)
    assert len(entities) == 1
    assert entities[0].name == "Wang Zhizhi" and entities[0].label == "PERSON" and entities[0].count == 3


def test_sports_teams_named_after_places(nlp) -> None:
    text = (
        "BASEBALL - RESULTS\n"
        "CHICAGO 2024-05-14\n"
        "Results of games played on Tuesday in the league standings:\n"
        "Chicago beat Houston 5-3 in extra innings, and Boston drew with Toronto.\n"
        "Fans in Chicago celebrated the win, the coach said."
    )
    doc = _doc_with(
        nlp,
        text,
        [("CHICAGO", "GPE", 0), ("Chicago", "GPE", 0), ("Houston", "GPE", 0), ("Boston", "GPE", 0),
         ("Toronto", "GPE", 0), ("Chicago", "GPE", 1)],
    )
    labels = [(text[s:e], label, s) for s, e, label in entity_spans(doc)]
    assert ("CHICAGO", "GPE") == labels[0][:2]  # the dateline stays a place
    teams = {name: label for name, label, _ in labels[1:5]}
    assert teams == {"Chicago": "ORG", "Houston": "ORG", "Boston": "ORG", "Toronto": "ORG"}
    assert labels[-1][:2] == ("Chicago", "GPE")  # "Fans in Chicago": the city


def test_trimming_and_dashed_pairs(nlp) -> None:
    text = "Results: Romania - Cosmin Contra 2, the United States' envoy and J. Ratcliffe 63 met."
    doc = _doc_with(
        nlp, text, [("Romania - Cosmin Contra", "ORG", 0), ("the United States'", "GPE", 0), ("J. Ratcliffe 63", "PERSON", 0)]
    )
    got = [(text[s:e], label) for s, e, label in entity_spans(doc)]
    assert got == [("Romania", "GPE"), ("Cosmin Contra", "PERSON"), ("United States", "GPE"), ("J. Ratcliffe", "PERSON")]


def test_empty_and_entity_free_texts(nlp) -> None:
    assert extract_entities(nlp("")) == []
    assert extract_entities(nlp("it rained all day and nobody went out.")) == []
    assert entity_spans(nlp("THE END")) == []


def test_organisation_cue_and_common_words(nlp) -> None:
    text = (
        "Italian tyre giant Pirelli said on Friday it would build a plant in Brazil. "
        "Pirelli expects sales to rise. The plant will be next to the stadium, and Stadium traffic "
        "will be diverted, a stadium official said."
    )
    doc = _doc_with(nlp, text, [("Pirelli", "PERSON", 0), ("Pirelli", "PERSON", 1), ("Stadium", "PERSON", 0)])
    got = [(text[s:e], label) for s, e, label in entity_spans(doc)]
    assert got == [("Pirelli", "ORG"), ("Pirelli", "ORG")]


def test_dateline_place_alone_on_its_line(nlp) -> None:
    text = "BUCHAREST 2024-05-14\nThe government said on Tuesday that it would raise pensions."
    spans = entity_spans(nlp(text))
    assert (0, 9, "GPE") in spans


def test_place_cues(nlp) -> None:
    text = "Fighting was reported near Tavildara on Monday. Troops left the town of Garm, officials said."
    doc = _doc_with(nlp, text, [("Tavildara", "PERSON", 0), ("Garm", "ORG", 0)])
    assert [(text[s:e], label) for s, e, label in entity_spans(doc)] == [("Tavildara", "GPE"), ("Garm", "GPE")]


def test_an_amount_glued_to_a_name_is_trimmed(nlp) -> None:
    doc = nlp("The European Commission fined Apple 1.8 billion euros over its music streaming rules.")
    names = {e.name for e in extract_entities(doc)}
    assert "Apple" in names and not any("billion" in n for n in names)

"""The one "same entity" key and its two layers (grouping, the related index's stored keys)."""

from __future__ import annotations

import pytest

from backstory.entity_key import entity_key, grouping_key, index_key


@pytest.mark.parametrize(("name", "key"), [
    ("The  Fed's", "fed"),
    ("Fed", "fed"),
    ("a MacBook Pro", "a macbook pro"),  # an article's spans keep "a": so does the vote's key
    ("Martin Truex Jr.", "martin truex jr."),  # searched for again as written
    ("U.S.", "u.s."),
])
def test_entity_key(name: str, key: str) -> None:
    assert entity_key(name) == key


def test_grouping_also_folds_the_punctuation_inside_a_name() -> None:
    assert grouping_key("U.S.") == grouping_key("US") == "us"
    assert grouping_key("The O'Neill's") == grouping_key("ONeill") == "oneill"
    assert grouping_key("AT&T") == "at&t"
    assert grouping_key("a Police Department") != grouping_key("Police Department")


@pytest.mark.parametrize(("name", "key"), [
    # the keys stored with every story: changing one means bumping FEATURES_VERSION
    ("The Fed's", "fed"),
    ("an  Apple", "apple"),
    ("a MacBook Pro", "macbook pro"),
    ("U.S.", "u.s"),
    ("Martin Truex Jr.", "martin truex jr"),
    ("The A Team", "a team"),  # one article at most
    ('"Reid"', "reid"),
])
def test_index_key_keeps_the_stored_keys(name: str, key: str) -> None:
    assert index_key(name) == key

"""The numbers signal of the related ranking: counts and amounts two reports of one event share."""

from __future__ import annotations

import numpy as np
import pytest

from backstory import schemas
from backstory.archive.features import MAX_NUMBERS, compute_features, decode_features, numbers_in
from backstory.archive.related import RelatedIndex


def test_numbers_named_in_a_text() -> None:
    text = ("A magnitude 6.10 quake on Sept. 26, 2013 killed 1,200 people and 3 dogs; 45 were hurt, 12th of May "
            "aside. Costs reached $2.5 million, page 07, version 2.0.1, 45 again and 0.5 metres of water.")
    # years and days of dates are the dates' business; one digit alone tells nothing; each number once
    assert numbers_in(text) == ["6.1", "1200", "45", "2.5", "0.5"]
    assert numbers_in("No numbers here but 2013 and May 3.") == []
    many = " ".join(str(n) for n in range(10, 30))
    assert numbers_in(many) == [str(n) for n in range(10, 10 + MAX_NUMBERS)]


def test_features_stored_before_numbers_still_decode() -> None:
    import msgspec

    old = msgspec.msgpack.encode([[["quake", 1.0]], [], [], [2013], [9], [926], [3]])  # FEATURES_VERSION 2
    f = decode_features(old)
    assert f.years == [2013] and f.numbers == []


# Two earthquakes in the same valley, years apart, no date named: the same words, the same places.
ENTS = [("Veldra", "GPE", 2), ("Orsk valley", "LOC", 1), ("Mara Quist", "PERSON", 1)]
QUAKE = ("Strong earthquake hits Veldra",
         "A magnitude 6.1 earthquake shook Veldra and the Orsk valley, killing 37 people and leaving 1,200 homeless, "
         "emergency chief Mara Quist said. Rescuers searched collapsed houses through the night.")
QUAKE_SAME = ("Veldra mourns earthquake dead",
              "Funerals began in Veldra for the 37 people killed by the magnitude 6.1 earthquake in the Orsk valley. "
              "Mara Quist said shelters now house 1,200 homeless.")
QUAKE_OTHER = ("Earthquake in Veldra",
               "A magnitude 5.4 earthquake shook Veldra in the Orsk valley, killing 12 people and leaving 300 homeless, "
               "Mara Quist said.")
FILLER = [("Harbour fire in Penrow", "Fire destroyed a warehouse in the Penrow harbour; nobody was hurt.", []),
          ("Bakery wins award", "A small bakery in Tessel won the national sourdough award for its rye loaf.", []),
          ("Council votes on buses", "The Lanmoor council voted to add night buses on four routes.", [])]


def _features(story: tuple) -> object:
    title, text, ents = story
    return compute_features(title, text, [schemas.Entity(name=n, label=lab, count=c, mentions=[]) for n, lab, c in ents], [])


def test_shared_numbers_keep_the_ranking_on_the_event(monkeypatch: pytest.MonkeyPatch) -> None:
    """The other quake shares almost every word with the query and ranks first without the numbers
    signal; the report naming the same toll, magnitude and count of homeless ranks first with it."""
    import backstory.archive.related as related

    docs = {"q": _features((*QUAKE, ENTS)), "same": _features((*QUAKE_SAME, ENTS)), "other": _features((*QUAKE_OTHER, ENTS))}
    docs |= {f"f{i}": _features(s) for i, s in enumerate(FILLER)}
    assert docs["q"].numbers == ["6.1", "37", "1200"] and docs["other"].numbers == ["5.4", "12", "300"]
    assert not docs["q"].years and not docs["q"].days  # the dates signal has nothing to go on
    index = RelatedIndex()
    for key, f in docs.items():
        index.add(key, f, None, None)

    def ranking() -> list[str]:
        return [h.story_id for h in index.query(docs["q"], None, exclude_id="q", limit=2,
                                                features_of=lambda ids: [docs[i] for i in ids])]

    assert ranking() == ["same", "other"]
    cand = np.asarray([index.slot_of["same"], index.slot_of["other"], index.slot_of["f0"]])
    gain = index._numbers(cand, docs["q"]).tolist()
    assert gain[0] == pytest.approx(related.NUMBER_AGREE * related.NUMBERS_COUNTED) and gain[1:] == [0.0, 0.0]
    monkeypatch.setattr(related, "NUMBER_AGREE", 0.0)
    assert ranking() == ["other", "same"]

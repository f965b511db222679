"""duplicates.py by itself: the fingerprints an archive stores (so they must not change between
versions: a story stored last year is matched against one analysed today) and the one rule that
says when two texts are one story. Expected values are worked out here from the definitions — a
plain loop over the documented SimHash, Jaccard sets written by hand — not with the code under test."""

from __future__ import annotations

import hashlib
import re

import pytest

from backstory.duplicates import (
    DUPLICATE_JACCARD,
    SIMHASH_MIN_SHINGLES,
    content_hash,
    is_copy,
    shingle_jaccard,
    simhash,
    simhash_bands,
    simhash_usable,
    to_signed64,
)

RIVER = (
    "The river Vell burst its banks in Lorrington on Tuesday night after three days of rain, flooding "
    "the old market square and forcing two hundred families from their homes."
)


def reference_simhash(text: str) -> int:
    """The documented SimHash, one bit at a time: word 3-shingles of the lower-cased text (the whole
    text when it has fewer than three words), each hashed to 64 bits (BLAKE2b, 8 bytes, little
    endian); bit i is set when more shingles have it set than not; the result as a signed int64."""
    words = re.findall(r"\w+", text.lower())
    if len(words) >= 3:
        shingles = {" ".join(words[i:i + 3]) for i in range(len(words) - 2)}
    else:
        shingles = {" ".join(words)} if words else set()
    votes = [0] * 64
    for shingle in shingles:
        h = int.from_bytes(hashlib.blake2b(shingle.encode("utf-8"), digest_size=8).digest(), "little")
        for bit in range(64):
            votes[bit] += 1 if (h >> bit) & 1 else -1
    value = sum(1 << bit for bit in range(64) if votes[bit] > 0)
    return value - (1 << 64) if value >= 1 << 63 else value


@pytest.mark.parametrize("text", [
    RIVER,
    RIVER + " The water fell on Thursday.",  # an even number of shingles: ties leave their bit clear
    "Flood warning",  # fewer than three words: the words themselves are the one shingle
    "Flood",
    "a b c",
    "Straße STRASSE straße",  # lower case, not upper case: "ß" stays "ß"
])
def test_simhash_is_the_documented_fingerprint(text: str) -> None:
    assert simhash(text) == reference_simhash(text)


def test_a_text_without_words_has_the_empty_fingerprint() -> None:
    assert simhash("") == 0 and simhash(" ,.; !") == 0


def test_the_content_hash_ignores_only_how_white_space_is_laid_out() -> None:
    expected = hashlib.sha256(b"High water at noon.").hexdigest()
    assert content_hash("High  water\n at\tnoon. ") == expected
    assert content_hash("High water at noon!") != expected


@pytest.mark.parametrize(("a", "b", "jaccard"), [
    ("a b c d", "a b c e", 1 / 3),  # {abc, bcd} and {abc, bce}
    ("a b c d e", "a b c d e f", 3 / 4),  # {abc, bcd, cde} inside {abc, bcd, cde, def}
    ("A B C", "a b c", 1.0),  # case does not count
    ("flood warning", "flood warning", 1.0),
    ("flood warning", "storm warning", 0.0),  # two words: one shingle each, not the same one
    ("", "a b c", 0.0),  # nothing in common with an empty text
    ("", "", 1.0),  # two empty texts are the same
])
def test_shingle_jaccard(a: str, b: str, jaccard: float) -> None:
    assert shingle_jaccard(a, b) == pytest.approx(jaccard)


def test_a_copy_shares_at_least_the_threshold_of_its_shingles() -> None:
    assert DUPLICATE_JACCARD == 0.8
    words = [f"w{i}" for i in range(7)]
    base, longer = " ".join(words[:6]), " ".join(words)  # 4 shingles inside 5: exactly 0.8
    assert is_copy(base, longer)
    assert not is_copy(" ".join(words[:5]), longer)  # 3 inside 5: 0.6


def test_simhash_needs_enough_words() -> None:
    # SIMHASH_MIN_SHINGLES 3-shingles need two words more than that
    assert SIMHASH_MIN_SHINGLES == 24
    assert simhash_usable(" ".join(["word"] * 26))
    assert not simhash_usable(" ".join(["word"] * 25))


def test_the_bands_are_the_four_16_bit_quarters() -> None:
    assert simhash_bands(0x1234_5678_9ABC_DEF0) == (0xDEF0, 0x9ABC, 0x5678, 0x1234)
    # a stored (signed) value has the bands of its unsigned 64 bits
    assert simhash_bands(to_signed64(0xFFFF_0000_0000_0001)) == (0x0001, 0, 0, 0xFFFF)


def test_to_signed64_wraps_at_the_sign_bit() -> None:
    assert to_signed64((1 << 63) - 1) == (1 << 63) - 1
    assert to_signed64(1 << 63) == -(1 << 63)
    assert to_signed64((1 << 64) - 1) == -1
    assert to_signed64(1 << 64) == 0


def test_popcount64_counts_the_set_bits_with_numpys_own_count_and_without_it(monkeypatch):
    import numpy as np

    from backstory.duplicates import popcount64

    values = np.array([0, 1, 0xFF, 2**63, 2**64 - 1, 0x0123456789ABCDEF], dtype=np.uint64)
    expected = [0, 1, 8, 1, 64, 32]  # counted by hand: 0x0123456789ABCDEF has 0+1+1+2+1+2+2+3+1+2+2+3+2+3+3+4
    assert popcount64(values).tolist() == expected
    monkeypatch.delattr(np, "bitwise_count", raising=False)  # numpy < 2.0 has no bitwise_count
    assert popcount64(values).tolist() == expected

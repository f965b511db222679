"""Duplicate detection: the text fingerprints (content hash, 64-bit SimHash of word 3-shingles)
and the one rule that says when two texts are one story (:func:`is_copy`)."""

from __future__ import annotations

import hashlib
import re

import numpy as np

# The one rule: two texts are one story when their SimHashes are at most this many bits apart and
# they share DUPLICATE_JACCARD of their word 3-shingles (a syndicated copy with a changed line or
# byline). Distinct reports of one event share far fewer shingles; see docs/benchmarks.md.
SIMHASH_CANDIDATE_DISTANCE = 10
DUPLICATE_JACCARD = 0.8
# Texts with fewer word shingles than this are too short for a trustworthy SimHash match.
SIMHASH_MIN_SHINGLES = 24

_WORD = re.compile(r"\w+", re.UNICODE)
_MASK64 = (1 << 64) - 1


def content_hash(text: str) -> str:
    """SHA-256 of the whitespace-normalised text (exact-duplicate check)."""
    return hashlib.sha256(" ".join(text.split()).encode("utf-8")).hexdigest()


def to_signed64(value: int) -> int:
    value &= _MASK64
    return value - (1 << 64) if value >= 1 << 63 else value


def _shingles(text: str) -> list[str]:
    words = _WORD.findall(text.lower())
    if len(words) < 3:
        return [" ".join(words)] if words else []
    return [" ".join(words[i : i + 3]) for i in range(len(words) - 2)]


def simhash(text: str) -> int:
    """64-bit SimHash of word 3-shingles, as a signed int64 (fits an SQLite INTEGER)."""
    shingles = set(_shingles(text))
    if not shingles:
        return 0
    hashes = np.fromiter(
        (int.from_bytes(hashlib.blake2b(s.encode("utf-8"), digest_size=8).digest(), "little") for s in shingles),
        dtype=np.uint64, count=len(shingles),
    )
    bits = np.unpackbits(hashes.view(np.uint8).reshape(-1, 8), axis=1, bitorder="little")  # (n, 64), bit i = 2**i
    votes = 2 * bits.sum(axis=0, dtype=np.int64) - len(shingles)
    value = 0
    for bit in np.flatnonzero(votes > 0).tolist():
        value |= 1 << bit
    return to_signed64(value)


def shingle_jaccard(a: str, b: str) -> float:
    """Jaccard overlap of the two texts' word 3-shingle sets."""
    sa, sb = set(_shingles(a)), set(_shingles(b))
    return len(sa & sb) / len(sa | sb) if sa or sb else 1.0


def simhash_usable(text: str) -> bool:
    """True when the text is long enough for SimHash near-duplicate matching."""
    return len(_WORD.findall(text)) >= SIMHASH_MIN_SHINGLES + 2


def hamming(a: int, b: int) -> int:
    return ((a ^ b) & _MASK64).bit_count()


def simhash_bands(value: int) -> tuple[int, int, int, int]:
    """The four 16-bit bands: two hashes within 3 bits share at least one band exactly."""
    v = value & _MASK64
    return (v & 0xFFFF, (v >> 16) & 0xFFFF, (v >> 32) & 0xFFFF, (v >> 48) & 0xFFFF)


def is_copy(text: str, other: str) -> bool:
    """Whether two texts whose SimHashes are candidates (within SIMHASH_CANDIDATE_DISTANCE) are one story."""
    return shingle_jaccard(text, other) >= DUPLICATE_JACCARD


_POP8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def popcount64(x: np.ndarray) -> np.ndarray:
    """Set bits of each uint64 (the Hamming distances of XORed SimHashes, many at once)."""
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(x)
    return _POP8[x.view(np.uint8).reshape(-1, 8)].sum(axis=1)

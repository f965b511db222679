"""What the related-story index keeps of one story: its channel features, computed once.

:func:`compute_features` turns a story's title, text, entities and keyphrases into
:class:`Features`: the content words (lower-cased, stop words dropped, sublinear tf), the
entities (label weight x log count, keyed by :func:`backstory.entity_key.index_key`), the
keyphrases (score), the dates it names (years, months, calendar days, weekdays) and the
numbers (counts, amounts: :func:`numbers_in`). Backends
persist them (:func:`encode_features` / :func:`decode_features`) so that start-up needs no NLP;
bump :data:`FEATURES_VERSION` whenever the result of :func:`compute_features` changes, and stored
features are recomputed. The index that ranks stories by them is
:mod:`backstory.archive.related`; :func:`year_mask`, :func:`calendar_mask` and :func:`day_row`
are the compact forms of the dates it stores and compares, :func:`number_row` that of the numbers.
"""

from __future__ import annotations

import math
import re
import zlib
from collections import Counter
from typing import Iterable, Sequence

import msgspec
import numpy as np

from ..entity_key import index_key

FEATURES_VERSION = 3  # bump when compute_features changes: stored features are then recomputed
MAX_TERMS = 128         # content words kept per story (most frequent first)

ENTITY_LABEL_WEIGHT = {
    "PERSON": 1.0, "PER": 1.0, "ORG": 1.0, "GPE": 1.0, "LOC": 1.0, "FAC": 0.8,
    "NORP": 0.4, "EVENT": 0.8, "PRODUCT": 0.6, "WORK_OF_ART": 0.6, "LAW": 0.6, "MISC": 0.5,
}

_OWN_STOPWORDS = frozenset(
    """also according said says told new year years time week day mr mrs ms just like get gets got""".split()
)


def _stopwords() -> frozenset[str]:
    """scikit-learn's English stop words (it comes with KeyBERT) plus a few of news' own.

    The list is read from its module file, without importing scikit-learn: that import is slow,
    and a bulk import or a tool opening the archive needs nothing else from it."""
    import importlib.util
    from pathlib import Path

    words = None
    spec = importlib.util.find_spec("sklearn")
    if spec is not None and spec.origin:
        path = Path(spec.origin).parent / "feature_extraction" / "_stop_words.py"
        file_spec = importlib.util.spec_from_file_location("backstory_stop_words", path)
        if file_spec is not None and file_spec.loader is not None and path.is_file():
            module = importlib.util.module_from_spec(file_spec)
            file_spec.loader.exec_module(module)
            words = getattr(module, "ENGLISH_STOP_WORDS", None)
    if not words:  # laid out differently: the public name
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS as words
    return frozenset(words) | _OWN_STOPWORDS


STOPWORDS = _stopwords()
CAPS_WEIGHT = 1.0  # weight of words written capitalised mid-sentence: more ranked worse with the feedback pass
_TOKEN = re.compile(r"[^\W_][^\W_]+", re.UNICODE)
_SENTENCE_START = re.compile(r"(^|[.!?:;\"“”'‘’(\[\n]\s*|^\s*)$")
_MONTHS = "January February March April May June July August September October November December".split()
_MONTH_NO = {m[:3]: i + 1 for i, m in enumerate(_MONTHS)}
_WEEKDAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
# a year: 1950-2099 standing alone ("2013-09-26" names one; "12.2013", "2013.5", "2013th" do not)
_YEAR = re.compile(r"(?<![\w.,])(19[5-9]\d|20\d\d)(?!\w|[.,]\d)")
# a month: its name, an abbreviation followed by "." or a number, "May" next to a number
_MONTH_RE = r"(?:January|February|March|April|June|July|August|September|October|November|December)\b" \
            r"|(?:Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept?|Oct|Nov|Dec)(?=\.|\s*\d)|May(?=\s*\d)|(?<=\d\s)May\b"
_MONTH = re.compile(rf"\b(?:{_MONTH_RE})")
_MONTH_DAY = re.compile(rf"\b({_MONTH_RE})\.?\s*(\d{{1,2}})(?!\d)")                         # Sept. 26
_DAY_MONTH = re.compile(rf"(?<!\d)(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({_MONTH_RE})")   # 26th of September
_WEEKDAY = re.compile(r"\b(Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)\b")
MAX_DAYS = 4  # calendar days kept per story (first named first)
# a number: "1,200", "6.1", "45" (not part of a word, a version "2.0.1" or a date "12.2013")
_NUMBER = re.compile(r"(?<![\w.,])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?!\w|[.,]\d)")
MAX_NUMBERS = 8  # numbers kept per story (first named first)


def tokenize(text: str) -> list[str]:
    """Lower-case content words (2+ letters or digits, stop words dropped)."""
    return [t for t, _cap in _tokens(text)]


def _tokens(text: str) -> list[tuple[str, bool]]:
    out = []
    for m in _TOKEN.finditer(text):
        word = m.group(0)
        low = word.lower()
        if low in STOPWORDS:
            continue
        cap = word[0].isupper() and not _SENTENCE_START.search(text[max(0, m.start() - 3) : m.start()])
        out.append((low, cap))
    return out


def dates_in(text: str) -> tuple[list[int], list[int], list[int], list[int]]:
    """Years, months (1-12), calendar days (month x 100 + day, the first ``MAX_DAYS`` named) and
    weekdays (0 = Monday) that a text names."""
    years = sorted({int(y) for y in _YEAR.findall(text)})
    months = sorted({_MONTH_NO[m[:3]] for m in _MONTH.findall(text)})
    found = [(m.start(), _MONTH_NO[m.group(1)[:3]] * 100 + int(m.group(2))) for m in _MONTH_DAY.finditer(text)]
    found += [(m.start(), _MONTH_NO[m.group(2)[:3]] * 100 + int(m.group(1))) for m in _DAY_MONTH.finditer(text)]
    days: list[int] = []
    for _, code in sorted(found):
        if 1 <= code % 100 <= 31 and code not in days:
            days.append(code)
    weekdays = sorted({_WEEKDAYS.index(w) for w in _WEEKDAY.findall(text)})
    return years, months, sorted(days[:MAX_DAYS]), weekdays


def numbers_in(text: str) -> list[str]:
    """The counts and amounts a text names, first named first (at most ``MAX_NUMBERS``): numbers of
    two digits or more, or with decimals ("1,200" = "1200", "6.10" = "6.1"), that are not a year
    nor the day of a date. Two reports of one event share them (the toll, the magnitude, the sum);
    two events of the same kind rarely do."""
    taken = [m.span() for rx in (_YEAR, _MONTH_DAY, _DAY_MONTH) for m in rx.finditer(text)]
    out: list[str] = []
    for m in _NUMBER.finditer(text):
        if any(a <= m.start() < b for a, b in taken):
            continue
        whole, frac = m.group(1).replace(",", ""), (m.group(2) or "").rstrip("0").rstrip(".")
        value = (whole.lstrip("0") or "0") + frac
        if (len(whole.lstrip("0")) >= 2 or frac) and value not in out:
            out.append(value)
            if len(out) == MAX_NUMBERS:
                break
    return out


class Features(msgspec.Struct, array_like=True):
    """What the index keeps of one story (also persisted by backends so start-up needs no NLP)."""

    terms: list[tuple[str, float]]            # word -> sublinear tf
    ents: list[tuple[str, float, str]]        # key -> weight, display name
    kps: list[tuple[str, float, str]]         # key -> weight, display phrase
    years: list[int] = []                     # dates named (see dates_in)
    months: list[int] = []
    days: list[int] = []
    weekdays: list[int] = []
    numbers: list[str] = []                   # counts and amounts named (see numbers_in)


_features_encoder = msgspec.msgpack.Encoder()
_features_decoder = msgspec.msgpack.Decoder(Features)


def encode_features(f: Features) -> bytes:
    return _features_encoder.encode(f)


def decode_features(data: bytes) -> Features:
    return _features_decoder.decode(data)


def compute_features(title: str | None, text: str, entities: Sequence, keyphrases: Sequence) -> Features:
    """Channel features of a story from its title, text, entities and keyphrases."""
    toks = _tokens(text) + _tokens(title or "")
    counts = Counter(t for t, _ in toks)
    caps = Counter(t for t, cap in toks if cap)
    weighted = [
        (t, (1.0 + math.log(c)) * (CAPS_WEIGHT if 2 * caps[t] >= c else 1.0)) for t, c in counts.most_common(MAX_TERMS)
    ]
    terms = weighted

    ents: dict[str, list] = {}
    for e in entities:
        w = ENTITY_LABEL_WEIGHT.get(e.label)
        if w is None:
            continue
        key = index_key(e.name)
        if len(key) < 2:
            continue
        weight = w * (1.0 + math.log(max(1, e.count)))
        slot = ents.setdefault(key, [0.0, e.name, 0.0])
        slot[0] = max(slot[0], weight)
        if weight > slot[2]:
            slot[1], slot[2] = e.name, weight
        if e.label in ("PERSON", "PER"):
            parts = key.split()
            if len(parts) > 1:  # "Tara Reid" also matches a later bare "Reid"
                last = ents.setdefault(parts[-1], [0.0, e.name, 0.0])
                last[0] = max(last[0], weight * 0.7)
    ent_list = [(k, v[0], v[1]) for k, v in ents.items()]

    kps: dict[str, tuple[float, str]] = {}
    for kp in keyphrases:
        key = " ".join(tokenize(kp.phrase))
        if key and (key not in kps or kp.score > kps[key][0]):
            kps[key] = (max(float(kp.score), 0.05), kp.phrase)
    kp_list = [(k, w, name) for k, (w, name) in kps.items()]
    whole = f"{title or ''}\n{text}"
    years, months, days, weekdays = dates_in(whole)
    return Features(terms=terms, ents=ent_list, kps=kp_list, years=years, months=months, days=days, weekdays=weekdays,
                    numbers=numbers_in(whole))


def year_mask(years: Iterable[int]) -> np.ndarray:
    """Years as the index stores them: bits of a 128-year ring, 1950-2077 a bit each (2078 shares 1950's)."""
    bits = 0
    for y in years:
        bits |= 1 << (y % 128)
    return np.array([bits & 0xFFFF_FFFF_FFFF_FFFF, bits >> 64], dtype=np.uint64)


def calendar_mask(f: Features) -> int:
    """Months (bits 0-11) and weekdays (bits 16-22) as one integer, as the index stores them."""
    return (sum(1 << (m - 1) for m in set(f.months) if 1 <= m <= 12)
            | sum(1 << (16 + w) for w in set(f.weekdays) if 0 <= w <= 6))


def day_row(days: Sequence[int]) -> np.ndarray:
    """The first ``MAX_DAYS`` calendar days, zero-padded, as the index stores them."""
    row = np.zeros(MAX_DAYS, dtype=np.int16)
    row[: min(len(days), MAX_DAYS)] = days[:MAX_DAYS]
    return row


def number_row(numbers: Sequence[str]) -> np.ndarray:
    """The first ``MAX_NUMBERS`` numbers as the index stores them: non-zero 64-bit codes, zero-padded."""
    row = np.zeros(MAX_NUMBERS, dtype=np.int64)
    for i, value in enumerate(numbers[:MAX_NUMBERS]):
        row[i] = (zlib.crc32(value.encode("ascii", "replace")) << 1) | 1  # odd: never the padding
    return row


def quantize(vec: np.ndarray) -> np.ndarray:
    """An embedding as the index stores it: unit length, int8 (x 127)."""
    norm = float(np.linalg.norm(vec))
    if norm > 0:
        vec = vec / norm
    return np.clip(np.rint(vec * 127.0), -127, 127).astype(np.int8)

"""Label corrections on top of spaCy's small English model, for an article's repaired mentions.

- Country names are places; in sports stories a city, county or state used as a team (in a
  results table, before a score, next to "beat"/"against") is an organisation (:func:`relabel`,
  :func:`split_dashed`, :func:`result_teams`).
- One label per name in an article (majority of its mentions, words around a mention that only
  fit an organisation or a place; a surname follows its full name), and mentions spaCy missed of
  a name it found elsewhere are added (:func:`consistent`). Names are compared by
  :func:`backstory.entity_key.entity_key`.
"""

from __future__ import annotations

import bisect
import re
from collections import Counter, defaultdict

from .entity_key import entity_key
from .gazetteer import COUNTRY_PERSON_NAMES, Gazetteer, gazetteer

__all__ = ["consistent", "is_sports", "relabel", "result_teams", "split_dashed"]

_PLACE = {"GPE", "LOC"}

_SPORT_WORDS = re.compile(
    r"\b(?:soccer|football|cricket|baseball|basketball|tennis|golf|rugby|hockey|league|innings|wickets?|"
    r"goals?|scored|striker|midfielder|pitcher|homer|quarterback|touchdown|halftime|half-time|"
    r"championship|tournament|(?:semi-?|quarter-?)?finals?|cup|captain|header|corners|matches|standings|coach|"
    r"draw|drew|beat|beats)\b",
    re.I,
)
_TEAM_AFTER = re.compile(r"^\s*(?:\d+\b|[,;]?\s*(?:beat|beats|drew|draw|lost|won|win|wins|lead|led|trail|v|vs)\b)")
_TEAM_BEFORE = re.compile(r"\b(?:against|beat|beats|beating|v|vs|versus|to|with|over|and|,)\s*$", re.I)
_DATELINE = re.compile(r"^\s*(?:\d{4}-\d{2}-\d{2}|\(\w+\))")


def is_sports(text: str) -> bool:
    sample = text[:6000]
    return len(set(m.group(0).lower() for m in _SPORT_WORDS.finditer(sample))) >= 3


def _demonym(word: str, gaz: Gazetteer) -> bool:
    """"Rwandan", "Tajik", "Briton": a people named after a country (spaCy often says PERSON)."""
    if word in gaz.countries or not re.search(r"(?:an|ans|ese|ish|is|ic|ik|iks|on|ons|s|i)$", word):
        return False
    stem = word[: max(4, len(word) - 3)]
    return any(c.startswith(stem) for c in gaz.countries)


def split_dashed(text: str, spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """"Romania - Cosmin Contra" is two entities (results lists put a country before a player)."""
    gaz = gazetteer()
    out = []
    for start, end, label in spans:
        m = re.search(r"\s+[-–—]\s+", text[start:end])
        if m and text[start + m.end(): end][:1].isupper():
            left, right = (start, start + m.start()), (start + m.end(), end)
            left_country = text[left[0]:left[1]] in gaz.countries
            out.append((left[0], left[1], "GPE" if left_country else label))
            right_label = "GPE" if text[right[0]:right[1]] in gaz.countries else label
            if left_country and right_label != "GPE" and " " in text[right[0]:right[1]]:
                right_label = "PERSON"  # "Romania - Cosmin Contra": a country's player
            out.append((right[0], right[1], right_label))
        else:
            out.append((start, end, label))
    return out


_RESULT_LINE = re.compile(
    r"^([A-Z][\w.'&-]*(?: [A-Z][\w.'&-]*){0,3}) (\d{1,3}) ([A-Z][\w.'&-]*(?: [A-Z][\w.'&-]*){0,3}) (\d{1,3})\s*$",
    re.M,
)


def result_teams(text: str, spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """"Lotte 6 Hyundai 2": both sides of a results line are teams, tagged or not."""
    teams = []
    for m in _RESULT_LINE.finditer(text):
        teams += [(m.start(1), m.end(1)), (m.start(3), m.end(3))]
    if not teams:
        return spans
    kept = [sp for sp in spans if not any(s < sp[1] and sp[0] < e for s, e in teams)]
    return kept + [(s, e, "ORG") for s, e in teams]


def relabel(text: str, spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    gaz = gazetteer()
    sports = is_sports(text)
    out = []
    for start, end, label in spans:
        name = text[start:end]
        proper = name if not name.isupper() else gaz.places.get(name.lower(), name)
        is_country = proper in gaz.countries or ("the " + proper) in gaz.countries
        single = " " not in proper
        if is_country and label in {"ORG", "PERSON", "NORP", "FAC"} and not (
            label == "PERSON" and proper in COUNTRY_PERSON_NAMES
        ):
            label = "GPE"
        elif label == "PERSON" and single and _demonym(proper, gaz):
            label = "NORP"
        elif sports and not is_country and (
            label in _PLACE or (label == "PERSON" and single and (proper.lower() in gaz.places or proper.endswith("shire")))
        ):
            line_start = text.rfind("\n", 0, start) + 1
            after = text[end:end + 12]
            before = text[max(line_start, start - 12):start]
            at_line_start = not text[line_start:start].strip()
            if _DATELINE.match(after) and at_line_start:
                label = "GPE"  # "LONDON 1996-08-30": a dateline
            elif re.search(r"\b(?:in|at|from|near|of)\s+$", before) and not at_line_start:
                label = "GPE"  # "a crowd in Rotterdam": the city
            elif label == "PERSON" or (at_line_start and re.match(r"^\s+\d", after)) or _TEAM_AFTER.match(after) or _TEAM_BEFORE.search(before):
                label = "ORG"
        elif label in {"PERSON", "ORG"} and single and proper.endswith("shire"):
            label = "GPE"
        out.append((start, end, label))
    return out


_ORG_BEFORE = re.compile(
    r"\b(?:company|companies|firm|group|giant|maker|makers|manufacturer|bank|insurer|carrier|airline|"
    r"agency|newspaper|daily|broadcaster|operator|retailer|club|team|subsidiary)\s+$",
    re.I,
)
_ORG_AFTER = re.compile(
    r"^\s*(?:S\.A\.|SA\b|AG\b|Inc\b|Corp\b|Co\b|Ltd\b|plc\b|PLC\b|N\.V\.|Bhd\b|GmbH\b|SpA\b|"
    r"shares\b|stock\b|'s\s+shares\b|['’]s\s+(?:chairman|chief executive|shareholders|board)\b|"
    # "OpenAI's largest investor", "OpenAI was valued at", "DeepSeek, the Chinese start-up"
    r"['’]s\s+(?:\w+\s+)?(?:investors?|valuation|revenues?|founders?|co-founders?)\b|"
    r"(?:was|is|has\s+been|had\s+been)\s+valued\s+at\b|"
    r",\s+(?:the|an?)\s+(?:[\w-]+\s+){0,3}?(?:company|firm|start-?up|group|lab|laboratory|chipmaker|"
    r"carmaker|automaker|developer|retailer|bank|insurer|conglomerate|manufacturer)(?![\w'’-])(?!\s+[A-Z]))"
)
# A thing named as the subject of a business verb is the company that makes it: "DeepSeek
# released its model", "DeepSeek raised no outside money" (spaCy said PRODUCT). Persons and
# places do some of these too ("China announced"), so this cue only corrects things.
_BUSINESS_VERB_AFTER = re.compile(
    r"^\s+(?:has\s+|had\s+|have\s+)?(?:raised|released|launched|acquired|unveiled|announced|reported|"
    r"posted|shipped|hired|laid\s+off|filed|invested|agreed\s+to\s+(?:buy|acquire|sell))\b"
)
_THINGS = {"PRODUCT", "WORK_OF_ART", "FAC"}


_PLACE_BEFORE = re.compile(
    r"\b(?:(?:town|village|city|region|province|district|port|capital|suburb|island|republic)\s+of|near|outside)\s+$", re.I
)


def _place_cue(text: str, start: int, end: int, gaz: Gazetteer) -> bool:
    """"the town of Tavildara", "near Arbil", "Longyear, Norway": words that only fit a place."""
    if _PLACE_BEFORE.search(text[max(0, start - 25):start]):
        return True
    m = re.match(r"^\s*,\s*([A-Z][\w.]*(?: [A-Z][\w.]*)?)", text[end:end + 30])
    return bool(m and m.group(1) in gaz.countries)


def _org_cue(text: str, start: int, end: int, label: str) -> bool:
    """Words around a mention that only fit an organisation ("cables giant Pirelli", "Cofinec S.A.")."""
    after = text[end:end + 60]
    return bool(
        _ORG_BEFORE.search(text[max(0, start - 30):start])
        or _ORG_AFTER.match(after)
        or (label in _THINGS and _BUSINESS_VERB_AFTER.match(after))
    )


def consistent(text: str, spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """One label per name; surnames follow full names; add missed mentions of found names."""
    votes: dict[str, Counter[str]] = defaultdict(Counter)
    cued: set[str] = set()
    placed: set[str] = set()
    gaz = gazetteer()
    for start, end, label in spans:
        key = entity_key(text[start:end])
        votes[key][label] += 1
        if label in {"PERSON", "ORG", "GPE", "LOC", "PRODUCT", "WORK_OF_ART", "FAC"} and _org_cue(text, start, end, label):
            cued.add(key)
        elif label in {"PERSON", "ORG", "NORP"} and _place_cue(text, start, end, gaz):
            placed.add(key)
    # A single word that ends a multi-word PERSON name is that person.
    surnames = set()
    for key, counter in votes.items():
        if counter.most_common(1)[0][0] == "PERSON" and " " in key:
            words = key.split(" ")
            surnames.add(words[-1])
            if len(words) == 2 and len(words[0]) > 2 and not words[0].endswith("."):
                surnames.add(words[0])  # "Wang Zhizhi" ... "Wang"
    best = {}
    for key, counter in votes.items():
        top = counter.most_common()
        label = top[0][0]
        if key in cued:
            label = "ORG"  # words around it say organisation: stronger than spaCy's guesses
        elif key in placed and key not in surnames:
            label = "GPE"
        if key in surnames and label != "PERSON":
            label = "PERSON"
        elif len(top) > 1 and top[0][1] == top[1][1] and key not in cued and key not in placed:
            label = _tie_break([lab for lab, n in top if n == top[0][1]])
        if len(top) > 2 and top[0][1] * 2 <= sum(n for _, n in top) and "ORG" in counter:
            label = "ORG"  # spaCy cannot decide between three readings: usually an organisation
        best[key] = label
    out = [(s, e, best[entity_key(text[s:e])]) for s, e, _ in spans]
    # Mentions spaCy missed: the same capitalised string elsewhere, not inside another entity.
    names = {text[s:e] for s, e, _ in out if len(text[s:e]) >= 3 and text[s:e][:1].isupper()}
    names |= {surname.title() for surname in surnames}
    if not names:
        return out
    taken = sorted((s, e) for s, e, _ in out)
    starts = [s for s, _ in taken]
    pattern = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    added = []
    for m in re.finditer(r"(?<![\w'’.-])(?:" + pattern + r")(?![\w-])", text):
        if not _overlaps(taken, starts, m.start(), m.end()):
            added.append((m.start(), m.end(), best.get(entity_key(m.group(0))) or "PERSON"))
    return out + added


def _tie_break(labels: list[str]) -> str:
    for preferred in ("PERSON", "GPE", "ORG", "LOC"):
        if preferred in labels:
            return preferred
    return labels[0]


def _overlaps(taken: list[tuple[int, int]], starts: list[int], start: int, end: int) -> bool:
    """Whether [start, end) overlaps a span of ``taken`` (sorted, non-overlapping spans)."""
    i = bisect.bisect_left(starts, end)
    return any(taken[j][1] > start for j in range(max(0, i - 3), i))

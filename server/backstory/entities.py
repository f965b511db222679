"""Named entities for the sidebar: spaCy's NER, corrected, grouped by name.

``entity_spans(doc)`` returns every mention with its final label (what the sidebar shows and
what the evaluation scores); ``extract_entities(doc)`` groups them into ``schemas.Entity``.

The corrections on top of spaCy's small English model are in :mod:`backstory.entity_repair`
(trimmed spans, re-cased ALL-CAPS lines) and :mod:`backstory.entity_labels` (places, teams, one
label per name, missed mentions); the place names they use in :mod:`backstory.gazetteer`.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Any, Iterable

from .entity_key import grouping_key
from .entity_labels import consistent, is_sports, relabel, result_teams, split_dashed
from .entity_repair import casing_evidence, recased_lines, recased_spans, trim
from .generic_terms import is_generic_term
from .headings import caps_lines, title_lines
from .schemas import Entity, Mention

__all__ = ["SHOWN_LABELS", "entity_spans", "extract_entities"]

SHOWN_LABELS = frozenset(
    {"PERSON", "ORG", "GPE", "LOC", "NORP", "EVENT", "FAC", "PRODUCT", "WORK_OF_ART", "LAW", "LANGUAGE"}
)
"""Labels the sidebar shows; DATE, TIME, PERCENT, MONEY, QUANTITY, ORDINAL, CARDINAL never."""
MAX_RECASED_LINES = 200
"""ALL-CAPS lines re-cased and tagged again (the first ones); later ones keep spaCy's tags."""


def _spacy_spans(doc: Any) -> list[tuple[int, int, str]]:
    return [(e.start_char, e.end_char, e.label_) for e in doc.ents]


def entity_spans(doc: Any, text: str | None = None) -> list[tuple[int, int, str]]:
    """Every entity mention of ``doc`` as (start, end, label) with its final, corrected label.

    Offsets are character offsets into ``doc.text``; numeric labels (DATE, MONEY, ...) are left
    out; spans are sorted and never overlap. ``text`` is ``doc.text`` when the caller has it
    (spaCy builds it anew, token by token, on each read).
    """
    text = doc.text if text is None else text
    caps, titled = caps_lines(text), title_lines(text)
    evidence = casing_evidence(text, sorted(caps + titled))
    spans = _spacy_spans(doc)
    # Each re-cased line is one more NER call: a text of thousands of capitals lines would
    # cost seconds, where articles (results tables included) have a few dozen.
    lines = recased_lines(text, caps[:MAX_RECASED_LINES], titled[:MAX_RECASED_LINES], evidence)[:MAX_RECASED_LINES]
    if lines:
        bounds = [(start, start + len(line)) for start, line, _ in lines]
        inside = lambda s: any(a <= s < b for a, b in bounds)  # noqa: E731
        spans = [sp for sp in spans if not inside(sp[0])] + recased_spans(lines)
    trimmed = []
    for start, end, label in spans:
        if label not in SHOWN_LABELS:
            continue
        start, end = trim(text, start, end)
        name = text[start:end]
        if end <= start or not re.search(r"[A-Za-z]", name) or not name[0].isalnum():
            continue
        if is_generic_term(name):
            continue  # "AI", "CEO", "GPUs": a common noun in capitals, no name
        if " " not in name and not name.isupper() and evidence.get(name.lower(), "").islower():
            continue  # the article writes it in lower case elsewhere: a common word ("Stadium", "Men")
        trimmed.append((start, end, label))
    spans = split_dashed(text, trimmed)
    if is_sports(text):
        spans = result_teams(text, spans)
    spans = relabel(text, consistent(text, spans))
    spans.sort()
    final: list[tuple[int, int, str]] = []
    for sp in spans:
        if final and sp[0] < final[-1][1]:
            continue
        final.append(sp)
    return final


# --------------------------------------------------------------------------- grouping


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
        key = (grouping_key(text[start:end]), label)
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

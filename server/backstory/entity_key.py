"""One key for "the same entity": two names with equal keys stand for one entity.

:func:`entity_key` folds white space and case and drops a leading "the" and a possessive "'s"
("The Fed's" and "Fed" are one entity). Every place that compares names builds on it:

* the label vote over an article's mentions (:mod:`backstory.entity_labels`) uses it as is;
* the grouping of mentions into the sidebar's entities (:mod:`backstory.entities`) uses
  :func:`grouping_key`, which also folds the punctuation inside a name ("U.S." and "US");
* the related-story index (:mod:`backstory.archive.features`) uses :func:`index_key`, which
  also drops a leading "a"/"an" and punctuation at either end.

Why the two layers stay layers: the vote's keys are searched for in the text again (a surname
found in a full name looks for more mentions of itself), so they keep the name as written; an
article's mentions are trimmed of a leading "the" but never of "a", so folding "a" in the vote
or the grouping would merge "a MacBook Pro" with "MacBook" and "Pro"; and the index's keys are
stored with every story, so changing :func:`index_key` means bumping ``FEATURES_VERSION``.
"""

from __future__ import annotations

import re

__all__ = ["entity_key", "grouping_key", "index_key"]

_THE = re.compile(r"^the\s+", re.I)
_ARTICLE = re.compile(r"^(?:the|a|an)\s+", re.I)
_POSSESSIVE = re.compile(r"['’]s$")
_INNER_PUNCTUATION = re.compile(r"[^\w\s&]")
_EDGE_PUNCTUATION = " .,;:'\""


def _key(name: str, article: re.Pattern[str]) -> str:
    return _POSSESSIVE.sub("", article.sub("", " ".join(name.split()))).lower()


def entity_key(name: str) -> str:
    """``name`` lower-cased, white space folded, without a leading "the" or a possessive "'s"."""
    return _key(name, _THE)


def grouping_key(name: str) -> str:
    """:func:`entity_key` with the punctuation inside the name folded too: "U.S." and "US",
    "O'Neill" and "ONeill" group as one entity of an article."""
    return " ".join(_INNER_PUNCTUATION.sub("", entity_key(name)).split())


def index_key(name: str) -> str:
    """:func:`entity_key` that also drops a leading "a"/"an" (one article at most, as "the")
    and punctuation at either end: the key the related-story index stores for a name."""
    return _key(name, _ARTICLE).strip(_EDGE_PUNCTUATION)

"""XML without entity expansion: a parser that refuses any document declaring an entity.

A declared entity is how the billion laughs (internal entities expanding to gigabytes) and
external entities (reading local files or URLs) get in; neither an OPML list nor a news feed
needs one, so the declaration itself is refused, before anything is expanded. Used by the OPML
reader and, before feedparser, by the feed parser.
"""

from __future__ import annotations

from typing import Callable
from xml.parsers import expat

ENTITIES_REFUSED = "declares XML entities: refused (entity expansion is off)"


class EntitiesDeclared(ValueError):
    """The document declares an XML entity."""


def entity_free_parser(refuse: Callable[[], Exception] = lambda: EntitiesDeclared(ENTITIES_REFUSED)
                       ) -> expat.XMLParserType:
    """An expat parser that raises ``refuse()`` at the first entity declaration or external
    entity reference, and never reads a parameter entity."""
    def refusal(*_: object) -> None:
        raise refuse()

    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.EntityDeclHandler = refusal
    parser.UnparsedEntityDeclHandler = refusal
    parser.ExternalEntityRefHandler = refusal  # type: ignore[assignment]
    return parser


def declares_entities(document: bytes) -> bool:
    """Whether the document declares an entity (a document that is not well-formed XML and
    declares none is not this check's business: False)."""
    parser = entity_free_parser()
    try:
        parser.Parse(document, True)
    except EntitiesDeclared:
        return True
    except expat.ExpatError:
        return False
    return False

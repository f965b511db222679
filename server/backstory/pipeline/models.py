"""The heavy, shared resources of an analysis, loaded once (:meth:`Models.load`) and shared by
every thread: spaCy's worker processes, the ONNX embedder and the keyphrase ranker."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from ..extract import warm_up
from ..keyphrases import KeyphraseExtractor
from ..nlp import load_nlp
from ..nlp_worker import NlpWorker, take
from ..urls import identity_url

if TYPE_CHECKING:
    from spacy.language import Language

    from ..embed import MiniLMEmbedder


class Models:
    """spaCy (in processes of its own, see :mod:`backstory.nlp_worker`), the ONNX embedder and the
    keyphrase ranker (in this process)."""

    def __init__(self, spacy: NlpWorker, embedder: MiniLMEmbedder, keyphraser: KeyphraseExtractor) -> None:
        self.spacy = spacy
        self.embedder = embedder
        self.keyphraser = keyphraser

    @property
    def nlp(self) -> Language:
        """spaCy in *this* process (loaded on first use): for code that needs a ``Doc`` itself,
        such as the evaluation's span scoring. The pipeline never uses it."""
        return load_nlp()

    @classmethod
    def load(cls, spacy_processes: int = 2) -> Models:
        """Start the spaCy processes, then load the rest here while they load."""
        spacy = take(spacy_processes)  # started by `backstory serve` at once, else now
        try:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="load") as pool:
                warm = pool.submit(_warm_up_extraction)
                embedder = _load_embedder()
                keyphraser = KeyphraseExtractor(embedder)
                warm.result()
            spacy.wait_ready()
        except BaseException:
            spacy.close()
            raise
        return cls(spacy, embedder, keyphraser)

    def close(self) -> None:
        self.spacy.close()


def _warm_up_extraction() -> None:
    warm_up()  # trafilatura's lazy imports and word lists: the first reader must not wait for them
    identity_url("https://a.example.co.uk/", "https://b.example.co.uk/")  # loads the Public Suffix List now, not on a reader's request


def _load_embedder() -> MiniLMEmbedder:
    # Imported here: ONNX Runtime and KeyBERT are not loaded by a store-only pipeline, which has no models.
    from ..embed import MiniLMEmbedder

    embedder = MiniLMEmbedder()
    embedder.embed_document("warm-up")  # the ONNX session's first run allocates and optimises
    return embedder

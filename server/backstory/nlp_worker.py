"""spaCy in a process of its own: entities and keyphrase candidates, one text at a time.

spaCy's tagger + NER is the largest CPU stage (~150 ms for an 800-word story) and it holds the
GIL while it works, so in the server's process it kept extraction, the embeddings and the HTTP
loop waiting: with 16 clients the server used 1.0-1.5 of its 2 cores. Here it runs in one child
process, so the two cores really work at once: the child tags and finds names while the server
process extracts the next page, embeds the document (ONNX Runtime) and ranks keyphrases.

The split also halves cold start: the child imports spaCy and loads its model while the server
process imports the web stack, KeyBERT and ONNX Runtime.

Each text is two calls, queued together: the tagger's half returns the chosen
:class:`keyphrases.Candidate` objects at once, so the server embeds and ranks them while the
child runs NER for the :class:`schemas.Entity` list. Only those small, picklable results cross
the pipe, never a spaCy ``Doc``. The child dies with the server
(it watches its parent), ignores Ctrl-C (the server stops it), and a crashed child is replaced
on the next request.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections import OrderedDict
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from . import errors

log = logging.getLogger(__name__)

WARM_UP_TEXT = "Warm-up: Sam Altman met officials of the European Union in Brussels on Tuesday."

_nlp: Any = None
_docs: "OrderedDict[int, Any]" = OrderedDict()  # tagged docs waiting for their NER call
_MAX_WAITING = 64


# --- in the child ---------------------------------------------------------------------------


def _init_child(parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the server stops us

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)  # the server is gone (even killed with SIGKILL): do not linger

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()
    global _nlp
    from .nlp import load_nlp

    _nlp = load_nlp()
    _tag(-1, WARM_UP_TEXT, None, 30)
    _entities(-1)


def _ping() -> int:
    return os.getpid()


def _tag(key: int, text: str, title: str | None, max_candidates: int) -> list:
    """First half: tokens and POS tags, and the keyphrase candidates they give (sent back at
    once, so the server embeds them while this process finds the names)."""
    from .keyphrases import select_candidates

    doc = _nlp.make_doc(text)
    for name, component in _nlp.pipeline:
        if name != "ner":
            doc = component(doc)
    _docs[key] = doc
    while len(_docs) > _MAX_WAITING:
        _docs.popitem(last=False)
    return select_candidates(doc, title, max_candidates=max_candidates)


def _entities(key: int) -> list:
    """Second half: NER on the doc the matching :func:`_tag` call left, and the entity list."""
    from .entities import extract_entities

    doc = _docs.pop(key, None)
    if doc is None:
        raise RuntimeError("no tagged text waiting for its entities")
    return extract_entities(_nlp.get_pipe("ner")(doc))


# --- in the server ---------------------------------------------------------------------------


class NlpWorker:
    """The client side: :meth:`analyse` blocks the calling thread until the child answers.

    Calls from several threads queue in the child (it works on one text at a time).
    """

    def __init__(self, max_candidates: int = 30) -> None:
        self.max_candidates = max_candidates
        self._lock = threading.Lock()
        self._keys = itertools.count()
        self._pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),  # never fork a threaded server
            initializer=_init_child,
            initargs=(os.getpid(),),
        )
        self._ready = pool.submit(_ping)  # starts the child now: it loads while the caller loads
        return pool

    def wait_ready(self, timeout: float | None = None) -> int:
        """Block until the child has loaded spaCy; returns its process id."""
        return self._ready.result(timeout)

    @property
    def pid(self) -> int:
        return self.wait_ready()

    def start(self, text: str, title: str | None = None) -> "NlpJob":
        """Queue both halves of one text; the returned job hands out each result when ready."""
        with self._lock:
            pool, key = self._pool, next(self._keys)
            try:
                tag = pool.submit(_tag, key, text, title, self.max_candidates)
                ner = pool.submit(_entities, key)
            except BrokenProcessPool:
                self._restart(pool)
                raise errors.Unavailable("the language worker restarted; try again in a few seconds") from None
        return NlpJob(self, pool, tag, ner)

    def analyse(self, text: str, title: str | None = None) -> tuple[list, list]:
        """(entities, keyphrase candidates) of one article text."""
        job = self.start(text, title)
        candidates = job.candidates()
        return job.entities(), candidates

    def _restart(self, pool: ProcessPoolExecutor) -> None:
        if self._pool is pool:
            log.error("the spaCy worker process stopped; starting a new one")
            self._pool = self._start()

    def _result(self, pool: ProcessPoolExecutor, future: Any) -> Any:
        try:
            return future.result()
        except BrokenProcessPool:
            with self._lock:
                self._restart(pool)
            raise errors.Unavailable("the language worker restarted; try again in a few seconds") from None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class NlpJob:
    """One text in the spaCy process: :meth:`candidates` comes back after the tagger,
    :meth:`entities` after NER."""

    def __init__(self, worker: NlpWorker, pool: ProcessPoolExecutor, tag: Any, ner: Any) -> None:
        self._worker, self._pool, self._tag, self._ner = worker, pool, tag, ner

    def candidates(self) -> list:
        return self._worker._result(self._pool, self._tag)

    def entities(self) -> list:
        return self._worker._result(self._pool, self._ner)

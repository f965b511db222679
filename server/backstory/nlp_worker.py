"""spaCy in a process of its own: entities and keyphrase candidates, one text at a time.

spaCy's tagger + NER is the largest CPU stage (~150 ms for an 800-word story) and it holds the
GIL while it works, so in the server's process it kept extraction, the embeddings and the HTTP
loop waiting: with 16 clients the server used 1.0-1.5 of its 2 cores. Here it runs in one child
process, so the two cores really work at once: the child tags and finds names while the server
process extracts the next page, embeds the document (ONNX Runtime) and ranks keyphrases.

The split also halves cold start: the child imports spaCy and loads its model while the server
process imports the web stack, KeyBERT and ONNX Runtime.

Only small, picklable results cross the pipe: :class:`schemas.Entity` lists and the chosen
:class:`keyphrases.Candidate` objects (never a spaCy ``Doc``). The child dies with the server
(it watches its parent), ignores Ctrl-C (the server stops it), and a crashed child is replaced
on the next request.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from . import errors

log = logging.getLogger(__name__)

WARM_UP_TEXT = "Warm-up: Sam Altman met officials of the European Union in Brussels on Tuesday."

_nlp: Any = None


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
    _analyse(WARM_UP_TEXT, None, 30)


def _ping() -> int:
    return os.getpid()


def _analyse(text: str, title: str | None, max_candidates: int) -> tuple[list, list]:
    from .entities import extract_entities
    from .keyphrases import select_candidates

    doc = _nlp(text)
    return extract_entities(doc), select_candidates(doc, title, max_candidates=max_candidates)


# --- in the server ---------------------------------------------------------------------------


class NlpWorker:
    """The client side: :meth:`analyse` blocks the calling thread until the child answers.

    Calls from several threads queue in the child (it works on one text at a time).
    """

    def __init__(self, max_candidates: int = 30) -> None:
        self.max_candidates = max_candidates
        self._lock = threading.Lock()
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

    def analyse(self, text: str, title: str | None = None) -> tuple[list, list]:
        """(entities, keyphrase candidates) of one article text."""
        pool = self._pool
        try:
            return pool.submit(_analyse, text, title, self.max_candidates).result()
        except BrokenProcessPool:
            with self._lock:
                if self._pool is pool:
                    log.error("the spaCy worker process stopped; starting a new one")
                    self._pool = self._start()
            raise errors.Unavailable("the language worker restarted; try again in a few seconds") from None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

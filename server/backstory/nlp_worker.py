"""spaCy in two processes of its own: the tagger (keyphrase candidates) and NER (entities).

spaCy is the largest CPU stage (~165 ms for a 540-word story, ~230 ms for 800 words) and it
holds the GIL while it works, so in the server's process it kept extraction, the embeddings and
the HTTP loop waiting. Here it runs beside the server, split in its two independent halves
(en_core_web_sm's NER has its own token encoder, so it needs nothing from the tagger):

* the **tagger process** (tok2vec + tagger) returns the keyphrase candidates
  (:func:`keyphrases.select_candidates`), which the server embeds and ranks at once;
* the **NER process** returns the entity list (:func:`entities.extract_entities`).

Both get the text at the same time, so a story's spaCy time is the slower half (~95 ms of
~165), and the server process extracts the next page and runs ONNX Runtime meanwhile.

Start-up overlaps too: the children import spaCy and load their halves of the model while the
server process imports the web stack, KeyBERT and ONNX Runtime.

Only small, picklable results cross the pipes, never a spaCy ``Doc``. A child dies with the
server (it watches its parent), ignores Ctrl-C (the server stops it), and a crashed one is
replaced on the next request (that request gets a 503).

The processes are started with ``spawn``: a program that loads the models from a script must
keep its top level under ``if __name__ == "__main__":`` (the children import the main module).
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
from .memory import release_free_memory

log = logging.getLogger(__name__)

WARM_UP_TEXT = "Warm-up: Sam Altman met officials of the European Union in Brussels on Tuesday."
PARTS = ("tagger", "ner")
TRIM_INTERVAL = 5.0  # seconds between heap trims in a child (see memory.py)

_nlp: Any = None


# --- in a child ------------------------------------------------------------------------------


def _init_child(parent: int, part: str) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the server stops us

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)  # the server is gone (even killed with SIGKILL): do not linger

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()
    global _nlp
    from .nlp import load_nlp

    _nlp = load_nlp(part)
    if part == "tagger":
        _candidates(WARM_UP_TEXT, None, 30)
    elif part == "ner":
        _entities(WARM_UP_TEXT)
    else:
        _both(WARM_UP_TEXT, None, 30)


def _ping() -> int:
    return os.getpid()


# Each call runs in a spaCy memory zone: the words a text adds to the vocabulary are dropped
# again when it is done (only plain Python results leave the zone), so a long-running process
# does not grow with every new name it meets.


def _candidates(text: str, title: str | None, max_candidates: int) -> list:
    from .keyphrases import select_candidates

    try:
        with _nlp.memory_zone():
            return select_candidates(_nlp(text), title, max_candidates=max_candidates)
    finally:
        release_free_memory(TRIM_INTERVAL)


def _entities(text: str) -> list:
    from .entities import extract_entities

    try:
        with _nlp.memory_zone():
            return extract_entities(_nlp(text))
    finally:
        release_free_memory(TRIM_INTERVAL)


def _both(text: str, title: str | None, max_candidates: int) -> tuple[list, list]:
    """One process for both halves (``processes=1``): one tagger + NER pass."""
    from .entities import extract_entities
    from .keyphrases import select_candidates

    try:
        with _nlp.memory_zone():
            doc = _nlp(text)
            return select_candidates(doc, title, max_candidates=max_candidates), extract_entities(doc)
    finally:
        release_free_memory(TRIM_INTERVAL)


# --- in the server ---------------------------------------------------------------------------


class NlpWorker:
    """The client side of the processes. Calls from several threads queue in each child (each
    works on one text at a time). ``processes=1`` runs both halves in one process: ~150 MB less
    resident memory, ~50 ms more per 800-word story and fewer stories per second."""

    def __init__(self, max_candidates: int = 30, processes: int = 2) -> None:
        if processes not in (1, 2):
            raise ValueError("spaCy runs in 1 or 2 processes")
        self.max_candidates = max_candidates
        self.parts = PARTS if processes == 2 else ("all",)
        self._lock = threading.Lock()
        self._ready: dict[str, Any] = {}
        self._pools = {part: self._start(part) for part in self.parts}

    def _start(self, part: str) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),  # never fork a threaded server
            initializer=_init_child,
            initargs=(os.getpid(), part),
        )
        self._ready[part] = pool.submit(_ping)  # starts the child now: it loads while the caller loads
        return pool

    def wait_ready(self, timeout: float | None = None) -> dict[str, int]:
        """Block until both children have loaded their half of spaCy; their process ids."""
        return {part: self._result(part, self._pools[part], self._ready[part], timeout) for part in self.parts}

    @property
    def pids(self) -> dict[str, int]:
        return self.wait_ready()

    def start(self, text: str, title: str | None = None) -> "NlpJob":
        """Send one text to both processes; the returned job hands out each result when ready."""
        futures = {}
        if self.parts == ("all",):
            calls = [("all", _both, (text, title, self.max_candidates))]
        else:
            calls = [("tagger", _candidates, (text, title, self.max_candidates)), ("ner", _entities, (text,))]
        for part, fn, args in calls:
            pool = self._pools[part]
            try:
                futures[part] = (pool, pool.submit(fn, *args))
            except BrokenProcessPool:
                self._restart(part, pool)
                raise errors.Unavailable("the language worker restarted; try again in a few seconds") from None
        return NlpJob(self, futures)

    def analyse(self, text: str, title: str | None = None) -> tuple[list, list]:
        """(entities, keyphrase candidates) of one article text."""
        job = self.start(text, title)
        candidates = job.candidates()
        return job.entities(), candidates

    def _restart(self, part: str, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pools[part] is pool:
                log.error("the spaCy %s process stopped; starting a new one", part)
                self._pools[part] = self._start(part)

    def _result(self, part: str, pool: ProcessPoolExecutor, future: Any, timeout: float | None = None) -> Any:
        try:
            return future.result(timeout)
        except BrokenProcessPool:
            self._restart(part, pool)
            raise errors.Unavailable("the language worker restarted; try again in a few seconds") from None

    def close(self) -> None:
        for pool in self._pools.values():
            pool.shutdown(wait=False, cancel_futures=True)


class NlpJob:
    """One text in the spaCy processes: :meth:`candidates` from the tagger, :meth:`entities`
    from NER (they run at the same time)."""

    def __init__(self, worker: NlpWorker, futures: dict[str, tuple[ProcessPoolExecutor, Any]]) -> None:
        self._worker, self._futures = worker, futures

    def _get(self, part: str) -> Any:
        if "all" in self._futures:
            pool, future = self._futures["all"]
            return self._worker._result("all", pool, future)[0 if part == "tagger" else 1]
        pool, future = self._futures[part]
        return self._worker._result(part, pool, future)

    def candidates(self) -> list:
        return self._get("tagger")

    def entities(self) -> list:
        return self._get("ner")

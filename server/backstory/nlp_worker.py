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

The two share their memory: the tagger process is started (``spawn``) and loads the whole
pipeline, then forks the NER process from itself, so spaCy's code, the model and the gazetteer
sit in memory once (copy-on-write; ``gc.freeze`` keeps the collector from touching those pages).
Each process then switches off the other's components. The NER process takes its texts over a
pipe of its own. Start-up overlaps: the children load while the server process imports the web
stack, KeyBERT and ONNX Runtime.

Only small, picklable results cross the pipes, never a spaCy ``Doc``. A child dies with its
parent (it watches it), ignores Ctrl-C (the server stops it), and a crashed one is replaced,
with its partner, on the next request (that request gets a 503).

A program that loads the models from a script must keep its top level under
``if __name__ == "__main__":`` (``spawn`` children import the main module).
"""

from __future__ import annotations

import gc
import itertools
import logging
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from . import errors
from .memory import release_soon

log = logging.getLogger(__name__)

WARM_UP_TEXT = "Warm-up: Sam Altman met officials of the European Union in Brussels on Tuesday."
PARTS = ("tagger", "ner")
TRIM_INTERVAL = 5.0  # seconds between heap trims in a child (see memory.py)

_nlp: Any = None


# --- in a child ------------------------------------------------------------------------------


def _exit_with(parent: int) -> None:
    """Start a thread that ends this process when ``parent`` is gone (even killed with SIGKILL)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


def _init_child(parent: int, part: str, ner_end: Any = None) -> None:
    """``part`` "all": both halves here. "tagger": load both, fork the NER process (it serves
    ``ner_end``), keep the tagger half."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the server stops us
    global _nlp
    from .nlp import load_nlp

    _nlp = load_nlp("all")
    _both(WARM_UP_TEXT, None, 30)
    if part == "tagger":
        gc.collect()
        gc.freeze()  # the model's objects are shared with the NER process from here on
        if os.fork() == 0:
            _serve_ner(ner_end, os.getppid())  # never returns
        ner_end.close()
        _nlp.select_pipes(disable=["ner"])
    _exit_with(parent)


def _serve_ner(conn: Any, host: int) -> None:
    """The NER process: (id, text) in, (id, (ok, entities or exception)) out, one at a time;
    text None is a ping (answered with the process id)."""
    try:
        _exit_with(host)
        _nlp.select_pipes(disable=["tok2vec", "tagger"])
        while True:
            try:
                job, text = conn.recv()
            except (EOFError, OSError):
                break
            try:
                reply = (True, os.getpid() if text is None else _entities(text))
            except Exception as exc:  # noqa: BLE001 - the caller gets it, as from a pool
                reply = (False, exc)
            try:
                conn.send((job, reply))
            except (TypeError, AttributeError, ValueError):  # an exception that does not pickle
                conn.send((job, (False, RuntimeError(repr(reply[1])))))
    finally:
        os._exit(0)  # a forked child: none of the parent's exit handlers may run here


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
        release_soon(TRIM_INTERVAL)


def _entities(text: str) -> list:
    from .entities import extract_entities

    try:
        with _nlp.memory_zone():
            return extract_entities(_nlp(text))
    finally:
        release_soon(TRIM_INTERVAL)


def _both(text: str, title: str | None, max_candidates: int) -> tuple[list, list]:
    """One process for both halves (``processes=1``): one tagger + NER pass."""
    from .entities import extract_entities
    from .keyphrases import select_candidates

    try:
        with _nlp.memory_zone():
            doc = _nlp(text)
            return select_candidates(doc, title, max_candidates=max_candidates), extract_entities(doc)
    finally:
        release_soon(TRIM_INTERVAL)


# --- in the server ---------------------------------------------------------------------------


class _NerPipe:
    """The server's end of the NER process's pipe: an executor-like ``submit`` (jobs queue in the
    pipe; the process answers them in order) and a reader thread that completes the futures.
    When the process is gone, every waiting and later call fails with ``BrokenProcessPool``."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self._send_lock = threading.Lock()  # one writer at a time; never held by the reader
        self._lock = threading.Lock()  # the table of waiting futures
        self._waiting: dict[int, Future] = {}
        self._ids = itertools.count()
        self._broken = False
        threading.Thread(target=self._read, name="spacy-ner-pipe", daemon=True).start()

    def submit(self, text: str | None) -> Future:
        future: Future = Future()
        with self._lock:
            if self._broken:
                raise BrokenProcessPool("the spaCy NER process stopped")
            job = next(self._ids)
            self._waiting[job] = future
        try:
            with self._send_lock:
                self._conn.send((job, text))
        except OSError:
            self._fail()
            raise BrokenProcessPool("the spaCy NER process stopped") from None
        return future

    def _read(self) -> None:
        while True:
            try:
                job, (ok, value) = self._conn.recv()
            except (EOFError, OSError):
                break
            with self._lock:
                future = self._waiting.pop(job, None)
            if future is not None:
                future.set_result(value) if ok else future.set_exception(value)
        self._fail()
        self._conn.close()

    def _fail(self) -> None:
        with self._lock:
            self._broken = True
            waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            future.set_exception(BrokenProcessPool("the spaCy NER process stopped"))


class NlpWorker:
    """The client side of the processes. Calls from several threads queue in each child (each
    works on one text at a time). ``processes=1`` runs both halves in one process: ~25 MB less
    memory (PSS), ~50 ms more per 800-word story and fewer stories per second."""

    def __init__(self, max_candidates: int = 30, processes: int = 2) -> None:
        if processes not in (1, 2):
            raise ValueError("spaCy runs in 1 or 2 processes")
        if processes == 2 and not hasattr(os, "fork"):  # the NER process is forked from the tagger's
            log.warning("no fork() on this platform: spaCy runs in one process")
            processes = 1
        self.max_candidates = max_candidates
        self.parts = PARTS if processes == 2 else ("all",)
        self._lock = threading.Lock()
        self._start()

    def _start(self) -> None:
        """Start the child (and, for two processes, the NER process it forks); returns at once."""
        first = self.parts[0]
        ner_pipe = ner_end = None
        if first == "tagger":
            here, ner_end = multiprocessing.Pipe()
            ner_pipe = _NerPipe(here)
        pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),  # never fork a threaded server
            initializer=_init_child,
            initargs=(os.getpid(), first, ner_end),
        )
        handles: dict[str, Any] = {first: pool}
        ready: dict[str, Future] = {first: pool.submit(_ping)}  # starts the child: it loads while we load
        if ner_pipe is not None:
            ner_end.close()  # the child has its copy: the NER process alone holds that end now
            handles["ner"] = ner_pipe
            ready["ner"] = ner_pipe.submit(None)
        self._handles, self._ready = handles, ready  # callers never see half a pair

    def wait_ready(self, timeout: float | None = None) -> dict[str, int]:
        """Block until the children have loaded spaCy; their process ids."""
        handles, ready = self._handles, self._ready
        return {part: self._result(handles[part], ready[part], timeout) for part in self.parts}

    @property
    def pids(self) -> dict[str, int]:
        return self.wait_ready()

    def start(self, text: str, title: str | None = None) -> "NlpJob":
        """Send one text to both processes; the returned job hands out each result when ready."""
        handles = self._handles
        futures = {}
        try:
            if self.parts == ("all",):
                futures["all"] = (handles["all"], handles["all"].submit(_both, text, title, self.max_candidates))
            else:
                futures["tagger"] = (handles["tagger"], handles["tagger"].submit(_candidates, text, title, self.max_candidates))
                futures["ner"] = (handles["ner"], handles["ner"].submit(text))
        except BrokenProcessPool:
            self._restart(handles[self.parts[0]])
            raise errors.Unavailable("the language worker restarted; try again in a few seconds") from None
        return NlpJob(self, futures)

    def analyse(self, text: str, title: str | None = None) -> tuple[list, list]:
        """(entities, keyphrase candidates) of one article text."""
        job = self.start(text, title)
        candidates = job.candidates()
        return job.entities(), candidates

    def _restart(self, stale: Any) -> None:
        """Replace the processes (both of a pair) unless ``stale`` is no longer one of them."""
        with self._lock:
            if stale in self._handles.values():
                log.error("a spaCy process stopped; starting new ones")
                self._handles[self.parts[0]].shutdown(wait=False, cancel_futures=True)  # its NER process follows it
                self._start()

    def _result(self, handle: Any, future: Any, timeout: float | None = None) -> Any:
        try:
            return future.result(timeout)
        except BrokenProcessPool:
            self._restart(handle)
            raise errors.Unavailable("the language worker restarted; try again in a few seconds") from None

    def close(self) -> None:
        self._handles[self.parts[0]].shutdown(wait=False, cancel_futures=True)


class NlpJob:
    """One text in the spaCy processes: :meth:`candidates` from the tagger, :meth:`entities`
    from NER (they run at the same time)."""

    def __init__(self, worker: NlpWorker, futures: dict[str, tuple[Any, Any]]) -> None:
        self._worker, self._futures = worker, futures

    def _get(self, part: str) -> Any:
        if "all" in self._futures:
            handle, future = self._futures["all"]
            return self._worker._result(handle, future)[0 if part == "tagger" else 1]
        handle, future = self._futures[part]
        return self._worker._result(handle, future)

    def candidates(self) -> list:
        return self._get("tagger")

    def entities(self) -> list:
        return self._get("ner")

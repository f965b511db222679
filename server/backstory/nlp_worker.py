"""spaCy in two processes of its own: the tagger (keyphrase candidates) and NER (entities).

spaCy is one of the largest CPU stages, in two halves of similar cost, and it holds
the GIL while it works, so in the server's process it kept extraction, the embeddings and
the HTTP loop waiting. Here it runs beside the server, split in its two independent halves
(en_core_web_sm's NER has its own token encoder, so it needs nothing from the tagger):

* the **tagger process** (tok2vec + tagger) returns the keyphrase candidates
  (:func:`keyphrases.select_candidates`), which the server embeds and ranks at once;
* the **NER process** returns the entity list (:func:`entities.extract_entities`).

Both get the text at the same time, so a story's spaCy time is the slower half, and the server
process extracts the next page and runs ONNX Runtime meanwhile.

The two share their memory: the tagger process loads the whole pipeline, then forks the NER
process from itself, so spaCy's code, the model and the gazetteer sit in memory once
(copy-on-write; ``gc.freeze`` keeps the collector from touching those pages), and either can
run either half. While the server has one text in flight, the halves run in the two processes
at once; when more texts queue, each goes whole to the less busy process (one pass tokenises it
once: less CPU a story, and the queue keeps both processes busy anyway).

``backstory serve`` forks the tagger process itself from the server process at its very start
(:func:`prestart`), before the server has a thread or has imported its web stack: the
interpreter and numpy are then shared too, no multiprocessing helper process is needed, and
spaCy loads while the server imports the rest. Anywhere else (tools, tests, a restart after a
crash, when threads already run) the tagger process is started fresh (``spawn``). Each process
takes its texts over a pipe of its own.

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
import socket
import sys
import threading
import time
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from . import errors
from .memory import release_soon
from .threads import name_os_thread

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


def _init_child(parent: int, part: str, ner_end: Any = None, conn: Any = None) -> None:
    """``part`` "all": both halves here. "tagger": load both, fork the NER process (it serves
    ``ner_end``), keep the tagger half (``conn``, its own pipe, is closed in the NER process, so
    the server sees the tagger process end when it does)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the server stops us
    global _nlp
    from .gazetteer import load_gazetteer
    from .nlp import load_nlp

    _nlp = load_nlp("all")
    load_gazetteer()  # before the fork, so the NER process shares the place names
    _both(WARM_UP_TEXT, None, 30)
    if part == "tagger":
        gc.collect()
        gc.freeze()  # the model's objects are shared with the NER process from here on
        if os.fork() == 0:
            if conn is not None:
                conn.close()
            _exit_with(os.getppid())
            _serve(ner_end)  # never returns
        ner_end.close()
    _exit_with(parent)


def _child_main(parent: int, part: str, conn: Any, ner_end: Any = None) -> None:
    """A spaCy process: load (and fork the NER process, for ``part`` "tagger"), then answer ``conn``."""
    try:
        _init_child(parent, part, ner_end, conn)
        _serve(conn)
    finally:
        os._exit(0)


def _serve(conn: Any) -> None:
    """Answer (id, name, args) with (id, (ok, result or exception)), one at a time, until the
    server closes its end; then end this process (it may be a fork: none of the parent's exit
    handlers may run here)."""
    try:
        while True:
            try:
                job, name, args = conn.recv()
            except (EOFError, OSError):
                break
            try:
                reply = (True, _HANDLERS[name](*args))
            except Exception as exc:  # noqa: BLE001 - the caller gets it, as from a pool
                reply = (False, exc)
            try:
                conn.send((job, reply))
            except (TypeError, AttributeError, ValueError):  # an exception that does not pickle
                conn.send((job, (False, RuntimeError(repr(reply[1])))))
    finally:
        os._exit(0)


def _ping() -> int:
    return os.getpid()


# Each call runs in a spaCy memory zone: the words a text adds to the vocabulary are dropped
# again when it is done (only plain Python results leave the zone), so a long-running process
# does not grow with every new name it meets.


def _only(*names: str) -> Any:
    """Run only these of the pipeline's components (those it has) while in the block."""
    return _nlp.select_pipes(enable=[n for n in names if n in _nlp.component_names])


def _candidates(text: str, title: str | None, max_candidates: int) -> list:
    from .keyphrase_candidates import select_candidates

    try:
        with _nlp.memory_zone(), _only("tok2vec", "tagger"):
            return select_candidates(_nlp(text), title, max_candidates=max_candidates)
    finally:
        release_soon(TRIM_INTERVAL)


def _entities(text: str) -> list:
    from .entities import extract_entities

    try:
        with _nlp.memory_zone(), _only("ner"):
            return extract_entities(_nlp(text))
    finally:
        release_soon(TRIM_INTERVAL)


def _both(text: str, title: str | None, max_candidates: int) -> tuple[list, list]:
    """Both halves in one pass: the one process of ``processes=1``, or either process of a pair
    when the server has several texts in flight (see :meth:`NlpWorker.start`)."""
    from .entities import extract_entities
    from .keyphrase_candidates import select_candidates

    try:
        with _nlp.memory_zone():
            doc = _nlp(text)
            return select_candidates(doc, title, max_candidates=max_candidates), extract_entities(doc)
    finally:
        release_soon(TRIM_INTERVAL)


_HANDLERS = {"ping": _ping, "candidates": _candidates, "entities": _entities, "both": _both}


# --- in the server ---------------------------------------------------------------------------


class _Pipe:
    """The server's end of a spaCy process's pipe: an executor-like ``submit`` (jobs queue in the
    pipe; the process answers them in order) and a reader thread that completes the futures.
    When the process is gone, every waiting and later call fails with ``BrokenProcessPool``.
    ``reap`` (if given) waits for the process once its pipe is closed."""

    def __init__(self, conn: Any, name: str, reap: Any = None) -> None:
        self._conn = conn
        self._name = name
        self._reap = reap
        self._send_lock = threading.Lock()  # one writer at a time
        self._close_lock = threading.Lock()  # shut down or closed once
        self._lock = threading.Lock()  # the table of waiting futures
        self._waiting: dict[int, Future] = {}
        self._ids = itertools.count()
        self._broken = False
        threading.Thread(target=self._read, name=f"spacy-{name}-pipe", daemon=True).start()

    def pending(self) -> int:
        """Jobs sent and not yet answered."""
        return len(self._waiting)

    def submit(self, name: str, *args: Any) -> Future:
        future: Future = Future()
        with self._lock:
            if self._broken:
                raise BrokenProcessPool(f"the spaCy {self._name} process stopped")
            job = next(self._ids)
            self._waiting[job] = future
        try:
            with self._send_lock:
                self._conn.send((job, name, args))
        except OSError:
            self._fail()
            raise BrokenProcessPool(f"the spaCy {self._name} process stopped") from None
        return future

    def close(self) -> None:
        """Shut the pipe down: the process reads the end of it and exits, and our reader thread
        wakes, closes the pipe and reaps the process. (Closing the descriptor from here would do
        neither, and the reader, blocked on its number, could then read one reused meanwhile.)"""
        self._fail()
        with self._close_lock:
            if self._conn.closed:
                return
            try:
                sock = socket.socket(fileno=os.dup(self._conn.fileno()))
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                finally:
                    sock.close()
            except OSError:  # the other end is gone: the reader sees that anyway
                pass

    def _read(self) -> None:
        name_os_thread()
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
        # Only this thread closes it (see close()), once no send is under way (sends fail fast
        # now: the other end is gone or shut down).
        with self._close_lock, self._send_lock:
            self._conn.close()
        if self._reap is not None:
            self._reap()

    def _fail(self) -> None:
        with self._lock:
            self._broken = True
            waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            future.set_exception(BrokenProcessPool(f"the spaCy {self._name} process stopped"))


def _reap_pid(pid: int) -> Any:
    def reap() -> None:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass

    return reap


class NlpWorker:
    """The client side of the processes. Calls from several threads queue in each child (each
    works on one text at a time). ``processes=1`` runs both halves in one process: a little less
    memory, a little more latency a story; under load as many stories per second (it spends
    less CPU a story and leaves more of it idle).

    ``fork=True`` forks the first process from this one (see :func:`prestart`); only on Linux, in
    a process with no other thread yet (else it is started fresh)."""

    def __init__(self, max_candidates: int = 30, processes: int = 2, *, fork: bool = False) -> None:
        if processes not in (1, 2):
            raise ValueError("spaCy runs in 1 or 2 processes")
        if processes == 2 and not hasattr(os, "fork"):  # the NER process is forked from the tagger's
            log.warning("no fork() on this platform: spaCy runs in one process")
            processes = 1
        self.max_candidates = max_candidates
        self.parts = PARTS if processes == 2 else ("all",)
        # Linux only: elsewhere system libraries numpy may load (macOS's Accelerate) do not
        # survive a fork.
        self.forked = fork and sys.platform.startswith("linux") and threading.active_count() == 1
        self._lock = threading.Lock()
        self._start(self.forked)

    def _start(self, fork: bool = False) -> None:
        """Start the first process (and, for two, the NER process it forks); returns at once."""
        first = self.parts[0]
        here, there = multiprocessing.Pipe()
        ner_here, ner_end = multiprocessing.Pipe() if first == "tagger" else (None, None)
        if fork:
            pid = os.fork()
            if pid == 0:  # the new process: never returns into the server's code
                here.close()
                if ner_here is not None:
                    ner_here.close()
                _child_main(os.getppid(), first, there, ner_end)
            reap = _reap_pid(pid)
        else:
            process = multiprocessing.get_context("spawn").Process(  # never fork a threaded server
                target=_child_main, args=(os.getpid(), first, there, ner_end), name=f"spacy-{first}", daemon=True
            )
            process.start()
            reap = process.join
        there.close()  # the child has its copies: it alone holds those ends now
        handles: dict[str, Any] = {first: _Pipe(here, first, reap)}
        if ner_end is not None:
            ner_end.close()
            handles["ner"] = _Pipe(ner_here, "ner")
        ready = {part: pipe.submit("ping") for part, pipe in handles.items()}  # they load while we load
        self._handles, self._ready = handles, ready  # callers never see half a pair

    def wait_ready(self, timeout: float | None = None) -> dict[str, int]:
        """Block until the children have loaded spaCy; their process ids."""
        handles, ready = self._handles, self._ready
        return {part: self._result(handles[part], ready[part], timeout) for part in self.parts}

    @property
    def pids(self) -> dict[str, int]:
        return self.wait_ready()

    def start(self, text: str, title: str | None = None) -> "NlpJob":
        """Send one text to the processes; the returned job hands out each result when ready.

        A text that arrives while both processes are idle is split (candidates from the tagger
        process, entities from the NER process, at the same time: the shortest wait). One that
        arrives while another text is in flight goes whole to the less busy process: both
        halves in one pass tokenise it once and cross one pipe, less CPU a story, and
        with several texts queued the two processes stay busy either way."""
        handles = self._handles
        futures = {}
        try:
            if self.parts == ("all",):
                futures["all"] = (handles["all"], handles["all"].submit("both", text, title, self.max_candidates))
            elif handles["tagger"].pending() or handles["ner"].pending():
                pipe = min((handles["tagger"], handles["ner"]), key=lambda p: p.pending())
                futures["all"] = (pipe, pipe.submit("both", text, title, self.max_candidates))
            else:
                futures["tagger"] = (handles["tagger"], handles["tagger"].submit("candidates", text, title, self.max_candidates))
                futures["ner"] = (handles["ner"], handles["ner"].submit("entities", text))
        except BrokenProcessPool:
            self._restart(handles[self.parts[0]])
            raise errors.Unavailable("the language worker restarted; try again in a few seconds") from None
        return NlpJob(self, futures)

    def _restart(self, stale: Any) -> None:
        """Replace the processes (both of a pair) unless ``stale`` is no longer one of them."""
        with self._lock:
            if stale in self._handles.values():
                log.error("a spaCy process stopped; starting new ones")
                self.close()  # both processes read the end of their pipes and exit
                self._start()

    def _result(self, handle: Any, future: Any, timeout: float | None = None) -> Any:
        try:
            return future.result(timeout)
        except BrokenProcessPool:
            self._restart(handle)
            raise errors.Unavailable("the language worker restarted; try again in a few seconds") from None

    def close(self) -> None:
        for pipe in self._handles.values():
            pipe.close()


_prestarted: NlpWorker | None = None


def prestart(processes: int = 2) -> None:
    """Fork the spaCy processes from this process now, while it has no thread and little memory
    (``backstory serve`` calls this first): the pages it holds (the interpreter, numpy) are then
    shared, and spaCy loads while the server imports the rest. :func:`take` hands them out."""
    global _prestarted
    import numpy  # noqa: F401 - imported before the fork, its pages are shared with the children

    gc.collect()
    gc.freeze()  # the collector never writes to these objects' pages, here or in the children
    _prestarted = NlpWorker(processes=processes, fork=True)


def take(processes: int = 2) -> NlpWorker:
    """The processes :func:`prestart` started, if they match ``processes``; else new ones."""
    global _prestarted
    worker, _prestarted = _prestarted, None
    if worker is not None:
        if len(worker.parts) == (2 if processes == 2 and hasattr(os, "fork") else 1):
            return worker
        worker.close()
    return NlpWorker(processes=processes)


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

"""spaCy's two processes: same results as in-process, restarted after a crash, gone with their parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import json
import textwrap
import time
from pathlib import Path

import pytest

from backstory import errors
from backstory.entities import extract_entities
from backstory.keyphrases import select_candidates
from backstory.nlp import load_nlp
from backstory.nlp_worker import NlpWorker

TEXT = (
    "Apple chief executive Tim Cook met European Union officials in Brussels on Tuesday. "
    "The European Commission fined Apple 1.8 billion euros over its music streaming rules, "
    "and Cook said the company would appeal the fine at the General Court in Luxembourg."
)


def analyze(worker: NlpWorker, text: str, title: str | None = None) -> tuple[list, list]:
    """(entities, keyphrase candidates) of one text, through the job the pipeline uses."""
    job = worker.start(text, title)
    candidates = job.candidates()
    return job.entities(), candidates


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped) counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # reaped between the two looks (ESRCH on read)
        return False


def test_two_processes_give_what_in_process_spacy_gives(models) -> None:
    worker = models.spacy
    pids = worker.pids
    assert set(pids) == {"tagger", "ner"} and os.getpid() not in pids.values() and len(set(pids.values())) == 2
    entities, candidates = analyze(worker, TEXT, "Apple fined")
    doc = load_nlp()(TEXT)
    assert entities == extract_entities(doc)
    assert [c.text for c in candidates] == [c.text for c in select_candidates(doc, "Apple fined")]
    assert {"Tim Cook", "Brussels"} <= {e.name for e in entities}
    assert 0 < len(candidates) <= worker.max_candidates


def _shared_anonymous_mb(pid: int) -> float:
    """Memory of ``pid`` not backed by a file (heap, numpy arrays) that another process maps too."""
    total, anonymous = 0, False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and ":" not in head[0]:  # a mapping's first line
            anonymous = len(head) < 6 or head[5] == "[heap]"
        elif anonymous and line.startswith(("Shared_Clean:", "Shared_Dirty:")):
            total += int(head[1])
    return total / 1024


def test_the_ner_process_is_forked_from_the_tagger_and_shares_its_memory(models) -> None:
    pids = models.spacy.pids
    parent = int(Path(f"/proc/{pids['ner']}/stat").read_text().rsplit(")", 1)[1].split()[1])
    assert parent == pids["tagger"]
    # spaCy's objects and the model weights are mapped once: two spawned processes share no
    # anonymous memory at all, these two share the loaded pipeline (~90 MB).
    assert _shared_anonymous_mb(pids["ner"]) > 40 and _shared_anonymous_mb(pids["tagger"]) > 40


def test_the_halves_load_only_their_components() -> None:
    assert load_nlp("tagger").pipe_names == ["tok2vec", "tagger"]
    assert load_nlp("ner").pipe_names == ["ner"]
    assert extract_entities(load_nlp("ner")(TEXT)) == extract_entities(load_nlp()(TEXT))


def test_the_attribute_ruler_changes_no_tag_the_candidates_read() -> None:
    import spacy

    from backstory.nlp import MODEL

    full = spacy.load(MODEL, exclude=["parser", "lemmatizer", "senter", "ner"])
    assert "attribute_ruler" in full.pipe_names
    text = TEXT + " It's a well-known fact: they'd gone, hadn't they? U.S. officials, e.g. Dr. Smith, weren't sure."
    ours = load_nlp("tagger")(text)
    assert [t.tag_ for t in ours] == [t.tag_ for t in full(text)]
    assert [c.text for c in select_candidates(ours, "Apple fined")] == [
        c.text for c in select_candidates(full(text), "Apple fined")
    ]


@pytest.mark.parametrize("part", ["tagger", "ner"])
def test_a_crashed_worker_is_replaced(part: str) -> None:
    worker = NlpWorker()
    try:
        first = worker.pids[part]
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _alive(first) and time.monotonic() < deadline:
            time.sleep(0.05)
        with pytest.raises(errors.Unavailable):
            analyze(worker, TEXT)
        entities, candidates = analyze(worker, TEXT)  # the replacement answers
        assert worker.pids[part] != first
        assert any(e.name == "Tim Cook" for e in entities) and candidates
    finally:
        worker.close()


def test_the_worker_does_not_outlive_a_killed_server(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys, time
        from backstory.nlp_worker import NlpWorker
        if __name__ == "__main__":
            w = NlpWorker()
            print(*w.pids.values(), flush=True)
            time.sleep(60)
        """
    )
    path = tmp_path / "server.py"
    path.write_text(script)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "server"))
    parent = subprocess.Popen([sys.executable, str(path)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        children = [int(pid) for pid in parent.stdout.readline().split()]
        assert len(children) == 2 and all(_alive(c) for c in children)
        parent.kill()  # SIGKILL: no clean-up code runs in the parent
        parent.wait(10)
        deadline = time.monotonic() + 10
        while any(_alive(c) for c in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(c) for c in children)
    finally:
        parent.kill()
        parent.stdout.close()


def test_texts_that_queue_go_whole_to_the_less_busy_process_with_the_same_results(models) -> None:
    worker = models.spacy
    texts = [(f"{TEXT} Story {i}: Ms Vestager spoke in Luxembourg.", f"Apple fined {i}") for i in range(6)]
    split = [analyze(worker, text, title) for text, title in texts]  # one at a time: split
    jobs = [worker.start(text, title) for text, title in texts]  # all in flight at once
    assert set(jobs[0]._futures) == {"tagger", "ner"}  # the first found both processes idle
    whole = [job for job in jobs[1:] if set(job._futures) == {"all"}]
    assert len(whole) == len(jobs) - 1
    assert {id(job._futures["all"][0]) for job in whole} == {id(p) for p in worker._handles.values()}
    assert [(job.entities(), job.candidates()) for job in jobs] == split


def test_one_process_mode_gives_the_same_results(models) -> None:
    single = NlpWorker(processes=1)
    try:
        assert list(single.pids) == ["all"] and single.pids["all"] not in models.spacy.pids.values()
        assert analyze(single, TEXT, "Apple fined") == analyze(models.spacy, TEXT, "Apple fined")
    finally:
        single.close()
    with pytest.raises(ValueError):
        NlpWorker(processes=3)


def test_new_words_do_not_stay_in_the_vocabulary(monkeypatch) -> None:
    import backstory.nlp_worker as worker_module

    nlp = load_nlp("ner")
    monkeypatch.setattr(worker_module, "_nlp", nlp)
    worker_module._entities(TEXT)
    before = len(nlp.vocab.strings)
    names = [f"Zorvath{i} Quellmire{i}" for i in range(20)]
    entities = worker_module._entities(" ".join(f"{n} met officials in Brussels." for n in names))
    assert any("Zorvath" in e.name for e in entities)  # results are plain Python: they outlive the zone
    assert len(nlp.vocab.strings) == before


def test_capital_lines_use_the_ner_process_own_pipeline(monkeypatch) -> None:
    # A headline in capitals is tagged again re-cased; that must not load a second pipeline
    # (the full one) into the NER process.
    import backstory.nlp as nlp_module
    import backstory.nlp_worker as worker_module

    ner_only = load_nlp("ner")
    monkeypatch.setattr(nlp_module, "_nlps", {"ner": ner_only})
    monkeypatch.setattr(worker_module, "_nlp", ner_only)
    entities = worker_module._entities("APPLE FINED IN BRUSSELS\n\n" + TEXT)
    assert {"Tim Cook", "Brussels"} <= {e.name for e in entities}
    assert list(nlp_module._nlps) == ["ner"]


def test_without_fork_one_process_runs_both_halves(monkeypatch) -> None:
    import backstory.nlp_worker as worker_module

    monkeypatch.delattr(worker_module.os, "fork")
    worker = NlpWorker(processes=2)
    try:
        assert list(worker.pids) == ["all"]
        entities, candidates = analyze(worker, TEXT, "Apple fined")
        assert any(e.name == "Tim Cook" for e in entities) and candidates
    finally:
        worker.close()


def test_an_error_in_the_ner_process_reaches_the_caller_and_the_process_stays(models) -> None:
    from concurrent.futures.process import BrokenProcessPool

    worker = models.spacy
    pid = worker.pids["ner"]
    with pytest.raises(Exception) as failure:
        worker._handles["ner"].submit("entities", 12345).result(30)  # not a text: spaCy raises in the child
    assert not isinstance(failure.value, BrokenProcessPool)
    entities, _ = analyze(worker, TEXT)
    assert worker.pids["ner"] == pid and any(e.name == "Tim Cook" for e in entities)


def test_serve_forks_the_processes_from_itself_before_any_thread(tmp_path: Path) -> None:
    """``prestart`` (what ``backstory serve`` calls first): the tagger process is forked from the
    server process, shares its pages, needs no multiprocessing helper process; after a crash the
    replacement is started fresh (the server has threads by then)."""
    script = textwrap.dedent(
        """
        import json, os, signal, time
        from multiprocessing import resource_tracker
        from backstory import errors
        from backstory.nlp_worker import prestart, take
        if __name__ == "__main__":
            prestart(2)
            w = take(2)
            pids = w.pids
            parent = lambda pid: int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
            job = w.start(%r, "Apple fined")
            candidates, entities = job.candidates(), job.entities()
            out = {"me": os.getpid(), "forked": w.forked, "pids": pids, "tagger_parent": parent(pids["tagger"]),
                   "ner_parent": parent(pids["ner"]), "names": [e.name for e in entities],
                   "candidates": len(candidates), "tracker": resource_tracker._resource_tracker._fd is not None}
            os.kill(pids["tagger"], signal.SIGKILL)
            time.sleep(0.5)
            try:
                w.start("A short text about Brussels.").candidates()
                out["unavailable"] = False
            except errors.Unavailable:
                out["unavailable"] = True
            entities = w.start(%r).entities()
            again = w.pids
            out.update(again=again, again_parent=parent(again["tagger"]), again_names=[e.name for e in entities])
            w.close()
            deadline = time.monotonic() + 10
            while any(os.path.exists(f"/proc/{pid}") for pid in again.values()) and time.monotonic() < deadline:
                try:
                    os.waitpid(-1, os.WNOHANG)  # reap what this process forked
                except ChildProcessError:
                    pass
                time.sleep(0.1)
            out["closed_gone"] = not any(os.path.exists(f"/proc/{pid}") for pid in again.values())
            print(json.dumps(out), flush=True)
        """
        % (TEXT, TEXT)
    )
    path = tmp_path / "serve.py"
    path.write_text(script)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "server"))
    run = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, env=env, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["forked"] is True
    assert out["tagger_parent"] == out["me"] and out["ner_parent"] == out["pids"]["tagger"]
    assert {"Tim Cook", "Brussels"} <= set(out["names"]) and out["candidates"] > 0
    assert out["tracker"] is False  # no resource tracker process: nothing was spawned
    assert out["unavailable"] is True
    assert out["again"]["tagger"] != out["pids"]["tagger"] and out["again_parent"] == out["me"]
    assert {"Tim Cook", "Brussels"} <= set(out["again_names"])
    assert out["closed_gone"] is True


def test_close_ends_both_processes() -> None:
    worker = NlpWorker()
    pids = worker.pids
    worker.close()
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in pids.values())


def test_take_starts_new_processes_unless_the_prestarted_ones_match(monkeypatch) -> None:
    import backstory.nlp_worker as worker_module

    closed = []
    fake = type("Fake", (), {"parts": ("all",), "close": lambda self: closed.append(self)})()
    monkeypatch.setattr(worker_module, "_prestarted", fake)
    assert worker_module.take(1) is fake and worker_module._prestarted is None
    monkeypatch.setattr(worker_module, "_prestarted", fake)
    started = []
    monkeypatch.setattr(worker_module, "NlpWorker", lambda processes: started.append(processes) or "new")
    assert worker_module.take(2) == "new" and started == [2] and closed == [fake]

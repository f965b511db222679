"""The compact language identifier gives py3langid's answers from a third of its memory."""

from __future__ import annotations

import numpy as np
import pytest

from backstory import language

# Written for this test: a paragraph per language, ALL-CAPS and mixed-script lines, and text
# too short or too odd to have many features.
TEXTS = [
    "Le conseil municipal a voté mardi le budget de la nouvelle médiathèque, malgré l'opposition.",
    "Der Bundestag hat am Donnerstag ein Gesetz zur Förderung von Wärmepumpen beschlossen.",
    "El tribunal supremo rechazó el recurso de la empresa eléctrica contra la multa de la comisión.",
    "O governo português anunciou ontem um novo pacote de apoio às famílias afetadas pelas cheias.",
    "Il sindaco ha inaugurato la nuova linea del tram che collega la stazione con l'ospedale.",
    "De gemeente opent volgend jaar een nieuwe fietsenstalling onder het stationsplein.",
    "Pemerintah daerah membuka kembali pasar tradisional setelah renovasi selama enam bulan.",
    "Правительство в четверг одобрило законопроект о поддержке малого бизнеса в регионах.",
    "政府は木曜日、地方の中小企業を支援する法案を閣議決定した。",
    "THE COUNCIL VOTED ON TUESDAY TO CLOSE THE OLD BRIDGE FOR REPAIRS UNTIL NEXT SPRING.",
    "The council voted on Tuesday to close the old bridge for repairs until next spring.",
    "Breaking: 42 % — ok?",
    "x",
    "",
    "\ud800 a lone surrogate",
]


@pytest.fixture(scope="module")
def built():
    return language.CompactIdentifier.from_py3langid()


@pytest.fixture(scope="module")
def reference():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def test_every_transition_of_py3langids_dfa_is_a_longest_suffix_lookup(built) -> None:
    from py3langid.modelio import load_model

    _, _, _, nextmove, rows, _ = load_model(language._model_file())
    table = np.frombuffer(nextmove, dtype=np.uint32 if nextmove.itemsize == 4 else np.uint16).reshape(-1, 256)
    row_of = np.frombuffer(rows, dtype={2: np.uint16, 4: np.uint32, 8: np.uint64}[rows.itemsize])
    built.check(table, row_of)  # all 104,583 states × 256 bytes
    broken = table.copy()
    broken[row_of[5], ord("e")] = (int(broken[row_of[5], ord("e")]) + 1) % len(row_of)
    with pytest.raises(ValueError):
        built.check(broken, row_of, np.array([5]))


@pytest.mark.parametrize("text", TEXTS)
def test_same_answer_and_probability_as_py3langid(built, reference, text: str) -> None:
    assert built.classify(text) == reference.classify(text)
    assert np.array_equal(built.scores(text), reference._decide(text))


def test_features_are_the_dfa_walks_counts(built, reference) -> None:
    from py3langid.langid import visit_counts

    data = built.encode(TEXTS[0] + " " + TEXTS[7])
    walked = visit_counts(reference.tk_nextmove, reference._rowbase, reference.tk_output, data)
    idx, counts = built.features(data)
    assert list(zip(idx.tolist(), counts.tolist())) == list(walked.items())  # same order too


def test_holds_less_than_half_of_py3langids_memory(built, reference) -> None:
    ours = sum(a.nbytes for a in (built.keys, built.states, built.output, built.ptc, built.pc))
    theirs = reference.nb_ptc.nbytes + reference.tk_nextmove.itemsize * len(reference.tk_nextmove)
    assert ours < 12e6 and ours < theirs / 5


def test_the_weights_rebuild_py3langids_table_exactly(built, reference) -> None:
    table = np.asarray(reference.nb_ptc)
    assert built.ptc.shape == table.shape
    everything = built.ptc.rows(np.arange(table.shape[0]))
    assert everything.dtype == table.dtype and np.array_equal(everything.view(np.uint16), table.view(np.uint16))
    some = np.array([7, 0, table.shape[0] - 1, 7, 12345])  # any order, repeats
    assert np.array_equal(built.ptc.rows(some).view(np.uint16), table[some].view(np.uint16))
    assert built.ptc.rows(np.zeros(0, dtype=np.int64)).shape == (0, table.shape[1])
    assert built.ptc.nbytes < table.nbytes / 3


def test_cached_on_disk_and_read_back(tmp_path, built, monkeypatch) -> None:
    first = language.identifier(tmp_path)
    path = language.cache_path(tmp_path)
    assert path.is_file()
    # The second call reads the file: building again would fail here.
    monkeypatch.setattr(language.CompactIdentifier, "from_py3langid", None)
    again = language.identifier(tmp_path)
    assert again is not first
    for text in TEXTS[:9]:
        assert again.classify(text) == built.classify(text)


def test_an_earlier_versions_file_is_deleted_when_the_new_one_is_written(tmp_path, built) -> None:
    stale = tmp_path / "langid-0123456789abcdef.npz"
    stale.write_bytes(b"weights in an earlier recipe")
    keep = [tmp_path / "langid-notes.npz", tmp_path / "minilm-l6-0123456789abcdef.onnx", tmp_path / "readme.txt"]
    for path in keep:
        path.write_text("not an entry of this kind")
    language.identifier(tmp_path)
    assert not stale.exists()
    assert language.cache_path(tmp_path).is_file() and all(path.exists() for path in keep)
    # read back, nothing is written and nothing else is touched
    stale.write_bytes(b"weights in an earlier recipe")
    language.identifier(tmp_path)
    assert stale.exists()


def test_unwritable_cache_still_gives_an_identifier(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    found = language.identifier(blocker / "cache")
    assert found.classify(TEXTS[1])[0] == "de"


def test_a_damaged_cache_file_is_built_again(tmp_path, built) -> None:
    language.identifier(tmp_path)
    path = language.cache_path(tmp_path)
    path.write_bytes(path.read_bytes()[:1000])  # cut short, as by a full disk
    again = language.identifier(tmp_path)
    assert again.classify(TEXTS[2]) == built.classify(TEXTS[2])
    assert language.CompactIdentifier.load(path).classify(TEXTS[2]) == built.classify(TEXTS[2])  # rewritten whole

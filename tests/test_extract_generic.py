"""The clean-up names no site: its word rules fire on more than one site of the dev pages, its code
holds no CSS class or id and no dev site's name, and its structural rules work on pages written
here (issue 21)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from backstory.extract import extract_article
from backstory.extract.cleanup import LABELS, PHRASES, RULES, STRUCTURAL
from backstory_tools import default_data_dir

EXTRACT = Path(__file__).resolve().parents[1] / "server" / "backstory" / "extract"
DATA = default_data_dir()
needs_data = pytest.mark.skipif(not (DATA / "extraction").is_dir(), reason=f"no evaluation data at {DATA}")
WORD_RULES = {f"phrases:{k}" for k in PHRASES} | {"labels"}
"""The rules that name words (phrases, labels): each must be page furniture of many sites."""


def test_every_rule_is_a_word_rule_or_a_structural_one():
    assert RULES == WORD_RULES | set(STRUCTURAL)
    assert LABELS and all(re.compile(label) for label in LABELS)


def test_no_css_class_or_id_selectors_in_extraction():
    # A class or id names one site's markup: extraction reads tags and structure only.
    selector = re.compile(r"@class|@id\b|\[class|\[id\b|\.find_class|get\(\s*[\"'](?:class|id)[\"']|cssselect")
    for path in sorted(EXTRACT.glob("*.py")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            assert not selector.search(line), f"{path.name}:{n} selects by class or id: {line.strip()}"


def _dev_sites() -> dict[str, str]:
    """Each dev page's url by id."""
    with (DATA / "extraction" / "ground-truth.jsonl").open(encoding="utf-8") as fh:
        return {row["id"]: row["url"] for row in map(json.loads, filter(str.strip, fh))}


# Host labels that are also ordinary words or places, which the code may well say for other reasons.
_ORDINARY = {"space", "express", "hosted", "slate", "cleveland", "phys", "chron", "msn"}


@needs_data
def test_no_dev_site_is_named_in_extraction_code():
    labels = set()
    for url in _dev_sites().values():
        labels.update(part for part in (urlsplit(url).hostname or "").split(".")[:-1] if len(part) >= 3)
    labels -= _ORDINARY | {"www", "blog", "news", "com"}
    assert len(labels) > 40  # the check reads the dev set's hosts, not an empty list
    for path in sorted(EXTRACT.glob("*.py")):
        text = path.read_text(encoding="utf-8").lower()
        named = sorted(label for label in labels if re.search(rf"(?<![\w-]){re.escape(label)}(?![\w-])", text))
        assert not named, f"{path.name} names dev sites: {named}"


@needs_data
def test_word_rules_fire_on_more_than_one_site():
    """A phrase family or the labels whose removals on the dev pages all come from one site fit that
    site, not news pages: it must go (a rule that fires on none is unmeasured, not site-specific)."""
    from backstory_tools.quality import harness
    from backstory_tools.quality.folds import RuledPages, site_of

    rows = harness._extraction_rows(DATA, None)
    firing = RuledPages(rows).firing_sites([site_of(r["url"]) for r in rows])
    assert sum(1 for sites in firing.values() if len(sites) >= 2) >= 3  # the count works at all
    single = {rule: sites for rule, sites in firing.items() if rule in WORD_RULES and len(sites) == 1}
    assert not single, f"word rules that fire on one dev site only: {single}"


# --- the structural rules on pages written here ----------------------------------------------

_STORY = [
    "The harbour authority approved a plan on Thursday to dredge the eastern channel before the winter storms arrive.",
    "Fishing crews had complained for months that the silted channel forced them to wait for high tide to land their catch.",
    "The work will cost about two million and should be finished by the end of November, the authority said.",
]


def _page(first_paragraph: str, heading: str = "Harbour channel to be dredged before winter") -> str:
    return (
        "<html><head><title>Harbour channel to be dredged before winter | Coast Courier</title></head><body>"
        f"<article><h2>{heading}</h2><p>{first_paragraph}</p>" + "".join(f"<p>{p}</p>" for p in _STORY[1:])
        + "</article></body></html>"
    )


def test_links_with_words_of_their_own_are_prose_and_stay():
    first = (
        'Ministers from <a href="/a">Norway</a>, <a href="/b">Sweden</a> and <a href="/c">Denmark</a> '
        "met the harbour authority on Thursday, which approved a plan to dredge the eastern channel."
    )
    text = extract_article(_page(first), "https://coast.example/2024/06/harbour-channel").text
    assert "Norway, Sweden and Denmark met the harbour authority" in text


@pytest.mark.parametrize(
    "heading, dropped",
    [
        ("Harbour channel to be dredged before winter", True),
        ("Harbour channel to be dredged before winter - video", True),  # a word added
        ("Harbour channel to be dredged before", True),  # a word cut
        ("What the fishing crews want next", False),  # a heading of its own
    ],
)
def test_a_heading_that_is_the_headline_goes(heading: str, dropped: bool):
    text = extract_article(_page(_STORY[0], heading), "https://coast.example/2024/06/harbour-channel").text
    assert text.startswith(_STORY[0]) is dropped, text[:120]
    assert (heading in text) is not dropped

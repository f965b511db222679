"""Bounded work (issue 19, finding 3) and three smaller findings of item 8.

* No input holds the server for long: every pathological input is answered with a result, a 4xx
  or a 503 within the analysis deadline, and a huge text in flight does not stall small requests.
* A deadline that passes gives a clear 503 and stores nothing.
* Identical requests in flight are analyzed once (counted by the pipeline's analyzer).
* Word counts for Chinese and Japanese, a NUL inside a name, a bare ``<p>`` fragment.

Real parts throughout: the app, the models, the spaCy processes, a SQLite archive.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import threading
import time
from typing import AsyncIterator, Iterator

import httpx
import pytest
from litestar.testing import AsyncTestClient

from backstory.story import StoryRecord, derive
from backstory.config import Settings

from ..conftest import BASE_URL, wait_ready
from ..pages import AI_PARAGRAPHS, AI_TITLE, CHIP_PARAGRAPHS, SPORT_PARAGRAPHS

ANALYZE = "/api/v1/analyze"
DEADLINE = 10.0  # seconds: the test server's analysis deadline
SLACK = 5.0  # seconds on top for what the deadline does not cover (the body, the response)


@pytest.fixture
async def bounded(settings: Settings, models) -> AsyncIterator[AsyncTestClient]:
    from backstory.app import create_app

    app = create_app(settings.replace(analysis_deadline=DEADLINE), models=models)
    async with AsyncTestClient(app=app, base_url=BASE_URL, timeout=120) as c:
        await wait_ready(c)
        yield c
        await _settled(c)


def pipeline_of(client: AsyncTestClient):
    return client.app.state.backstory.pipeline


class LiveServer:
    """The real app under uvicorn on 127.0.0.1 in a thread of its own: requests really run at
    the same time (the AsyncTestClient hands one request at a time to the app)."""

    def __init__(self, settings: Settings, models) -> None:
        import uvicorn

        from backstory.app import create_app

        self.app = create_app(settings, models=models)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        end = time.monotonic() + 120
        while not (self.server.started and self.server.servers):
            assert self.thread.is_alive() and time.monotonic() < end, "the server did not start"
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.server.servers[0].sockets[0].getsockname()[1]}"
        while httpx.get(f"{self.url}/readyz").status_code != 200:
            assert time.monotonic() < end, "the server never became ready"
            time.sleep(0.05)

    @property
    def pipeline(self):
        return self.app.state.backstory.pipeline

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=120)

    def close(self) -> None:
        end = time.monotonic() + 60
        while self.pipeline.workers.active and time.monotonic() < end:  # one past its deadline ends later
            time.sleep(0.05)
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture
def live(settings: Settings, models) -> Iterator[LiveServer]:
    server = LiveServer(settings.replace(analysis_deadline=DEADLINE), models)
    yield server
    server.close()


async def _settled(client: AsyncTestClient, timeout: float = 60.0) -> None:
    """Wait until no analysis runs (one past its deadline finishes in the background)."""
    end = time.monotonic() + timeout
    while pipeline_of(client).workers.active and time.monotonic() < end:
        await asyncio.sleep(0.05)


def prose(chars: int, seed: int = 0) -> str:
    """Real sentences of the test pages, shuffled into paragraphs, ``chars`` long."""
    rng = random.Random(seed)
    pool = AI_PARAGRAPHS + CHIP_PARAGRAPHS + SPORT_PARAGRAPHS
    out, size = [], 0
    while size < chars:
        p = rng.choice(pool)
        out.append(p)
        size += len(p) + 2
    return "\n\n".join(out)[:chars]


def capitalised_names(chars: int) -> str:
    rng = random.Random(3)
    first = ["Anna", "Boris", "Carla", "Dmitri", "Elena", "Farid", "Greta", "Hiro", "Ivan", "Julia"]
    out, size = [], 0
    while size < chars:
        surname = "".join(rng.choice("bcdfghklmnprstvz") + rng.choice("aeiou") for _ in range(3)).title()
        s = f"{rng.choice(first)} {surname} met {rng.choice(first)} Q{rng.randrange(10**6)} in Port{surname}. "
        out.append(s)
        size += len(s)
    return "".join(out)[:chars]


def short_links_html(n: int) -> str:
    return "<html><body>" + "".join(f'<a href="/l{i}">l{i}</a> ' for i in range(n)) + "</body></html>"


PATHOLOGICAL = {
    "prose of 950,000 characters": {"text": prose(950_000)},
    "'link ' * 100,000": {"text": "link " * 100_000},
    "100,000 short links in HTML": {"html": short_links_html(100_000)},
    "one huge word": {"text": "a" * 950_000},
    "many short lines": {"text": "ab\n" * 300_000},
    "many capitals lines": {"text": "AB CDE FGH\n" * 85_000},
    "many Title Case lines": {"text": "Ab Cde Fgh Ijk\nthe fgh of ijk. " * 30_000},
    "many capitalised names": {"text": capitalised_names(950_000)},
}


@pytest.mark.parametrize("name", list(PATHOLOGICAL))
async def test_pathological_input_is_answered_within_the_deadline(bounded: AsyncTestClient, name: str) -> None:
    body = {"url": f"https://bounded.example/{abs(hash(name))}", "archive": False, **PATHOLOGICAL[name]}
    start = time.monotonic()
    response = await bounded.post(ANALYZE, json=body)
    elapsed = time.monotonic() - start
    assert response.status_code == 200 or 400 <= response.status_code < 500 or response.status_code == 503, response.text[:300]
    # The deadline is the server's promise (past it the answer is a 503), so this holds on a
    # loaded machine too; without bounded work these inputs took 15-40 s.
    assert elapsed < DEADLINE + SLACK, f"{name}: {elapsed:.1f} s"
    if response.status_code == 200:
        payload = response.json()
        if "text" in PATHOLOGICAL[name]:
            assert payload["text"] == PATHOLOGICAL[name]["text"]  # returned whole, however long
        limit = pipeline_of(bounded).settings.max_analysis_chars
        for item in payload["entities"] + payload["keyphrases"]:  # summarised by the first part of the text
            assert all(m["end"] <= limit for m in item["mentions"])


def test_the_analyzed_part_is_a_prefix_cut_between_words() -> None:
    from backstory.pipeline import analyzed_part

    text = prose(120_000)
    part = analyzed_part(text, 50_000, 1_000_000)
    assert text.startswith(part) and 49_000 < len(part) <= 50_000
    assert text[len(part)].isspace() and not part[-1].isspace()  # no word cut in two
    assert analyzed_part("short text", 50_000, 10_000) == "short text"
    lines = "ab\n" * 100_000  # 2 tokens a line: the token limit cuts first
    assert 9_000 <= len(analyzed_part(lines, 50_000, 10_000)) <= 15_000
    assert analyzed_part("a" * 100_000, 50_000, 10_000) == "a" * 50_000  # one word: cut anyway


async def test_long_text_is_returned_whole_and_summarised_by_its_first_part(bounded: AsyncTestClient) -> None:
    head = prose(8_000, seed=1)
    tail = " ".join(["Ingrid Zapolska of Vantorbeck Holdings spoke in Quellmoor."] * 2_000)
    text = head + "\n\n" + prose(60_000, seed=2) + "\n\n" + tail
    response = await bounded.post(ANALYZE, json={"url": "https://bounded.example/long", "text": text})
    assert response.status_code == 200, response.text[:300]
    payload = response.json()
    assert payload["text"] == text  # the whole text is returned (and archived)
    names = {e["name"] for e in payload["entities"]}
    assert "Sam Altman" in names or "Altman" in names  # from the first part
    assert not any("Zapolska" in n or "Vantorbeck" in n for n in names)  # past the analyzed part
    limit = pipeline_of(bounded).settings.max_analysis_chars
    for item in payload["entities"]:
        for m in item["mentions"]:
            assert m["end"] <= limit and payload["text"][m["start"]:m["end"]]


async def test_a_passed_deadline_is_a_clear_503_and_nothing_is_stored(settings: Settings, models) -> None:
    from backstory.app import create_app

    app = create_app(settings.replace(analysis_deadline=0.001), models=models)
    async with AsyncTestClient(app=app, base_url=BASE_URL, timeout=120) as client:
        await wait_ready(client)
        response = await client.post(ANALYZE, json={"url": "https://bounded.example/late", "text": prose(20_000)})
        assert response.status_code == 503, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        problem = response.json()
        assert "deadline" in problem["detail"] and "nothing was stored" in problem["detail"]
        await _settled(client)
        listing = (await client.get("/api/v1/stories")).json()
        assert listing["total"] == 0 and listing["stories"] == []


async def test_a_huge_text_in_flight_does_not_stall_small_requests(live: LiveServer) -> None:
    """The stall test. Bound: while a 950,000-character text is analyzed, each of 4 small
    requests (three paragraphs each) answers within 8 × the median latency of the same kind of
    request with nothing else in flight, plus 4 s. Before the fix a small request waited for the
    huge analysis (13 s measured; the huge one took 15-45 s); now that holds the language workers
    for about a second."""
    small = [" ".join(AI_PARAGRAPHS[i % 6] for i in range(k, k + 3)) for k in range(8)]
    async with live.client() as http:

        async def timed(i: int) -> float:
            start = time.monotonic()
            response = await http.post(ANALYZE, json={"url": f"https://small.example/{i}", "text": small[i], "archive": False})
            assert response.status_code == 200, response.text
            return time.monotonic() - start

        await timed(0)  # warm: the first request of an app pays one-time costs
        alone = statistics.median([await timed(i) for i in (1, 2, 3)])
        bound = 8 * alone + 4.0

        before = live.pipeline.analyzer.analyzed
        huge = asyncio.ensure_future(
            http.post(ANALYZE, json={"url": "https://huge.example/", "text": prose(950_000, seed=9), "archive": False})
        )
        end = time.monotonic() + 30
        while live.pipeline.analyzer.analyzed == before and not huge.done() and time.monotonic() < end:
            await asyncio.sleep(0.005)  # until the huge text has reached the language stages
        assert not huge.done(), "the huge request ended before the small ones were sent"
        during = [await timed(i) for i in (4, 5, 6, 7)]
        response = await huge
    assert response.status_code in (200, 503), response.text[:300]
    assert max(during) <= bound, f"small requests took {during} s with a huge one in flight (alone {alone:.2f} s)"


async def test_identical_requests_in_flight_are_analyzed_once(live: LiveServer) -> None:
    body = {"url": "https://same.example/story", "title": AI_TITLE, "text": "\n\n".join(AI_PARAGRAPHS) + "\n\n" + prose(30_000)}
    before = live.pipeline.analyzer.analyzed
    async with live.client() as http:
        responses = await asyncio.gather(*(http.post(ANALYZE, json=body) for _ in range(12)))
        assert [r.status_code for r in responses] == [200] * 12
        assert live.pipeline.analyzer.analyzed - before == 1
        payloads = [r.json() for r in responses]
        assert len({p["story_id"] for p in payloads}) == 1
        assert all(p["entities"] == payloads[0]["entities"] and p["text"] == body["text"] for p in payloads)
        assert (await http.get("/api/v1/stories")).json()["total"] == 1


async def test_a_failure_of_the_shared_analysis_reaches_every_waiter(live: LiveServer) -> None:
    menu = "".join(f"<li><a href='/section/{i}'>Section {i}</a></li>" for i in range(3000))
    body = {"url": "https://same.example/menu", "html": f"<html><body><nav><ul>{menu}</ul></nav></body></html>"}
    before = live.pipeline.analyzer.extracted
    async with live.client() as http:
        responses = await asyncio.gather(*(http.post(ANALYZE, json=body) for _ in range(6)))
    assert [r.status_code for r in responses] == [422] * 6
    assert all(r.json()["detail"] == responses[0].json()["detail"] for r in responses)
    assert live.pipeline.analyzer.extracted - before == 1


async def test_a_waiter_that_goes_away_does_not_cancel_the_analysis_for_the_others(settings: Settings, models) -> None:
    from backstory.archive import open_archive
    from backstory.pipeline import Pipeline
    from backstory.schemas import AnalyzeRequest

    archive = await open_archive(settings)
    pipeline = Pipeline(settings, models, archive)
    try:
        request = AnalyzeRequest(url="https://same.example/gone", text="\n\n".join(CHIP_PARAGRAPHS) + "\n\n" + prose(20_000))
        tasks = [asyncio.ensure_future(pipeline.analyze(request)) for _ in range(4)]
        end = time.monotonic() + 30
        while pipeline.analyzer.extracted == 0 and time.monotonic() < end:
            await asyncio.sleep(0.005)  # the one analysis has started; all four wait for it
        tasks[0].cancel()  # the caller whose request started it goes away (its client disconnected)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(results[0], asyncio.CancelledError)
        assert all(r.story_id == results[1].story_id and r.entities == results[1].entities for r in results[1:])
        assert any(e.name == "Mark Zuckerberg" for e in results[1].entities)
        assert pipeline.analyzer.analyzed == 1 and pipeline.analyzer.extracted == 1
    finally:
        pipeline.close()
        await archive.close()


# --- item 8: word counts for every script, NUL inside a name, a bare <p> fragment -------------

CHINESE = (
    "江南水乡的清晨，薄雾笼罩着古老的石桥，船夫摇着木桨穿过狭窄的河道。两岸的白墙黑瓦倒映在水中，"
    "早起的老人坐在门前喝茶，孩子们背着书包跑向学校。"
)  # 64 Han characters and 6 punctuation marks, written for this test
JAPANESE = "駅前の小さな本屋は、今年で開店五十年を迎えました。店主の田中さんは毎朝六時に店を開けます。"


async def test_chinese_and_japanese_words_and_reading_time(client: AsyncTestClient) -> None:
    text = CHINESE * 34  # 2,176 Han characters: such a text was counted as 1 word, 1 minute
    response = await client.post(ANALYZE, json={"url": "https://zh.example/story", "text": text})
    assert response.status_code == 200, response.text
    payload = response.json()
    assert payload["word_count"] == 64 * 34
    assert payload["reading_minutes"] == 10  # 2,176 / 230 a minute, rounded up
    response = await client.post(ANALYZE, json={"url": "https://ja.example/story", "text": JAPANESE * 20})
    payload = response.json()
    # Kanji and kana are a word each; "、" and "。" are not.
    assert payload["word_count"] == (len(JAPANESE) - 3) * 20
    # The archive counts the same way (a bulk import leaves the count to it).
    stored = derive(StoryRecord(story_id="", url="https://zh.example/x", canonical_url="", title=None, text=CHINESE))
    assert stored.word_count == 64


def test_other_scripts_keep_counting_words_by_spaces() -> None:
    from backstory.words import word_count

    for text in ("Sam Altman met officials — in Brussels.", "Москва — столица России.", "서울은 한국의 수도입니다."):
        assert word_count(text) == len(text.split())  # as before; Hangul separates its words with spaces
    assert word_count("東京でiPhone 15を買いました。") == 11  # 東 京 で, iPhone, 15, を 買 い ま し た


async def test_a_nul_inside_a_name_does_not_split_it(client: AsyncTestClient) -> None:
    text = "\n\n".join(AI_PARAGRAPHS).replace("Sam Altman", "Sam Alt\x00man", 1).replace("Microsoft", "Micro\x01soft")
    response = await client.post(ANALYZE, json={"url": "https://nul.example/story", "text": text})
    assert response.status_code == 200, response.text
    payload = response.json()
    # Control characters are removed before anything reads the text: the text returned is the
    # text analyzed, and every offset points into it.
    assert payload["text"] == "\n\n".join(AI_PARAGRAPHS)
    names = {e["name"] for e in payload["entities"]}
    assert "Sam Altman" in names and not any(n in names for n in ("Sam Alt", "Alt", "man"))
    assert "Microsoft" in names
    altman = next(e for e in payload["entities"] if e["name"] == "Sam Altman")
    assert {payload["text"][m["start"]:m["end"]] for m in altman["mentions"]} <= {"Sam Altman", "Altman"}


async def test_a_bare_paragraph_fragment_is_analyzed(client: AsyncTestClient) -> None:
    prose_900 = (
        "The harbour board of Kestrel Bay met on Thursday evening to settle a dispute over the old "
        "ferry pier, which has been closed since a winter storm cracked two of its concrete pillars. "
        "Engineers told the board that repairs would cost far less than a new pier, but fishermen "
        "argued that the closure had already cost them a season of landings at the eastern quay. "
        "After three hours of debate the board voted to reopen the northern half of the pier in "
        "spring, while divers survey the damaged pillars and the town council looks for money to "
        "rebuild the rest. Marta Olsen, who chairs the board, said the vote was a compromise that "
        "would let boats land their catch again without putting anyone at risk. The council will "
        "publish the engineers' report next week, and residents can comment on the plans until "
        "the end of the month at the library on Harbour Street."
    )
    response = await client.post(ANALYZE, json={"url": "https://fragment.example/pier", "html": f"<p>{prose_900}</p>"})
    assert response.status_code == 200, response.text
    payload = response.json()
    assert payload["text"] == prose_900
    assert payload["word_count"] == len(prose_900.split())

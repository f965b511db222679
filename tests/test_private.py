"""Private stories, on both archive backends: a private story's owner is part of its identity (one
URL = one team story + one private story per member), copies never merge across owners, and every
read — search, get, related (and its reasons), duplicates, export — shows a private story to its
owner only; through the archive, then through the API (the response cache included)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from backstory import schemas
from backstory.archive.transfer import compare, copy_archive
from backstory.config import Settings
from backstory.duplicates import simhash
from backstory.story import OPERATOR, StoryRecord, story_id_for
from backstory.tokens import CHECK_EVERY, TokenStore

from .conftest import assert_problem, story_count
from .pages import FIRE_A
from .test_archive import CHESS, RIVER, entity, record

ALICE, BOB = "token:1", "token:2"
URL = "https://news.example/vell-flood"
# Three reports of one flood, none a copy of another: the private one alone names the mill's owner.
SECRET = ("Engineers inspecting the Vell embankment in Lorrington found that the Zorvath Mill sluice had been left "
          "open during the storm, according to notes seen by this reporter. Mayor Ada Quenby declined to comment "
          "on the Zorvath Mill findings before the county inquiry, and the engineer Tomas Reyvik said the sluice "
          "keys were held by the mill's owner.")
TEAM = ("The river Vell flooded Lorrington's market square again after heavy rain, and Mayor Ada Quenby opened the "
        "town hall to families forced from their homes. The county engineer Tomas Reyvik said pumps ran all night "
        "and that the embankment would be checked once the water fell.")
QUERY = ("Lorrington counts the cost of the Vell flood: Mayor Ada Quenby and the county engineer Tomas Reyvik toured "
         "the embankment near the Zorvath Mill on Thursday as shops on Bridge Street reopened and insurers began "
         "to assess claims from the market square.")
NAMES = [entity("Ada Quenby", "PERSON"), entity("Tomas Reyvik", "PERSON"), entity("Lorrington", "GPE")]


@pytest.fixture
async def archive(new_archive):
    async with new_archive() as a:
        yield a


def ids(items) -> set[str]:
    return {item.story_id for item in items}


# ---- the archive ------------------------------------------------------------------------------
async def test_one_url_is_a_team_story_and_a_private_story_per_member(archive) -> None:
    team = await archive.upsert(record(URL, RIVER), "cli")
    mine = await archive.upsert(record(URL, RIVER, owner=ALICE), ALICE)
    theirs = await archive.upsert(record(URL, RIVER, owner=BOB), BOB)
    assert len({team.story_id, mine.story_id, theirs.story_id}) == 3 and await archive.count() == 3
    assert (team.story_id, mine.story_id) == (story_id_for(URL), story_id_for(URL, ALICE))
    assert await archive.story_at(URL) == team.story_id and await archive.story_at(URL, ALICE) == mine.story_id
    again = await archive.upsert(record(URL, RIVER + " Updated at noon.", owner=ALICE), ALICE)
    assert again.story_id == mine.story_id and await archive.count() == 3  # her story, updated

    assert await archive.get(mine.story_id) is None and await archive.get(mine.story_id, BOB) is None
    assert (await archive.get(mine.story_id, ALICE)).owner == ALICE
    assert await archive.get(team.story_id, BOB) is not None  # the team archive is everyone's to read
    for viewer, expected in ((None, {team.story_id}), (BOB, {team.story_id, theirs.story_id}),
                             (ALICE, {team.story_id, mine.story_id})):
        listed, total = await archive.search(None, 10, 0, viewer=viewer)
        found, found_total = await archive.search("Lorrington", 10, 0, viewer=viewer)
        assert ids(listed) == ids(found) == expected and total == found_total == len(expected)
        assert {s.story_id: s.visibility for s in found}[team.story_id] == "team"
        assert ids([r async for r in archive.export(viewer)]) == expected
    assert ids([r async for r in archive.export(OPERATOR)]) == {team.story_id, mine.story_id, theirs.story_id}


async def test_copies_never_merge_across_owners(archive) -> None:
    team = await archive.upsert(record("https://one.example/vell", RIVER))
    mine = await archive.upsert(record("https://two.example/copy", RIVER, owner=ALICE))  # a copy of it, by text
    assert mine.story_id != team.story_id and mine.owner == ALICE and mine.text == RIVER
    assert await archive.story_at("https://two.example/copy") is None  # the team's URLs are as they were
    assert await archive.find_duplicate("https://x.example/", simhash(RIVER), RIVER) == team.story_id
    assert await archive.find_duplicate("https://x.example/", simhash(RIVER), RIVER, ALICE) == mine.story_id
    assert await archive.find_duplicate("https://x.example/", simhash(RIVER), RIVER, BOB) is None
    hidden = await archive.upsert(record("https://three.example/chess", CHESS, owner=ALICE))
    public = await archive.upsert(record("https://four.example/chess", CHESS))  # never merged into her story
    assert public.story_id != hidden.story_id and public.owner == "" and await archive.count() == 4
    assert (await archive.upsert(record("https://five.example/again", RIVER, owner=ALICE))).story_id == mine.story_id
    # An import naming a team story's id for a private record gets an id of its own, never the team story.
    forged = await archive.import_record(StoryRecord(story_id=team.story_id, url="https://six.example/",
                                                     canonical_url="https://six.example/", text=CHESS + " Forged.",
                                                     owner=BOB))
    assert forged.story_id != team.story_id and (await archive.get(team.story_id)).text == RIVER


async def test_related_shows_each_viewer_only_what_it_may_see(new_archive) -> None:
    async with new_archive() as archive:
        secret = await archive.upsert(record("https://notes.example/sluice", SECRET, owner=ALICE, entities=[
            *NAMES, entity("Zorvath Mill", "ORG")]), ALICE)
        team = await archive.upsert(record("https://news.example/flood", TEAM, entities=NAMES))
    query = record("https://elsewhere.example/visit", QUERY, entities=[*NAMES, entity("Zorvath Mill", "ORG")])
    async with new_archive() as archive:  # reopened: the index loaded from storage knows each story's owner
        for_alice = {r.story_id: r for r in await archive.related(query, viewer=ALICE)}
        assert set(for_alice) == {secret.story_id, team.story_id}
        assert "Zorvath Mill" in for_alice[secret.story_id].shared_entities  # (so the check below can fail)
        for viewer in (None, BOB):
            for_other = await archive.related(query, viewer=viewer)
            assert ids(for_other) == {team.story_id}
            assert all("Zorvath Mill" not in r.shared_entities and "zorvath" not in " ".join(r.shared_keyphrases)
                       for r in for_other)
        # Her own story's related list shows the team story; the team story's, to Bob, not hers.
        assert ids(await archive.related(secret, viewer=ALICE)) == {team.story_id}
        assert ids(await archive.related(team, viewer=BOB)) == set()
        assert ids(await archive.related(team, viewer=ALICE)) == {secret.story_id}


async def test_another_processs_private_story_reaches_this_index_as_private(new_archive) -> None:
    from backstory.archive.feed import Follower

    query = record("https://elsewhere.example/visit", QUERY, entities=[*NAMES, entity("Zorvath Mill", "ORG")])
    async with new_archive() as here, new_archive() as there:  # two processes' archives on one storage
        follower = Follower(here, interval=0.1)
        secret = await there.upsert(record("https://notes.example/sluice", SECRET, owner=ALICE,
                                           entities=[*NAMES, entity("Zorvath Mill", "ORG")]), ALICE)
        assert await follower.catch_up() >= 1  # read from the change feed, owner included
        assert ids(await here.related(query, viewer=ALICE)) == {secret.story_id}
        assert ids(await here.related(query, viewer=BOB)) == set()
        assert await here.find_duplicate("https://x.example/", simhash(SECRET), SECRET) is None
        assert await here.find_duplicate("https://x.example/", simhash(SECRET), SECRET, ALICE) == secret.story_id


async def test_deletes_never_reach_another_members_private_story(archive) -> None:
    mine = await archive.upsert(record(URL, RIVER, owner=ALICE), ALICE)
    assert await archive.delete_claimed(mine.story_id, BOB) == "missing"  # not "forbidden": it is not there, for Bob
    assert not await archive.delete(mine.story_id, viewer=BOB)  # an admin's delete
    assert not await archive.delete(mine.story_id, viewer=None)
    assert await archive.added_by(mine.story_id) == [ALICE]
    assert await archive.delete_claimed(mine.story_id, ALICE) == "deleted"
    assert await archive.get(mine.story_id, OPERATOR) is None
    # A private story is its owner's, whoever stores it (an export restored from the command line).
    restored = await archive.import_record(record(URL, RIVER, owner=ALICE), "cli")
    assert await archive.added_by(restored.story_id) == [ALICE]


async def test_owners_their_urls_tokens_and_claims_survive_a_migration(new_archive) -> None:
    async with new_archive("source") as source, new_archive("target") as target, new_archive("taken") as taken:
        alice = await TokenStore(source.storage).create("alice")  # token:1 (ALICE)
        await TokenStore(source.storage).create("bob")  # token:2 (BOB)
        team = await source.upsert(record(URL, RIVER), BOB)
        await source.claim(team.story_id, ALICE)
        mine = await source.upsert(record(URL, RIVER, owner=ALICE), ALICE)
        await source.upsert(record("https://mirror.example/vell", RIVER, owner=ALICE))  # her alias of her story
        theirs = await source.upsert(record(URL, CHESS, owner=BOB), BOB)
        # Into an archive with a token of its own, nothing is copied: its token:1 is someone else.
        await TokenStore(taken.storage).create("mallory")
        with pytest.raises(ValueError, match="tokens of its own"):
            await copy_archive(source, taken)
        assert await taken.count() == 0

        copied = await copy_archive(source, target)
        assert (copied.stories, copied.tokens, copied.claims) == (3, 2, 4) and (await compare(source, target)).identical
        again = await copy_archive(source, target)  # resumed: nothing new
        assert (again.stories, again.tokens, again.skipped) == (0, 0, 3)
        members = TokenStore(target.storage)
        assert (await members.caller(f"Bearer {alice}")).who == ALICE  # the same secret, the same member
        assert await target.added_by(team.story_id) == await source.added_by(team.story_id)
        assert set(await target.added_by(team.story_id)) == {ALICE, BOB}
        await members.create("carol")
        assert await members.who("carol") == "token:3"  # a new token takes no copied id
        assert await target.story_at(URL) == team.story_id
        assert await target.story_at(URL, ALICE) == mine.story_id and await target.story_at(URL, BOB) == theirs.story_id
        assert await target.story_at("https://mirror.example/vell", ALICE) == mine.story_id
        assert await target.story_at("https://mirror.example/vell") is None
        assert await target.get(mine.story_id, BOB) is None and (await target.get(mine.story_id, ALICE)).owner == ALICE


# ---- the API ----------------------------------------------------------------------------------
@pytest.fixture
def settings(archive_urls) -> Settings:
    return Settings(archive=archive_urls("archive"), allowed_networks=["127.0.0.0/8"])


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def analyze(client: AsyncTestClient, secret: str | None, i: int = 0, **body) -> dict:
    title, text = FIRE_A[i]
    response = await client.post("/api/v1/analyze", json={"url": f"https://news.example/fire/{i}", "title": title,
                                                           "text": text, **body},
                                 headers=bearer(secret) if secret else {})
    assert response.status_code == 200, response.text
    return response.json()


async def members(client: AsyncTestClient) -> tuple[str, str, str, str]:
    tokens: TokenStore = client.app.state.backstory.tokens
    made = [await tokens.create("alice", "write"), await tokens.create("bob", "write"),
            await tokens.create("carol", "write", visibility="private"), await tokens.create("boss", "admin")]
    await asyncio.sleep(CHECK_EVERY + 0.2)  # the server notices new tokens within this
    return tuple(made)


async def listed(client: AsyncTestClient, secret: str, q: str | None = None) -> set[str]:
    response = await client.get("/api/v1/stories", params={"q": q} if q else {}, headers=bearer(secret))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == len(body["stories"])
    return {s["story_id"] for s in body["stories"]}


def related_ids(items: list[dict]) -> set[str]:
    return {r["story_id"] for r in items}


async def test_a_private_story_is_seen_only_by_its_owner_through_every_endpoint(client: AsyncTestClient) -> None:
    alice, bob, _carol, boss = await members(client)
    mine = await analyze(client, alice, 0, visibility="private")
    assert (mine["visibility"], mine["archived"], mine["added_by"]) == ("private", True, ["alice"])
    secret = mine["story_id"]
    assert await listed(client, alice) == await listed(client, alice, "Paradise Valley") == {secret}

    # Bob reads her very page (her analysis still in the response cache) without keeping it: not
    # her story, not archived, no cache hit of hers.
    peek = await analyze(client, bob, 0, archive=False)
    assert peek["story_id"] != secret and not peek["archived"] and not peek["cached"]
    assert secret not in related_ids(peek["related"])
    # ... and keeps it: a team story of his own, the cache hit his (same page, same owner), not hers.
    kept = await analyze(client, bob, 0)
    assert kept["story_id"] != secret and kept["visibility"] == "team" and kept["added_by"] == ["bob"]
    assert kept["cached"] and (await analyze(client, bob, 0))["story_id"] == kept["story_id"]

    for other in (bob, boss):  # an admin reads the team archive like anyone: no one else's private stories
        assert await listed(client, other) == {kept["story_id"]}
        assert await listed(client, other, "Paradise Valley") == {kept["story_id"]}
        assert_problem(await client.get(f"/api/v1/stories/{secret}", headers=bearer(other)), 404)
        assert_problem(await client.get(f"/api/v1/stories/{secret}/related", headers=bearer(other)), 404)
        assert_problem(await client.delete(f"/api/v1/stories/{secret}", headers=bearer(other)), 404)
    assert await listed(client, alice, "Paradise Valley") == {secret, kept["story_id"]}
    # A related team story: her private one is not among its related stories, for Bob, anywhere.
    fire = await analyze(client, bob, 1)
    assert secret not in related_ids(fire["related"]) and kept["story_id"] in related_ids(fire["related"])
    for path in (f"/api/v1/stories/{fire['story_id']}", f"/api/v1/stories/{fire['story_id']}/related"):
        for other in (bob, boss):
            shown = (await client.get(path, headers=bearer(other))).json()["related"]
            assert secret not in related_ids(shown)
        assert secret in related_ids((await client.get(path, headers=bearer(alice))).json()["related"])
    assert (await client.get(f"/api/v1/stories/{secret}", headers=bearer(alice))).json()["visibility"] == "private"


async def test_one_url_three_stories_a_tokens_default_and_delete_rights(client: AsyncTestClient) -> None:
    alice, bob, carol, boss = await members(client)
    assert (await client.get("/api/v1/me", headers=bearer(carol))).json()["visibility"] == "private"
    team = await analyze(client, bob, 0)
    mine = await analyze(client, alice, 0, visibility="private")
    hers = await analyze(client, carol, 0)  # her token's default: private
    assert hers["visibility"] == "private" and hers["added_by"] == ["carol"]
    assert len({team["story_id"], mine["story_id"], hers["story_id"]}) == 3
    shared = await analyze(client, carol, 0, visibility="team")  # the request's visibility wins
    assert shared["story_id"] == team["story_id"] and shared["added_by"] == ["bob", "carol"]
    assert await listed(client, boss) == {team["story_id"]}
    assert await listed(client, alice) == {team["story_id"], mine["story_id"]}
    assert await listed(client, carol) == {team["story_id"], hers["story_id"]}
    token_of = {t.name: f"token:{t.id}" for t in await client.app.state.backstory.tokens.list()}
    everything = [r async for r in client.app.state.backstory.archive.export(OPERATOR)]
    assert sorted(r.owner for r in everything) == sorted(["", token_of["alice"], token_of["carol"]])

    assert (await client.delete(f"/api/v1/stories/{mine['story_id']}", headers=bearer(alice))).status_code == 204
    assert_problem(await client.get(f"/api/v1/stories/{mine['story_id']}", headers=bearer(alice)), 404)
    assert (await client.delete(f"/api/v1/stories/{team['story_id']}", headers=bearer(boss))).status_code == 204
    assert await listed(client, carol) == {hers["story_id"]}  # hers outlives the team story of its URL


async def test_without_tokens_a_private_story_is_refused(client: AsyncTestClient) -> None:
    title, text = FIRE_A[0]
    refused = await client.post("/api/v1/analyze", json={"url": "https://news.example/fire/0", "title": title,
                                                          "text": text, "visibility": "private"})
    assert "tokens" in assert_problem(refused, 400)["detail"]
    assert await story_count(client) == 0
    assert (await analyze(client, None, 0, visibility="team"))["visibility"] == "team"
    assert_problem(await client.post("/api/v1/analyze", json={"url": "https://news.example/", "text": text,
                                                              "visibility": "secret"}), 400)


async def test_an_uploaded_import_is_filed_as_its_sender_says_never_among_anothers(client: AsyncTestClient) -> None:
    from .test_import_api import finished, jsonl, send

    alice, bob, _carol, _boss = await members(client)
    token_of = {t.name: f"token:{t.id}" for t in await client.app.state.backstory.tokens.list()}
    title, text = FIRE_A[0]
    article = jsonl([{"url": "https://wire.example/fire/0", "title": title, "text": text}])
    report = await finished(client, await send(client, article, "application/x-ndjson", token=alice,
                                               params={"visibility": "private"}), token=alice)
    assert (report["status"], report["imported"]) == ("done", 1)
    (mine,) = await listed(client, alice)
    assert await listed(client, bob) == set()
    assert (await client.get(f"/api/v1/stories/{mine}", headers=bearer(alice))).json()["visibility"] == "private"
    # Bob uploads an export line claiming to be Alice's private story of that URL (her story's very
    # id): it becomes Bob's team story, under the id its URL has among team stories; hers is untouched.
    other_title, other_text = FIRE_A[1]
    forged = StoryRecord(story_id=mine, url="https://wire.example/fire/0", canonical_url="https://wire.example/fire/0",
                         title=other_title, text=other_text, owner=token_of["alice"], analysed=False)
    report = await finished(client, await send(client, jsonl([msgspec.to_builtins(forged)]),
                                               "application/x-ndjson", token=bob), token=bob)
    assert (report["status"], report["imported"]) == ("done", 1), report
    assert await listed(client, bob) == {story_id_for("https://wire.example/fire/0")}
    kept = (await client.get(f"/api/v1/stories/{mine}", headers=bearer(alice))).json()
    assert (kept["title"], kept["added_by"]) == (title, ["alice"])


# ---- the command line -------------------------------------------------------------------------
def test_a_private_import_and_an_export_for_one_member(archive_urls, tmp_path: Path) -> None:
    from backstory.cli import main

    archive = archive_urls("cli")
    lines = tmp_path / "a.jsonl"
    lines.write_text("".join(json.dumps({"url": f"https://news.example/fire/{i}", "title": title, "text": text}) + "\n"
                             for i, (title, text) in enumerate(FIRE_A[:2])))
    for name in ("dana", "eve"):
        assert main(["tokens", "create", name, "--archive", archive]) == 0
    with pytest.raises(SystemExit, match="needs --as"):
        main(["import", str(lines), "--private", "--archive", archive])
    assert main(["import", str(lines), "--private", "--as", "dana", "--archive", archive]) == 0
    assert main(["import", str(lines), "--as", "eve", "--archive", archive]) == 0  # the same URLs, as team stories

    def exported(*extra: str) -> list[dict]:
        out = tmp_path / "out.jsonl"
        assert main(["export", str(out), "--archive", archive, *extra]) == 0
        return [json.loads(line) for line in out.read_text().splitlines()]

    everything, for_eve, for_dana = exported(), exported("--as", "eve"), exported("--as", "dana")
    assert len(everything) == 4 and len(for_dana) == 4 and len(for_eve) == 2
    assert {r["owner"] for r in for_eve} == {""} and {r["owner"] for r in everything} == {"", "token:1"}
    # The export re-imported elsewhere keeps the owners (lossless); --visibility team publishes them.
    copy = archive_urls("copy")
    full = tmp_path / "full.jsonl"
    full.write_text("".join(json.dumps(r) + "\n" for r in everything))
    assert main(["import", str(full), "--archive", copy]) == 0
    assert main(["export", str(tmp_path / "again.jsonl"), "--archive", copy]) == 0
    again = [json.loads(line) for line in (tmp_path / "again.jsonl").read_text().splitlines()]
    assert sorted((r["story_id"], r["owner"]) for r in again) == sorted((r["story_id"], r["owner"]) for r in everything)

"""Named API tokens, on both archive backends: 401 and 403 with their headers, scopes, expiry and
revocation without a restart, only hashes stored, the command line, and the bind-address rule."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from backstory.config import Settings, open_bind_refusal
from backstory.tokens import CHECK_EVERY, PREFIX, TokenStore

from .conftest import assert_problem
from .pages import FIRE_A


@pytest.fixture
def settings(archive_urls) -> Settings:
    return Settings(archive=archive_urls("archive"), allowed_networks=["127.0.0.0/8"])


def store(client: AsyncTestClient) -> TokenStore:
    return client.app.state.backstory.tokens


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def analyze(client: AsyncTestClient, secret: str | None, *, archive: bool, i: int = 0):
    title, text = FIRE_A[i]
    return await client.post("/api/v1/analyze", json={"url": f"https://news.example/fire/{i}", "title": title,
                                                       "text": text, "archive": archive},
                             headers=bearer(secret) if secret else {})


async def test_without_tokens_everyone_may_everything(client: AsyncTestClient) -> None:
    me = await client.get("/api/v1/me")
    assert me.status_code == 200 and me.json() == {"name": "anyone", "scope": "admin", "visibility": "team"}
    assert (await analyze(client, None, archive=True)).status_code == 200


async def test_scopes_401_and_403(client: AsyncTestClient) -> None:
    tokens = store(client)
    reader = await tokens.create("reader", "read")
    writer = await tokens.create("writer", "write")
    assert reader.startswith(PREFIX) and len(reader) >= len(PREFIX) + 32  # 192 random bits
    await asyncio.sleep(CHECK_EVERY + 0.2)  # the server notices a new token within this

    missing = await client.get("/api/v1/stories")
    assert_problem(missing, 401)
    assert missing.headers["www-authenticate"] == "Bearer"
    assert_problem(await client.get("/api/v1/stories", headers=bearer(PREFIX + "not-a-real-one")), 401)
    assert (await client.get("/healthz")).status_code == 200 and (await client.get("/readyz")).status_code == 200

    assert (await client.get("/api/v1/me", headers=bearer(reader))).json() == {"name": "reader", "scope": "read",
                                                                                "visibility": "team"}
    assert (await client.get("/api/v1/stories", headers=bearer(reader))).status_code == 200
    assert (await analyze(client, reader, archive=False)).status_code == 200
    refused = await analyze(client, reader, archive=True)
    assert_problem(refused, 403)
    assert "read scope" in refused.json()["detail"]

    kept = await analyze(client, writer, archive=True)
    assert kept.status_code == 200 and kept.json()["archived"]
    story = kept.json()["story_id"]
    assert_problem(await client.delete(f"/api/v1/stories/{story}", headers=bearer(reader)), 403)
    assert (await client.delete(f"/api/v1/stories/{story}", headers=bearer(writer))).status_code == 204


async def test_revoked_and_expired_tokens_stop_working_without_a_restart(client: AsyncTestClient) -> None:
    tokens = store(client)
    soon = await tokens.create("soon", "read", expires_days=6 / 86400)  # 6 s: time to use it first, even on a busy machine
    lasting = await tokens.create("lasting", "read")
    assert (await client.get("/api/v1/stories", headers=bearer(soon))).status_code == 200
    assert (await client.get("/api/v1/stories", headers=bearer(lasting))).status_code == 200
    assert await tokens.revoke("lasting")
    await asyncio.sleep(6.2)  # past the expiry, and past CHECK_EVERY for the revocation
    assert_problem(await client.get("/api/v1/stories", headers=bearer(soon)), 401)  # expired
    assert_problem(await client.get("/api/v1/stories", headers=bearer(lasting)), 401)  # revoked
    # A revoked name may be given again; the new token is a new one: the old secret stays refused.
    again = await tokens.create("lasting", "write")
    await asyncio.sleep(CHECK_EVERY + 0.2)
    assert (await client.get("/api/v1/me", headers=bearer(again))).json()["scope"] == "write"
    assert_problem(await client.get("/api/v1/stories", headers=bearer(lasting)), 401)
    listed = {t.name: t for t in await tokens.list()}
    assert set(listed) == {"soon", "lasting"} and listed["lasting"].scope == "write"
    with pytest.raises(ValueError, match="already"):
        await tokens.create("lasting", "read")


def test_the_command_line_shows_a_secret_once_and_stores_only_its_hash(tmp_path: Path, caplog) -> None:
    archive = tmp_path / "archive.sqlite3"
    env = {**os.environ, "BACKSTORY_LOG_LEVEL": "INFO"}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "backstory", "tokens", *args, "--archive", str(archive)],
                              env=env, capture_output=True, text=True, timeout=120)

    created = run("create", "alice", "--scope", "admin", "--expires", "30")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert secret.startswith(PREFIX) and "shown only now" in created.stderr
    listed = run("list")
    assert "alice" in listed.stdout and "admin" in listed.stdout and secret not in listed.stdout + listed.stderr
    assert secret.encode() not in b"".join(p.read_bytes() for p in tmp_path.glob("archive.sqlite3*"))
    assert run("revoke", "alice").returncode == 0
    assert run("revoke", "alice").returncode != 0  # none left by that name
    assert secret not in created.stderr + listed.stdout + caplog.text


async def test_on_postgresql_the_database_files_and_logs_hold_no_secret(postgres_url: str, tmp_path: Path,
                                                                       models, caplog) -> None:
    import hashlib

    import psycopg

    from backstory.app import create_app
    from backstory.tokens import digest

    from .conftest import BASE_URL, postgres_database, wait_ready

    archive = postgres_database(postgres_url, "t" + hashlib.blake2b(str(tmp_path).encode(), digest_size=6).hexdigest())
    env = {**os.environ, "BACKSTORY_LOG_LEVEL": "DEBUG"}
    created = subprocess.run([sys.executable, "-m", "backstory", "tokens", "create", "alice", "--scope", "admin",
                              "--archive", archive], env=env, capture_output=True, text=True, timeout=120)
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    caplog.set_level("DEBUG")
    async with AsyncTestClient(app=create_app(Settings(archive=archive, allowed_networks=["127.0.0.0/8"]),
                                              models=models), base_url=BASE_URL) as client:
        await wait_ready(client)
        assert (await client.get("/api/v1/me", headers=bearer(secret))).json()["name"] == "alice"
        assert_problem(await client.get("/api/v1/stories", headers=bearer(secret + "x")), 401)  # a near miss
        assert (await analyze(client, secret, archive=True)).status_code == 200
    assert secret not in created.stderr + caplog.text
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")  # everything written so far is in the data files, not only in the WAL
        data = Path(conn.execute("SHOW data_directory").fetchone()[0])
    needle, stored = secret.encode(), digest(secret).encode()
    found_hash = False
    for path in (p for p in data.rglob("*") if p.is_file()):
        try:
            content = path.read_bytes()
        except OSError:  # a file the server removed meanwhile
            continue
        assert needle not in content, f"the token's secret is in {path}"
        found_hash |= stored in content
    assert found_hash  # the scan reached the token's row: its hash is there, its secret is not


def test_a_stored_token_lets_the_server_listen_beyond_this_machine() -> None:
    exposed = Settings(host="0.0.0.0")
    assert open_bind_refusal(exposed, stored_tokens=0) is not None
    assert open_bind_refusal(exposed, stored_tokens=1) is None


async def test_rate_limits_per_token_and_per_address(settings: Settings, models) -> None:
    from backstory.app import create_app

    from .conftest import BASE_URL, wait_ready

    limited = settings.replace(rate_limit_read="3/minute", rate_limit_analyze="1/minute")
    async with AsyncTestClient(app=create_app(limited, models=models), base_url=BASE_URL) as client:
        await wait_ready(client)
        for _ in range(3):
            assert (await client.get("/api/v1/stories")).status_code == 200
        refused = await client.get("/api/v1/stories")
        assert_problem(refused, 429)
        assert 0 < int(refused.headers["retry-after"]) <= 60
        assert (await client.get("/healthz")).status_code == 200  # only /api/ is counted
        assert (await analyze(client, None, archive=False)).status_code == 200  # analyses have their own budget
        assert_problem(await analyze(client, None, archive=False, i=1), 429)
        # A token has a budget of its own (here: no token is needed, so any bearer is let through).
        assert (await client.get("/api/v1/stories", headers=bearer(PREFIX + "someone"))).status_code == 200


def test_the_client_behind_a_trusted_proxy_is_the_forwarded_address() -> None:
    import ipaddress
    from types import SimpleNamespace

    from backstory.api.limits import client_address

    def request(peer: str, forwarded: str = "") -> SimpleNamespace:
        return SimpleNamespace(client=SimpleNamespace(host=peer),
                               headers={"x-forwarded-for": forwarded} if forwarded else {})

    proxies = [ipaddress.ip_network("10.0.0.0/8")]
    assert client_address(request("203.0.113.9"), proxies) == "203.0.113.9"
    # An untrusted peer's X-Forwarded-For is whatever it wrote: ignored.
    assert client_address(request("203.0.113.9", "198.51.100.1"), proxies) == "203.0.113.9"
    # Behind the trusted proxy: the last hop before it; a client's own forged hops come earlier.
    assert client_address(request("10.0.0.2", "1.2.3.4, 198.51.100.7"), proxies) == "198.51.100.7"
    assert client_address(request("10.0.0.2", "198.51.100.7, 10.0.0.3"), proxies) == "198.51.100.7"


async def test_who_added_a_story_and_who_may_delete_it(client: AsyncTestClient) -> None:
    tokens = store(client)
    alice, bob, carol, boss = [await tokens.create(name, scope) for name, scope in
                               (("alice", "write"), ("bob", "write"), ("carol", "write"), ("boss", "admin"))]
    await asyncio.sleep(CHECK_EVERY + 0.2)
    first = (await analyze(client, alice, archive=True)).json()
    assert first["added_by"] == ["alice"]
    again = (await analyze(client, bob, archive=True)).json()  # the same page (a cache hit): bob adds it too
    assert again["story_id"] == first["story_id"] and again["added_by"] == ["alice", "bob"]
    story = f"/api/v1/stories/{first['story_id']}"
    assert (await client.get(story, headers=bearer(carol))).json()["added_by"] == ["alice", "bob"]

    assert_problem(await client.delete(story, headers=bearer(carol)), 403)  # she did not add it
    assert (await client.delete(story, headers=bearer(bob))).status_code == 204  # bob's claim goes, alice keeps it
    assert (await client.get(story, headers=bearer(carol))).json()["added_by"] == ["alice"]
    assert (await client.delete(story, headers=bearer(alice))).status_code == 204  # the last claimant: the story goes
    assert_problem(await client.get(story, headers=bearer(carol)), 404)

    other = (await analyze(client, carol, archive=True, i=1)).json()
    assert (await client.delete(f"/api/v1/stories/{other['story_id']}", headers=bearer(boss))).status_code == 204


def test_an_import_is_added_by_cli_or_by_the_member_named(tmp_path: Path) -> None:
    import json

    from backstory.cli import main

    archive = str(tmp_path / "archive.sqlite3")
    title, text = FIRE_A[0]
    other_title, other_text = FIRE_A[1]
    first = tmp_path / "a.jsonl"
    first.write_text(json.dumps({"url": "https://news.example/a", "title": title, "text": text}) + "\n")
    second = tmp_path / "b.jsonl"
    second.write_text(json.dumps({"url": "https://news.example/b", "title": other_title, "text": other_text}) + "\n")
    assert main(["tokens", "create", "dana", "--archive", archive]) == 0
    assert main(["import", str(first), "--archive", archive]) == 0
    assert main(["import", str(second), "--as", "dana", "--archive", archive]) == 0
    with pytest.raises(SystemExit, match="no token named 'nobody'"):
        main(["import", str(second), "--as", "nobody", "--archive", archive])

    async def claimants() -> dict[str, list[str]]:
        from backstory.archive import create_archive
        from backstory.story import story_id_for

        async with create_archive(f"sqlite:///{archive}") as opened:
            names = TokenStore(opened.storage)
            return {url: await names.names(await opened.added_by(story_id_for(url)))
                    for url in ("https://news.example/a", "https://news.example/b")}

    assert asyncio.run(claimants()) == {"https://news.example/a": ["cli"], "https://news.example/b": ["dana"]}

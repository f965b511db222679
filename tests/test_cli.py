"""The command line: import (resumable, skipping what is archived), export (lossless), analyze, serve."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import msgspec
import pytest

from backstory.cli import main

from .pages import AI_PARAGRAPHS, AI_TITLE, FIRE_A, FIRE_B, news_page


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def stories(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture
def env_archive(tmp_path: Path, monkeypatch) -> Path:
    path = tmp_path / "cli.sqlite3"
    monkeypatch.setenv("BACKSTORY_ARCHIVE", str(path))
    return path


def test_import_export_round_trip(tmp_path: Path, env_archive: Path, capsys) -> None:
    rows = [
        {"url": f"https://news.example/fire/{i}", "title": title, "text": text, "published": "2026-07-0%d" % (i + 1)}
        for i, (title, text) in enumerate(FIRE_A + FIRE_B)
    ]
    rows.append({"url": "https://ledger.example/ai", "html": news_page(AI_TITLE, AI_PARAGRAPHS)})
    rows.append({"url": "https://broken.example/x"})  # neither text nor html: reported, not fatal
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    assert main(["import", str(source), "--analyze"]) == 1  # one bad line
    err = capsys.readouterr().err
    assert "6 imported, 0 skipped, 1 failed" in err
    assert "line 7: line has neither text nor html" in err

    # Resumable: a second run skips everything already archived and analyzes nothing.
    assert main(["import", str(source), "--analyze"]) == 1
    assert "0 imported, 6 skipped, 1 failed" in capsys.readouterr().err

    first = tmp_path / "export1.jsonl"
    assert main(["export", str(first)]) == 0
    exported = stories(first)
    assert len(exported) == 6
    fire = next(s for s in exported if s["url"] == "https://news.example/fire/0")
    assert fire["published"] == "2026-07-01" and fire["entities"] and fire["keyphrases"]
    assert len(fire["embedding"]) == 384 and fire["analysed"] is True

    # Import the export into a fresh archive, export again: byte-identical.
    fresh = tmp_path / "fresh.sqlite3"
    assert main(["import", str(first), "--archive", str(fresh)]) == 0
    second = tmp_path / "export2.jsonl"
    assert main(["export", str(second), "--archive", str(fresh)]) == 0
    assert second.read_bytes() == first.read_bytes()


def test_the_old_analyse_flag_is_an_alias() -> None:
    from backstory.cli import build_parser

    for flag in ("--analyze", "--analyse"):
        assert build_parser().parse_args(["import", "in.jsonl", flag]).analyze is True
    assert build_parser().parse_args(["import", "in.jsonl"]).analyze is False


def test_import_stores_at_once_and_the_server_analyzes_later(tmp_path: Path, env_archive: Path, capsys, models) -> None:
    rows = [
        {"url": f"https://news.example/fire/{i}", "title": title, "text": text}
        for i, (title, text) in enumerate(FIRE_A + FIRE_B)
    ]
    rows.append({"url": "https://ledger.example/ai", "html": news_page(AI_TITLE, AI_PARAGRAPHS)})
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    assert main(["import", str(source)]) == 0
    assert "in the background" in capsys.readouterr().err

    # Stored at once: text, title and dates, but no names, keyphrases or embedding yet.
    pending_export = tmp_path / "pending.jsonl"
    assert main(["export", str(pending_export)]) == 0
    pending = stories(pending_export)
    assert len(pending) == len(rows)
    assert all(s["analysed"] is False and not s["entities"] and not s["keyphrases"] and s["embedding"] is None
               for s in pending)
    ai = next(s for s in pending if s["url"] == "https://ledger.example/ai")
    assert ai["title"] == AI_TITLE and ai["word_count"] > 100  # the page was extracted

    # A pending export re-imports as pending, byte for byte.
    fresh = tmp_path / "fresh.sqlite3"
    assert main(["import", str(pending_export), "--archive", str(fresh)]) == 0
    again = tmp_path / "again.jsonl"
    assert main(["export", str(again), "--archive", str(fresh)]) == 0
    assert again.read_bytes() == pending_export.read_bytes()

    async def serve() -> None:
        from litestar.testing import AsyncTestClient

        from backstory.app import create_app
        from backstory.config import Settings

        from .conftest import BASE_URL, wait_ready

        async with AsyncTestClient(app=create_app(Settings(archive=str(env_archive)), models=models), base_url=BASE_URL) as client:
            await wait_ready(client)
            # Searchable and related by their words while they wait.
            found = (await client.get("/api/v1/stories", params={"q": "wildfire evacuation"})).json()
            assert found["total"] >= 1
            deadline = time.monotonic() + 120
            while (await client.get("/readyz")).json()["pending_analysis"]:
                assert time.monotonic() < deadline, "the backlog was never analyzed"
                await asyncio.sleep(0.2)
            sid = next(s["story_id"] for s in pending if s["url"] == "https://news.example/fire/0")
            story = (await client.get(f"/api/v1/stories/{sid}")).json()
            assert story["analysed"] is True
            assert {"Paradise Valley", "Katie Hobbs"} & {e["name"] for e in story["entities"]}
            assert story["keyphrases"] and story["related"]
            assert story["related"][0]["shared_entities"]  # reasons need the names: they are there now

    asyncio.run(serve())
    done = tmp_path / "done.jsonl"
    assert main(["export", str(done)]) == 0
    finished = stories(done)
    assert all(s["analysed"] and s["embedding"] for s in finished)
    # Identity and dates are kept.
    assert [(s["story_id"], s["first_seen"], s["last_seen"]) for s in finished] == [
        (s["story_id"], s["first_seen"], s["last_seen"]) for s in pending
    ]


def test_analyze_prints_the_payload(tmp_path: Path, env_archive: Path, capsys) -> None:
    page = tmp_path / "story.html"
    page.write_text(news_page(AI_TITLE, AI_PARAGRAPHS), encoding="utf-8")
    assert main(["analyze", str(page), "--url", "https://ledger.example/ai", "--no-archive"]) == 0
    payload = msgspec.json.decode(capsys.readouterr().out)
    assert payload["title"] == AI_TITLE and payload["entities"] and payload["keyphrases"]
    assert payload["archived"] is False
    assert main(["analyze", "ftp://nowhere.example/x"]) == 1
    assert "Invalid URL" in capsys.readouterr().err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_answers_and_exits_cleanly_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "BACKSTORY_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "backstory", "serve", "--port", str(port), "--archive", str(tmp_path / "s.sqlite3")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stdout.read().decode()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server never became ready"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert (tmp_path / "s.sqlite3").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

"""The archive setting: one URL (BACKSTORY_ARCHIVE / --archive) whose scheme picks the backend,
its older names read as aliases, two different archives refused, an archive that cannot be
reached refused at once with the reason, and no password ever printed."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from backstory import cli
from backstory.cli import common as cli_common
from backstory.cli import serve as cli_serve
from backstory.archive import BACKENDS, ArchiveUnavailable, backend, check_archive, open_archive
from backstory.archive.sqlite import SQLiteStorage
from backstory.config import ARCHIVE_ALIASES, Settings, archive_url, default_archive_path, from_env, masked_url

UNREACHABLE = "cannot reach the PostgreSQL archive at postgresql://reader:***@db.example:5432/stories: "
SECRET_URL = "postgresql://reader:s3cret@db.example:5432/stories"


@pytest.fixture(autouse=True)
def no_archive_in_the_environment(monkeypatch) -> None:
    """Each test sets the names it is about (a DATABASE_URL on the machine would be a conflict)."""
    for name in ("BACKSTORY_ARCHIVE", *ARCHIVE_ALIASES):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(("value", "url"), [
    ("sqlite:////srv/backstory/a.sqlite3", "sqlite:////srv/backstory/a.sqlite3"),
    ("sqlite:///data/a.sqlite3", "sqlite:///data/a.sqlite3"),
    ("sqlite:///./data/a.sqlite3", "sqlite:///data/a.sqlite3"),
    ("SQLite:///a.sqlite3", "sqlite:///a.sqlite3"),
    ("/srv/backstory/a.sqlite3", "sqlite:////srv/backstory/a.sqlite3"),
    ("data/a.sqlite3", "sqlite:///data/a.sqlite3"),
    ("  data/a.sqlite3\n", "sqlite:///data/a.sqlite3"),
    ("~/a.sqlite3", f"sqlite:///{Path.home()}/a.sqlite3"),
    ("sqlite:///~/a.sqlite3", f"sqlite:///{Path.home()}/a.sqlite3"),
    ("C:\\archive\\a.sqlite3", "sqlite:///C:\\archive\\a.sqlite3"),
    ("", f"sqlite:///{default_archive_path()}"),
    ("postgresql://u@db.example/stories", "postgresql://u@db.example/stories"),
    ("postgres://u@db.example/stories", "postgresql://u@db.example/stories"),
    ("PostgreSQL://db.example/stories", "postgresql://db.example/stories"),
])
def test_every_spelling_has_one_url(value: str, url: str) -> None:
    assert archive_url(value) == url
    assert archive_url(url) == url  # the one spelling is a fixed point


@pytest.mark.parametrize("value", ["sqlite://host/a.sqlite3", "sqlite:///", "sqlite://"])
def test_a_malformed_sqlite_url_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="invalid setting archive: .*sqlite:///PATH"):
        from_env({"BACKSTORY_ARCHIVE": value})


@pytest.mark.parametrize("spelling", ["sqlite:///{abs}", "{abs}", "sqlite:///{rel}", "{rel}"])
async def test_sqlite_spellings_open_that_file(spelling: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # a relative path is relative to where the command runs
    target = tmp_path / "here" / "a.sqlite3"
    settings = from_env({"BACKSTORY_ARCHIVE": spelling.format(abs=target, rel="here/a.sqlite3")})
    assert backend(settings) == BACKENDS["sqlite"]
    archive = await open_archive(settings)
    try:
        assert isinstance(archive.storage, SQLiteStorage) and archive.storage.path.resolve() == target.resolve()
        assert target.exists()
    finally:
        await archive.close()


@pytest.mark.parametrize("name", ["BACKSTORY_ARCHIVE", *ARCHIVE_ALIASES])
def test_every_name_of_the_setting_is_read(name: str, tmp_path: Path) -> None:
    assert from_env({name: str(tmp_path / "a.sqlite3")}).archive == f"sqlite:///{tmp_path}/a.sqlite3"
    assert from_env({name: SECRET_URL}).archive == SECRET_URL
    assert from_env({name: ""}).archive == ""  # set but empty is unset (the default file)


def test_the_same_archive_twice_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite3"
    env = {"BACKSTORY_ARCHIVE": f"sqlite:///{path}", "BACKSTORY_ARCHIVE_PATH": str(path),
           "BACKSTORY_DATABASE_URL": f" sqlite:///{path}", "DATABASE_URL": ""}
    assert from_env(env).archive == f"sqlite:///{path}"
    assert from_env({"DATABASE_URL": "postgres://u@h/db", "BACKSTORY_DATABASE_URL": "postgresql://u@h/db"}).archive \
        == "postgresql://u@h/db"


def test_two_different_archives_are_a_clear_error(tmp_path: Path) -> None:
    env = {"BACKSTORY_ARCHIVE_PATH": str(tmp_path / "a.sqlite3"), "DATABASE_URL": SECRET_URL}
    with pytest.raises(ValueError, match="two different archives are set") as caught:
        from_env(env)
    message = str(caught.value)
    assert "BACKSTORY_ARCHIVE_PATH=sqlite:///" in message and "DATABASE_URL=postgresql://reader:***@" in message
    assert "s3cret" not in message


def test_the_command_line_names_one_archive(tmp_path: Path, monkeypatch, capsys) -> None:
    env_file, flag_file = tmp_path / "env.sqlite3", tmp_path / "flag.sqlite3"
    monkeypatch.setenv("BACKSTORY_ARCHIVE", str(env_file))
    # A flag overrides the environment, as for every setting; --database-url is --archive's alias.
    for flag in ("--archive", "--database-url"):
        flag_file.unlink(missing_ok=True)
        assert cli.main(["export", str(tmp_path / "out.jsonl"), flag, f"sqlite:///{flag_file}"]) == 0
        assert flag_file.exists() and not env_file.exists()
    assert cli.main(["export", str(tmp_path / "out.jsonl"), "--archive", str(flag_file),
                     "--database-url", f"sqlite:///{flag_file}"]) == 0
    with pytest.raises(SystemExit) as caught:
        cli.main(["export", str(tmp_path / "out.jsonl"), "--archive", str(flag_file), "--database-url", SECRET_URL])
    assert str(caught.value).startswith("backstory: two different archives are set (--archive=sqlite:///")
    assert "s3cret" not in str(caught.value)


@pytest.mark.parametrize("url", [SECRET_URL, SECRET_URL.replace("postgresql", "postgres")])
def test_an_unreachable_postgresql_is_refused_with_the_reason(url: str) -> None:
    settings = from_env({"BACKSTORY_ARCHIVE": url})
    assert backend(settings).name == "PostgreSQL"
    with pytest.raises(ArchiveUnavailable) as caught:
        check_archive(settings)
    assert str(caught.value).startswith(UNREACHABLE) and "db.example" in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_an_unknown_kind_of_archive_is_refused() -> None:
    with pytest.raises(ArchiveUnavailable, match="there is no mysql:// archive"):
        backend(Settings(archive="mysql://u:pw@h/db"))


@pytest.mark.parametrize("args, env", [
    (["--archive", SECRET_URL], {}),
    (["--database-url", SECRET_URL], {}),
    ([], {"DATABASE_URL": SECRET_URL}),
    ([], {"BACKSTORY_ARCHIVE": SECRET_URL.replace("postgresql", "postgres")}),
])
def test_serve_with_an_unreachable_postgresql_exits_with_the_reason(args: list[str], env: dict[str, str]) -> None:
    done = subprocess.run([sys.executable, "-m", "backstory", "serve", "--port", "0", *args],
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert done.stderr.startswith(f"backstory: {UNREACHABLE}"), output
    assert "Traceback" not in output and "s3cret" not in output


def test_serve_prints_the_archive_without_its_password(monkeypatch, capsys) -> None:
    # Serve stops before it opens anything: no database needs to be there.
    import uvicorn

    from backstory import nlp_worker

    monkeypatch.setattr(cli_common, "check_archive", lambda settings: 0)
    monkeypatch.setattr(cli_serve, "_limit_malloc_arenas", lambda: None)
    monkeypatch.setattr(nlp_worker, "prestart", lambda processes: None)
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: None)
    sigterm = signal.getsignal(signal.SIGTERM)
    try:
        assert cli.main(["serve", "--archive", SECRET_URL + "?sslmode=require&password=s3cret"]) == 0
    finally:
        signal.signal(signal.SIGTERM, sigterm)
    err = capsys.readouterr().err
    assert "archive: postgresql://reader:***@db.example:5432/stories?sslmode=require&password=***" in err
    assert "s3cret" not in err


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://u:pw@h/db", "postgresql://u:***@h/db"),
    ("postgresql://:pw@h/db", "postgresql://:***@h/db"),
    ("postgresql://u:p@ss/w#rd@h:5432/db", "postgresql://u:***@h:5432/db"),
    ("postgresql://u@h:5432/db", "postgresql://u@h:5432/db"),
    ("postgresql://h/db?user=u&PASSWORD=pw&sslmode=require", "postgresql://h/db?user=u&PASSWORD=***&sslmode=require"),
    ("sqlite:////srv/a:b@c.sqlite3", "sqlite:////srv/a:b@c.sqlite3"),
])
def test_masked_url(url: str, shown: str) -> None:
    assert masked_url(url) == shown


def test_serve_on_an_archive_a_newer_backstory_wrote_exits_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "newer.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 999")
    conn.close()
    done = subprocess.run([sys.executable, "-m", "backstory", "serve", "--port", "0", "--archive", str(path)],
                          env=os.environ, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert done.stderr.startswith("backstory: archive schema version 999 is newer than this Backstory"), done.stderr
    assert "Traceback" not in done.stderr

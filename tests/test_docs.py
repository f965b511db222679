"""The README keeps its promises: two set-up commands, every setting documented."""

from __future__ import annotations

import re
from pathlib import Path

from backstory.config import from_env, settings_table

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_settings_table_is_current() -> None:
    assert settings_table() in README, "run `python -m backstory.config` and paste the table into the README"


def test_readme_shows_exactly_two_setup_commands() -> None:
    setup = README.split("## Set-up", 1)[1].split("##", 1)[0]
    block = re.search(r"```sh\n(.*?)```", setup, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip()]
    assert commands == ["./scripts/serve", "./scripts/test"]
    for command in commands:
        assert (ROOT / command).stat().st_mode & 0o111, f"{command} is not executable"
    assert "scripts/test" in (ROOT / ".ci/run").read_text()


def test_settings_from_env_and_overrides() -> None:
    s = from_env({"BACKSTORY_PORT": "9001", "BACKSTORY_ALLOWED_NETWORKS": "127.0.0.0/8, 10.1.0.0/16",
                  "DATABASE_URL": "postgresql://db/x"}, port=9002)
    assert s.port == 9002 and s.allowed_networks == ["127.0.0.0/8", "10.1.0.0/16"]
    assert s.archive == "postgresql://db/x"  # DATABASE_URL: an alias of BACKSTORY_ARCHIVE
    for bad in ({"BACKSTORY_PORT": "eighty"}, {"BACKSTORY_ALLOWED_NETWORKS": "not-a-net"}):
        try:
            from_env(bad)
        except ValueError as exc:
            assert "invalid setting" in str(exc)
        else:
            raise AssertionError(f"{bad} was accepted")

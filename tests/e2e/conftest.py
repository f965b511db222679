"""Fixtures of the end-to-end tests; the machinery is in e2e_harness.py (Chromium) and firefox_harness.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest
from e2e_harness import (
    API_TOKEN,
    CHROMIUM,
    CHROMIUM_FLAGS,
    BackstoryServer,
    Browser,
    PageServer,
    build_extension,
    start_server,
)
from firefox_harness import FIREFOX, Firefox


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium; the browser tests skip (saying why) only when it is not installed."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture(scope="module")
def backstory_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackstoryServer]:
    """One server per test module, token required (so every request must carry the options' token); the
    Chromium and the Firefox tests share it."""
    server = start_server(tmp_path_factory.mktemp("backstory"), {"BACKSTORY_API_TOKEN": API_TOKEN})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def news_server() -> Iterator[PageServer]:
    server = PageServer()
    yield server
    server.close()


@pytest.fixture(scope="session")
def extension_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Chrome build of extension/, made by scripts/build_extension.py."""
    return build_extension.build("chrome", tmp_path_factory.mktemp("extension-build"))


@pytest.fixture
async def browser(chromium: Path, extension_dir: Path, tmp_path: Path) -> Any:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=str(chromium),
            headless=False,  # the --headless=new flag below: new headless runs extensions and side panels
            ignore_default_args=["--disable-extensions"],
            args=[*CHROMIUM_FLAGS, f"--disable-extensions-except={extension_dir}",
                  f"--load-extension={extension_dir}"],
            viewport={"width": 1000, "height": 800},
        )
        try:
            workers = context.service_workers
            worker = workers[0] if workers else await context.wait_for_event("serviceworker", timeout=15000)
            extension_id = worker.url.split("/")[2]
            assert context.browser is not None
            cdp = await context.browser.new_browser_cdp_session()
            yield Browser(context, extension_id, cdp)
        finally:
            await context.close()


@pytest.fixture(scope="session")
def firefox_binary() -> Path:
    """Debian's Firefox ESR; the Firefox tests skip (saying why) only when it is not installed."""
    if not FIREFOX.exists():
        pytest.skip(f"{FIREFOX} is missing: install Debian's firefox-esr package (apt-get install firefox-esr)")
    return FIREFOX


@pytest.fixture(scope="session")
def firefox_extension_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Firefox build of extension/ (sidebar_action, event page), made by scripts/build_extension.py."""
    return build_extension.build("firefox", tmp_path_factory.mktemp("extension-build"))


@pytest.fixture
def firefox(firefox_binary: Path, firefox_extension_dir: Path, tmp_path: Path) -> Iterator[Firefox]:
    """A headless Firefox on a throwaway profile with the add-on installed as a temporary add-on; always quit."""
    browser = Firefox(firefox_binary, tmp_path / "firefox-profile", firefox_extension_dir)
    try:
        yield browser
    finally:
        browser.close()

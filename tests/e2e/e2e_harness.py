"""End-to-end harness (helpers; the fixtures are in conftest.py): Debian's Chromium with the unpacked extension, the real Backstory server, a page server.

Nothing here is faked: the extension is the built Chrome variant of extension/, the server is
`python -m backstory serve` on a free loopback port with a temporary archive, and the news pages are
served over HTTP by a real server on 127.0.0.1. The toolbar button is clicked through CDP
`Extensions.triggerAction` on the article's tab target (Playwright's pipe connection plus
--enable-unsafe-extension-debugging make that command available), which opens the real side panel.
Playwright does not expose side-panel pages, so the panel is driven through its own CDP target.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("BACKSTORY_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = ROOT / "artifacts" / "e2e"
SERVER_START_TIMEOUT = float(os.environ.get("BACKSTORY_E2E_SERVER_TIMEOUT", "180"))
PANEL_TIMEOUT = 120.0
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-default-apps",
    "--disable-dev-shm-usage",
    "--enable-unsafe-extension-debugging",
    "--window-size=1280,900",
]


def _load_build_script() -> Any:
    spec = importlib.util.spec_from_file_location("build_extension", ROOT / "scripts" / "build_extension.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_extension = _load_build_script()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------- the real Backstory server


class BackstoryServer:
    """`python -m backstory serve` in a subprocess, on a free port, with its own archive file (or
    the archive URL given)."""

    def __init__(self, workdir: Path, env: dict[str, str] | None = None, archive: str | None = None) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "server.log"
        environ = {k: v for k, v in os.environ.items() if not k.startswith("BACKSTORY_")}
        environ.update(env or {})
        environ["PYTHONUNBUFFERED"] = "1"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "backstory", "serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--archive", archive or str(workdir / "archive.sqlite3")],
            cwd=ROOT, env=environ, stdout=self._log, stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = SERVER_START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the Backstory server exited with {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        raise RuntimeError(f"the Backstory server was not ready after {timeout:.0f} s:\n{self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-4000:]

    def stop(self) -> None:
        stop_process(self.process)
        self._log.close()


def stop_process(process: subprocess.Popen, grace: float = 20) -> None:
    """Terminate a child process, and kill it if it has not exited within the grace period."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def start_server(workdir: Path, env: dict[str, str] | None = None, archive: str | None = None) -> BackstoryServer:
    server = BackstoryServer(workdir, env, archive)
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        raise
    return server


API_TOKEN = "correct horse battery staple"
"""The token the tests' servers require."""


# ---------------------------------------------------------------- the page server


def serve_on_loopback(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """A threading HTTP server on a free 127.0.0.1 port, already serving."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    return httpd, thread


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that answers every method with :meth:`relay` and logs nothing (a proxy's)."""

    def relay(self) -> None:
        raise NotImplementedError

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.relay()

    do_POST = do_OPTIONS = do_DELETE = do_GET  # noqa: N815

    def log_message(self, *args: Any) -> None:
        pass


class PageServer:
    """Serves pages the tests write, and remembers who asked for what."""

    def __init__(self) -> None:
        self.pages: dict[str, tuple[str, str]] = {}
        self.requests: list[tuple[str, str]] = []  # (path, user agent)
        self._counter = itertools.count(1)
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                path = self.path.split("?", 1)[0]
                owner.requests.append((path, self.headers.get("User-Agent", "")))
                if path not in owner.pages:
                    self.send_error(404)
                    return
                content_type, body = owner.pages[path]
                data = body.encode("utf-8")
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd, self.thread = serve_on_loopback(Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def add(self, name: str, body: str, content_type: str = "text/html; charset=utf-8") -> str:
        """Publish a page under a unique path and return its URL."""
        path = f"/{next(self._counter)}/{name}"
        self.pages[path] = (content_type, body)
        return self.base + path

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


# ---------------------------------------------------------------- the browser and the side panel


class Panel:
    """The extension's side panel, driven through its own CDP target (non-flattened session)."""

    def __init__(self, cdp: Any, target_id: str) -> None:
        self.cdp = cdp
        self.target_id = target_id
        self.session_id = ""
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}

    async def attach(self) -> None:
        self.cdp.on("Target.receivedMessageFromTarget", self._on_message)
        reply = await self.cdp.send("Target.attachToTarget", {"targetId": self.target_id, "flatten": False})
        self.session_id = reply["sessionId"]

    def _on_message(self, event: dict) -> None:
        if event.get("sessionId") != self.session_id:
            return
        message = json.loads(event["message"])
        future = self._pending.pop(message.get("id", -1), None)
        if future is not None and not future.done():
            future.set_result(message)

    async def send(self, method: str, params: dict | None = None) -> dict:
        call_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pending[call_id] = future
        await self.cdp.send("Target.sendMessageToTarget", {
            "sessionId": self.session_id,
            "message": json.dumps({"id": call_id, "method": method, "params": params or {}}),
        })
        message = await asyncio.wait_for(future, 30)
        if "error" in message:
            raise RuntimeError(f"{method}: {message['error']}")
        return message["result"]

    async def eval(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", {
            "expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"panel script failed: {expression}\n{result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = PANEL_TIMEOUT) -> Any:
        deadline = time.monotonic() + timeout
        guarded = f"(() => {{ try {{ return ({expression}); }} catch (e) {{ return false; }} }})()"
        while True:
            value = await self.eval(guarded)
            if value:
                return value
            if time.monotonic() > deadline:
                state = await self.eval("document.body && document.body.dataset.state + ': ' + document.body.innerText")
                raise AssertionError(f"panel never satisfied {expression!r}; it shows:\n{state}")
            await asyncio.sleep(0.1)

    async def wait_state(self, *states: str, timeout: float = PANEL_TIMEOUT) -> str:
        wanted = json.dumps(list(states))
        await self.wait_for(f"{wanted}.includes(document.body.dataset.state)", timeout)
        return await self.eval("document.body.dataset.state")

    async def text(self, selector: str = "body") -> str:
        return await self.eval(f"document.querySelector({json.dumps(selector)})?.innerText ?? ''")

    async def click(self, selector: str) -> None:
        """A real mouse click (CDP input events) in the middle of the element."""
        box = await self.eval(f"""(() => {{
            const el = document.querySelector({json.dumps(selector)});
            if (!el) return null;
            el.scrollIntoView({{block: 'center'}});
            const r = el.getBoundingClientRect();
            return {{x: r.left + r.width / 2, y: r.top + r.height / 2}};
        }})()""")
        assert box, f"nothing in the panel matches {selector}"
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            await self.send("Input.dispatchMouseEvent", {
                "type": kind, "x": box["x"], "y": box["y"], "button": "left", "clickCount": 1})

    async def press_enter_on(self, selector: str) -> None:
        """Keyboard use: focus the element, then a real Enter key press (CDP key events)."""
        assert await self.eval(f"(() => {{ const el = document.querySelector({json.dumps(selector)});"
                               f" if (!el) return false; el.focus(); return document.activeElement === el; }})()")
        for kind in ("keyDown", "keyUp"):
            await self.send("Input.dispatchKeyEvent", {
                "type": kind, "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13,
                **({"text": "\r"} if kind == "keyDown" else {})})

    async def screenshot(self, path: Path) -> Path:
        size = await self.eval("({w: document.documentElement.clientWidth, h: document.documentElement.scrollHeight})")
        shot = await self.send("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["w"], "height": size["h"], "scale": 1}})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path


class Browser:
    """A Chromium persistent context with the extension loaded, plus the browser-level CDP session."""

    def __init__(self, context: Any, extension_id: str, cdp: Any) -> None:
        self.context = context
        self.extension_id = extension_id
        self.cdp = cdp
        self.panel: Panel | None = None

    @property
    def origin(self) -> str:
        return f"chrome-extension://{self.extension_id}"

    async def configure(self, server: str, token: str = "", archive: bool = True) -> str:
        """Fill in and save the real options page; returns the status it shows."""
        page = await self.context.new_page()
        await page.goto(self.origin + "/options.html")
        await page.wait_for_selector("body[data-loaded=true]")  # the stored values are in the form
        await page.fill("#server", server)
        await page.fill("#token", token)
        await page.set_checked("#archive", archive)
        await page.click("#save")
        status = page.locator("#save-status")
        await status.filter(has_text="Saved").wait_for(timeout=10000)
        message = await status.inner_text()
        await page.close()
        return message

    async def open(self, url: str) -> Any:
        pages = self.context.pages
        page = pages[0] if pages and pages[0].url == "about:blank" else await self.context.new_page()
        await page.goto(url)
        await page.bring_to_front()
        return page

    async def tab_target(self, url: str) -> str:
        infos = (await self.cdp.send("Target.getTargets", {"filter": [{"type": "tab"}]}))["targetInfos"]
        tabs = [t for t in infos if t["type"] == "tab" and t["url"] == url]
        assert len(tabs) == 1, f"expected one tab showing {url}, found {infos}"
        return tabs[0]["targetId"]

    async def click_toolbar(self, page: Any) -> Panel:
        """Click the extension's toolbar button on this page's tab; returns the (opened) side panel."""
        await self.cdp.send("Extensions.triggerAction",
                            {"id": self.extension_id, "targetId": await self.tab_target(page.url)})
        if self.panel is None:
            self.panel = Panel(self.cdp, await self._panel_target())
            await self.panel.attach()
        return self.panel

    async def _panel_target(self, timeout: float = 15) -> str:
        deadline = time.monotonic() + timeout
        url = self.origin + "/panel.html"
        while time.monotonic() < deadline:
            infos = (await self.cdp.send("Target.getTargets"))["targetInfos"]
            panels = [t for t in infos if t["type"] == "page" and t["url"] == url]
            if panels:
                return panels[0]["targetId"]
            await asyncio.sleep(0.1)
        raise AssertionError("the side panel did not open after the toolbar click")


def artifact(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name


def node_tool(name: str) -> str | None:
    return shutil.which(name)

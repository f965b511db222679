"""Firefox end-to-end harness: Debian's firefox-esr, headless, driven over Marionette (PyPI `marionette-driver`).

Firefox is started by the harness itself, not by a downloaded driver: `--headless --marionette
-remote-allow-system-access` with a throwaway profile whose `marionette.port` is a free port. Marionette
listens on 127.0.0.1 only, and no other remote protocol is switched on. The built Firefox add-on is installed
as a temporary add-on through Marionette's Addons API, exactly as about:debugging's "Load Temporary Add-on"
does.

The toolbar click: the extension's widget is CustomizableUI's `<widget id>-browser-action`, a `toolbaritem`
wrapper that starts in the Extensions panel. The harness pins it to the toolbar (the reader's "Pin to
Toolbar") and clicks its action button (`.unified-extensions-item-action-button`) with Marionette's element
click in the chrome context. That is the button's own click(): its command runs CustomizableUI's widget code,
which grants activeTab for the selected tab and fires the extension's `action.onClicked` as user input, so
the background's `sidebarAction.open()` passes Firefox's user-gesture rule and the sidebar opens. (Clicking
the `toolbaritem` wrapper itself does nothing: only its child button carries the command.) Nothing calls
SidebarController or the `_execute_*` shortcuts; the sidebar opens only if the extension's own click
handler opens it.

The sidebar: its extension page lives in a remote `<browser>` inside the browser's chrome, a top-level
browsing context Marionette's SwitchToWindow/SwitchToFrame cannot reach (they know tabs and their frames).
The harness points Marionette's session at that browsing context (the same assignment those commands make),
after which Marionette's ordinary content commands (execute_script, find_element, element click,
screenshot) run in the panel; `page()` switches back to the tab.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from e2e_harness import PANEL_TIMEOUT, free_port, stop_process
from marionette_driver.addons import Addons
from marionette_driver.by import By
from marionette_driver.keys import Keys
from marionette_driver.marionette import Marionette

FIREFOX = Path(os.environ.get("BACKSTORY_FIREFOX") or shutil.which("firefox-esr") or "/usr/bin/firefox-esr")
START_TIMEOUT = 180  # a cold start of Firefox on a loaded 2-core machine
WIDTH, HEIGHT = 1280, 900

# A quiet throwaway profile: no first-run pages, updates, telemetry, studies or remote settings; and every
# address but loopback goes to a proxy on a closed loopback port (9, discard), so whatever Firefox still tries
# on its own fails at once and the only traffic is to the test's own servers on 127.0.0.1 (loopback is never
# proxied).
PREFS: dict[str, Any] = {
    "network.proxy.type": 1,
    "network.proxy.http": "127.0.0.1",
    "network.proxy.http_port": 9,
    "network.proxy.ssl": "127.0.0.1",
    "network.proxy.ssl_port": 9,
    "network.proxy.socks_remote_dns": False,
    "network.proxy.allow_hijacking_localhost": False,
    "dom.push.connection.enabled": False,
    "app.normandy.enabled": False,
    "app.shield.optoutstudies.enabled": False,
    "app.update.disabledForTesting": True,
    "browser.aboutwelcome.enabled": False,
    "browser.newtabpage.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "browser.startup.page": 0,
    "browser.tabs.warnOnClose": False,
    "datareporting.healthreport.uploadEnabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "extensions.getAddons.cache.enabled": False,
    "extensions.update.enabled": False,
    "messaging-system.rsexperimentloader.enabled": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "services.settings.server": "data:,#remote-settings-off",
    "toolkit.telemetry.enabled": False,
    "toolkit.telemetry.server": "",
}

CHROME_PANEL = """
    const sidebar = document.getElementById('sidebar');
    const doc = sidebar && sidebar.contentDocument;
    return doc && doc.getElementById('webext-panels-browser');
"""


def widget_id(addon_id: str) -> str:
    """CustomizableUI's id for an add-on's toolbar widget (Firefox's makeWidgetId, then the suffix)."""
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in addon_id.lower()) + "-browser-action"


class Firefox:
    """One headless Firefox with a temporary add-on installed, and the Marionette session that drives it."""

    def __init__(self, binary: Path, profile: Path, addon: Path) -> None:
        self.profile = profile
        profile.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        prefs = {**PREFS, "marionette.port": self.port}
        (profile / "user.js").write_text(
            "".join(f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in prefs.items()), encoding="utf-8")
        self.log_path = profile.parent / "firefox.log"
        self._log = self.log_path.open("wb")
        env = {**os.environ, "MOZ_HEADLESS": "1", "MOZ_CRASHREPORTER_DISABLE": "1"}
        self.process = subprocess.Popen(
            [str(binary), "--headless", "--marionette", "-remote-allow-system-access", "--no-remote",
             "--profile", str(profile), f"--window-size={WIDTH},{HEIGHT}", "about:blank"],
            env=env, stdout=self._log, stderr=subprocess.STDOUT)
        try:
            self.client = Marionette(host="127.0.0.1", port=self.port, startup_timeout=START_TIMEOUT)
            self.client.start_session(timeout=START_TIMEOUT)
            self.client.timeout.script = PANEL_TIMEOUT
            self.client.timeout.page_load = PANEL_TIMEOUT
            self.tab = self.client.window_handles[0]
            self.addon_id = Addons(self.client).install(str(addon), temp=True)
            self.origin = self.chrome("""
                return WebExtensionPolicy.getByID(arguments[0]).getURL('').replace(/\\/$/, '');
            """, self.addon_id)
        except BaseException:
            self.close()
            raise

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-4000:]

    def chrome(self, script: str, *args: Any) -> Any:
        """Run a script in the browser's chrome (privileged) context."""
        with self.client.using_context("chrome"):
            return self.client.execute_script(script, script_args=list(args))

    # ------------------------------------------------------------ the tab

    def page(self) -> Any:
        """Make Marionette's content commands act on the tab; returns the client."""
        self.client.set_context("content")
        self.client.switch_to_window(self.tab)
        return self.client

    def open(self, url: str) -> None:
        self.page().navigate(url)

    def page_eval(self, expression: str) -> Any:
        return self.page().execute_script(f"return ({expression});")

    def wait_page(self, expression: str, timeout: float = PANEL_TIMEOUT) -> Any:
        return _poll(lambda: self.page_eval(_guarded(expression)), expression, timeout,
                     lambda: self.page_eval("document.body.innerText"))

    def configure(self, server: str, token: str = "", archive: bool = True) -> str:
        """Fill in and save the real options page in the tab; returns the status it shows."""
        client = self.page()
        client.navigate(self.origin + "/options.html")
        self.wait_page("document.body.dataset.loaded === 'true'")  # the stored values are in the form
        for field, value in (("server", server), ("token", token)):
            element = client.find_element(By.ID, field)
            element.clear()
            element.send_keys(value)
        box = client.find_element(By.ID, "archive")
        if box.is_selected() != archive:
            box.click()
        client.find_element(By.ID, "save").click()
        return self.wait_page("(t => t.includes('Saved') && t)(document.getElementById('save-status').textContent)",
                              timeout=30)

    # ------------------------------------------------------------ the toolbar button and the sidebar

    def click_toolbar(self) -> Panel:
        """Click the extension's toolbar button on the selected tab; returns the sidebar's panel once it is open."""
        widget = widget_id(self.addon_id)
        placed = self.chrome("""
            const {CustomizableUI} = ChromeUtils.importESModule(
                "moz-src:///browser/components/customizableui/CustomizableUI.sys.mjs");
            if (CustomizableUI.getPlacementOfWidget(arguments[0])?.area !== CustomizableUI.AREA_NAVBAR) {
                CustomizableUI.addWidgetToArea(arguments[0], CustomizableUI.AREA_NAVBAR);  // "Pin to Toolbar"
            }
            return CustomizableUI.getPlacementOfWidget(arguments[0])?.area;
        """, widget)
        assert placed == "nav-bar", f"the toolbar widget {widget} could not be pinned (it is in {placed})"
        with self.client.using_context("chrome"):
            self.client.find_element(By.CSS_SELECTOR, f"#{widget} .unified-extensions-item-action-button").click()
        url = self.origin + "/panel.html"
        _poll(lambda: self.chrome(f"const b = (() => {{ {CHROME_PANEL} }})(); return b && b.currentURI.spec;") == url,
              "the sidebar shows the panel", 60,
              lambda: f"{self.sidebar_state()}\nFirefox's log:\n{self.log()}")
        return Panel(self)

    def sidebar_state(self) -> dict:
        return self.chrome("""
            return {open: SidebarController.isOpen, showing: SidebarController.currentID,
                    width: document.getElementById('sidebar-box').getBoundingClientRect().width};""")

    def set_sidebar_width(self, width: str) -> int:
        """Resize the sidebar as a reader dragging its edge does (Firefox keeps it between 14em and 75vw);
        returns its new width in CSS pixels."""
        return self.chrome("""
            const box = document.getElementById('sidebar-box');
            box.style.width = arguments[0];
            return Math.round(box.getBoundingClientRect().width);""", width)

    def screenshot(self, path: Path) -> Path:
        """The whole browser window (toolbar, page and sidebar), as a reader sees it."""
        with self.client.using_context("chrome"):
            data = self.client.screenshot(format="base64")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        """Always leaves no Firefox behind: end the session, ask Firefox to quit, and kill it if it will not."""
        client = getattr(self, "client", None)
        if client is not None and client.session is not None:
            try:
                client._send_message("Marionette:Quit", {"flags": ["eForceQuit"]})
            except Exception:  # noqa: BLE001 (a browser that already went away is what we want)
                pass
            client.session = None
            client.cleanup_ran = True
        try:
            self.process.wait(timeout=30)  # Firefox quitting on its own
        except subprocess.TimeoutExpired:
            stop_process(self.process)
        if client is not None and client.client is not None:
            client.client.close()
        self._log.close()


class Panel:
    """The extension's page in the Firefox sidebar, driven with Marionette's ordinary content commands."""

    def __init__(self, firefox: Firefox) -> None:
        self.firefox = firefox

    def focus(self) -> Any:
        """Point Marionette's content commands at the sidebar's extension page; returns the client."""
        client = self.firefox.client
        url = self.firefox.chrome(f"""
            const panel = (() => {{ {CHROME_PANEL} }})();
            if (!panel) return null;
            const {{Marionette}} = ChromeUtils.importESModule("chrome://remote/content/components/Marionette.sys.mjs");
            const conn = Array.from(Marionette.server.conns).find(c => c.driver.currentSession);
            conn.driver.currentSession.contentBrowsingContext = panel.browsingContext;
            return panel.currentURI.spec;
        """)
        assert url == self.firefox.origin + "/panel.html", f"the sidebar does not show the panel ({url})"
        client.set_context("content")
        return client

    def eval(self, expression: str) -> Any:
        return self.focus().execute_script(f"return ({expression});")

    def wait_for(self, expression: str, timeout: float = PANEL_TIMEOUT) -> Any:
        return _poll(lambda: self.eval(_guarded(expression)), expression, timeout,
                     lambda: self.eval("document.body.dataset.state + ': ' + document.body.innerText"))

    def wait_state(self, *states: str, timeout: float = PANEL_TIMEOUT) -> str:
        self.wait_for(f"{json.dumps(list(states))}.includes(document.body.dataset.state)", timeout)
        return self.eval("document.body.dataset.state")

    def text(self, selector: str = "body") -> str:
        return self.eval(f"document.querySelector({json.dumps(selector)})?.innerText ?? ''")

    def click(self, selector: str) -> None:
        """WebDriver's element click in the panel: scrolled into view, then real mouse events at its centre."""
        self.focus().find_element(By.CSS_SELECTOR, selector).click()

    def press_enter_on(self, selector: str) -> None:
        """Keyboard use: focus the element, then a real Enter key press (WebDriver key actions)."""
        # Keys go to the window that has the focus: move it into the sidebar, as a reader's click or F6 does.
        assert self.firefox.chrome(f"""
            const panel = (() => {{ {CHROME_PANEL} }})();
            panel.ownerDocument.defaultView.focus();
            panel.focus();
            return Services.focus.focusedElement === panel || panel.ownerDocument.activeElement === panel;""")
        client = self.focus()
        assert self.eval(f"(el => !!el && (el.focus(), document.activeElement === el))"
                         f"(document.querySelector({json.dumps(selector)}))")
        client.actions.sequence("key", "keyboard").key_down(Keys.ENTER).key_up(Keys.ENTER).perform()
        client.actions.release()

    def screenshot(self, path: Path) -> Path:
        """The panel alone, its whole document."""
        data = self.focus().screenshot(format="base64", full=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path


def _guarded(expression: str) -> str:
    return f"(() => {{ try {{ return ({expression}); }} catch (e) {{ return false; }} }})()"


def _poll(probe: Any, what: str, timeout: float, shows: Any) -> Any:
    """Call probe until it returns something truthy; bounded by a generous timeout, never by a tight one."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"never satisfied {what!r} within {timeout:.0f} s; it shows:\n{shows()}")
        time.sleep(0.2)

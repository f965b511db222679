"""The per-browser builds of extension/, and Mozilla's `web-ext lint` on the Firefox one."""

from __future__ import annotations

import json
import subprocess
import zipfile
from pathlib import Path

import pytest
from e2e_harness import ROOT, build_extension, node_tool

SOURCE_MANIFEST = json.loads((ROOT / "extension" / "manifest.json").read_text(encoding="utf-8"))
WEB_EXT = ROOT / "node_modules" / ".bin" / "web-ext"


def test_chrome_build_is_the_source_tree(tmp_path: Path):
    out = build_extension.build("chrome", tmp_path)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest == SOURCE_MANIFEST
    assert manifest["side_panel"]["default_path"] == "panel.html"
    assert sorted(manifest["permissions"]) == ["activeTab", "scripting", "sidePanel", "storage"]
    assert not (out / "README.md").exists()
    for name in ("background.js", "common.js", "panel.html", "panel.js", "panel.css", "page_functions.js",
                 "options.html", "options.js", "icons/icon-128.png"):
        assert (out / name).read_bytes() == (ROOT / "extension" / name).read_bytes(), name


def test_firefox_build_uses_a_sidebar_and_an_event_page(tmp_path: Path):
    out = build_extension.build("firefox", tmp_path)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert "side_panel" not in manifest
    assert manifest["sidebar_action"]["default_panel"] == "panel.html"
    assert "sidePanel" not in manifest["permissions"]
    assert sorted(manifest["permissions"]) == ["activeTab", "scripting", "storage"]
    assert manifest["background"] == {"scripts": ["common.js", "background.js"]}
    assert manifest["browser_specific_settings"]["gecko"]["id"]
    # The same host access: the loopback server, and others only when asked for at save time.
    assert manifest["host_permissions"] == SOURCE_MANIFEST["host_permissions"]
    assert manifest["optional_host_permissions"] == SOURCE_MANIFEST["optional_host_permissions"]


def test_every_file_the_manifests_and_pages_name_exists():
    source = ROOT / "extension"
    named = {SOURCE_MANIFEST["background"]["service_worker"], SOURCE_MANIFEST["side_panel"]["default_path"],
             SOURCE_MANIFEST["options_ui"]["page"], *SOURCE_MANIFEST["icons"].values(),
             *SOURCE_MANIFEST["action"]["default_icon"].values()}
    for page in ("panel.html", "options.html"):
        html = (source / page).read_text(encoding="utf-8")
        named.update(part.split('"')[0] for part in html.split('src="')[1:])
        named.update(part.split('"')[0] for part in html.split('href="')[1:])
    missing = sorted(name for name in named if not (source / name).is_file())
    assert not missing


def test_zip_holds_the_build(tmp_path: Path):
    out = build_extension.build("firefox", tmp_path)
    archive = build_extension.zip_dir(out, tmp_path / "firefox.zip")
    with zipfile.ZipFile(archive) as z:
        names = set(z.namelist())
        assert "manifest.json" in names and "panel.html" in names
        assert json.loads(z.read("manifest.json"))["sidebar_action"]


def test_icons_are_reproducible(tmp_path: Path):
    for size in (16, 32, 48, 128):
        drawn = build_extension.draw_icon(size)
        assert drawn == (ROOT / "extension" / "icons" / f"icon-{size}.png").read_bytes()


@pytest.mark.e2e
def test_web_ext_lint_passes_on_the_firefox_build(tmp_path: Path):
    if not (node_tool("node") and node_tool("npm")):
        pytest.skip("node and npm are missing: web-ext lint needs them (apt-get install nodejs npm)")
    if not WEB_EXT.exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=ROOT, check=True,
                       timeout=600)
    out = build_extension.build("firefox", tmp_path)
    run = subprocess.run(
        [str(WEB_EXT), "lint", "--source-dir", str(out), "--output", "json", "--no-input", "--no-config-discovery"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    report = json.loads(run.stdout[run.stdout.index("{"):])
    assert report["errors"] == [], report["errors"]
    assert report["warnings"] == [], report["warnings"]
    assert run.returncode == 0, run.stderr

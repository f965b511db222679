"""Build the Backstory browser extension for Chrome and Firefox from the one source tree in extension/.

extension/manifest.json is the Chrome manifest (so extension/ loads unpacked in Chrome as it is).
Firefox needs a few different keys (sidebar_action instead of side_panel, background scripts instead of
a service worker, a gecko id), so this script writes both variants:

    python scripts/build_extension.py                 # build/extension/chrome and build/extension/firefox
    python scripts/build_extension.py --zip           # ... plus .zip files ready to upload
    python scripts/build_extension.py --icons         # redraw extension/icons/*.png

Only the standard library is used.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import struct
import sys
import zipfile
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "extension"
DEFAULT_OUT = ROOT / "build" / "extension"
BROWSERS = ("chrome", "firefox")
GECKO_ID = "backstory@backstory.invalid"
FIREFOX_MIN_VERSION = "142.0"
# Files of the source tree that are not part of the shipped extension.
EXCLUDED = {"README.md"}


def load_manifest(source: Path = SOURCE) -> dict:
    return json.loads((source / "manifest.json").read_text(encoding="utf-8"))


def chrome_manifest(base: dict) -> dict:
    """Chrome's manifest is the source manifest itself."""
    return copy.deepcopy(base)


def firefox_manifest(base: dict) -> dict:
    """Firefox: sidebar_action for the panel, an event page for the background, a gecko id."""
    manifest = copy.deepcopy(base)
    # The key fixes the Chrome extension id (the server's default allowed origin); Firefox has
    # no use for it: its moz-extension:// origins are random per profile.
    manifest.pop("key", None)
    panel = manifest.pop("side_panel")["default_path"]
    manifest["sidebar_action"] = {
        "default_panel": panel,
        "default_title": manifest["name"],
        "default_icon": dict(manifest["action"]["default_icon"]),
        "open_at_install": False,
    }
    manifest["permissions"] = [p for p in manifest["permissions"] if p != "sidePanel"]
    # The Chrome worker pulls common.js in with importScripts; a Firefox event page lists both scripts.
    manifest["background"] = {"scripts": ["common.js", manifest["background"]["service_worker"]]}
    manifest["browser_specific_settings"] = {
        "gecko": {
            "id": GECKO_ID,
            "strict_min_version": FIREFOX_MIN_VERSION,
            # Pages go only to the reader's own server, never to the extension's developers.
            "data_collection_permissions": {"required": ["none"]},
        }
    }
    return manifest


MANIFESTS = {"chrome": chrome_manifest, "firefox": firefox_manifest}


def shipped_files(source: Path = SOURCE) -> list[Path]:
    """The files copied into a build, relative to the source tree (manifest.json excluded)."""
    files = []
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if path.is_file() and rel.name not in EXCLUDED and rel.as_posix() != "manifest.json" \
                and not any(part.startswith(".") for part in rel.parts):
            files.append(rel)
    return files


def build(browser: str, out: Path = DEFAULT_OUT, source: Path = SOURCE) -> Path:
    """Write the unpacked extension for one browser into out/<browser>/ and return that directory."""
    if browser not in MANIFESTS:
        raise ValueError(f"unknown browser {browser!r}; expected one of {', '.join(BROWSERS)}")
    target = out / browser
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for rel in shipped_files(source):
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / rel, target / rel)
    manifest = MANIFESTS[browser](load_manifest(source))
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return target


def zip_dir(directory: Path, zip_path: Path) -> Path:
    """Zip an unpacked build (files at the archive root, stable order and timestamps)."""
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                info = zipfile.ZipInfo(path.relative_to(directory).as_posix(), date_time=(2020, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, path.read_bytes())
    return zip_path


# ---------- icons: a blue page with lines of text and one highlighted line ----------

def _png(size: int, pixels: list[list[tuple[int, int, int, int]]]) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + bytes(c for px in row for c in px) for row in pixels)
    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def draw_icon(size: int) -> bytes:
    """Draw the icon at one size, anti-aliased by 4x4 supersampling."""
    blue, white, yellow = (31, 95, 191), (255, 255, 255), (255, 214, 64)
    radius = 0.2
    lines = [(0.26, 0.22, 0.78, white), (0.44, 0.22, 0.70, yellow), (0.62, 0.22, 0.78, white)]
    bar = 0.10

    def colour_at(x: float, y: float) -> tuple[tuple[int, int, int], bool]:
        # Rounded square.
        cx = min(max(x, radius), 1 - radius)
        cy = min(max(y, radius), 1 - radius)
        if (x - cx) ** 2 + (y - cy) ** 2 > radius**2:
            return (0, 0, 0), False
        for top, left, right, colour in lines:
            if top <= y < top + bar and left <= x < right:
                return colour, True
        return blue, True

    n = 4
    rows = []
    for py in range(size):
        row = []
        for px in range(size):
            acc = [0, 0, 0]
            hits = 0
            for sy in range(n):
                for sx in range(n):
                    colour, inside = colour_at((px + (sx + 0.5) / n) / size, (py + (sy + 0.5) / n) / size)
                    if inside:
                        hits += 1
                        for i in range(3):
                            acc[i] += colour[i]
            if hits:
                row.append((acc[0] // hits, acc[1] // hits, acc[2] // hits, round(255 * hits / n**2)))
            else:
                row.append((0, 0, 0, 0))
        rows.append(row)
    return _png(size, rows)


def write_icons(source: Path = SOURCE) -> list[Path]:
    written = []
    for size in (16, 32, 48, 128):
        path = source / "icons" / f"icon-{size}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(draw_icon(size))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory (default build/extension)")
    parser.add_argument("--browser", choices=[*BROWSERS, "all"], default="all")
    parser.add_argument("--zip", action="store_true", help="also write <out>/backstory-<browser>-<version>.zip")
    parser.add_argument("--icons", action="store_true", help="redraw extension/icons/*.png and exit")
    args = parser.parse_args(argv)
    if args.icons:
        for path in write_icons():
            print(path.relative_to(ROOT))
        return 0
    version = load_manifest()["version"]
    for browser in BROWSERS if args.browser == "all" else (args.browser,):
        target = build(browser, args.out)
        print(f"{browser}: {target}")
        if args.zip:
            print(f"{browser}: {zip_dir(target, args.out / f'backstory-{browser}-{version}.zip')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

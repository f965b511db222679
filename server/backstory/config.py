"""Settings: one Struct, read from ``BACKSTORY_*`` environment variables by :func:`from_env`.

Each field's description is the documentation: the README's settings table is generated from it
(``python -m backstory.config``) and a test fails when the two disagree.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping

import msgspec
from msgspec import Meta

PREFIX = "BACKSTORY_"
# Backstory's own Chrome extension: the id Chrome derives from the public key in
# extension/manifest.json, so unpacked and packed builds share it (a test checks the two agree).
CHROME_EXTENSION_ORIGIN = "chrome-extension://hfpghaeheenpclmchdkdnmecfgfkoonj"


def default_archive_path() -> str:
    from platformdirs import user_data_dir

    return str(Path(user_data_dir("backstory", appauthor=False)) / "archive.sqlite3")


# The archive setting's older names, still read; DATABASE_URL is the one hosting platforms set.
ARCHIVE_ALIASES = ("BACKSTORY_ARCHIVE_PATH", "BACKSTORY_DATABASE_URL", "DATABASE_URL")
# SQLAlchemy's spelling: the path is all after the third slash (sqlite:////abs/path, sqlite:///relative).
SQLITE_URL = "sqlite:///"
# "://" required, so that a Windows path (C:\archive) stays a path.
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_SCHEME_ALIASES = {"postgres": "postgresql"}  # libpq and most hosts accept both
# From the ":" after the user to the LAST "@", so that a password holding "/", "@" or "#" (which
# should have been percent-encoded) is still hidden whole; masking too much is harmless.
_USERINFO_PASSWORD = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^:/@]*:).*@")
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&#]*", re.I)


def archive_url(value: str) -> str:
    """The archive setting in its one spelling, a URL whose scheme names the backend: a plain path
    is shorthand for ``sqlite:///PATH`` (``~`` expanded), empty is the default file. ValueError
    for a SQLite URL with a host or no path."""
    value = value.strip()
    match = _SCHEME.match(value)
    if match is None:
        return SQLITE_URL + str(Path(value or default_archive_path()).expanduser())
    scheme = match.group(1).lower()
    url = _SCHEME_ALIASES.get(scheme, scheme) + value[match.end(1):]
    if scheme == "sqlite":
        path = url.removeprefix(SQLITE_URL)
        if path == url or not path:
            raise ValueError(f"{masked_url(url)} is not a SQLite archive URL: write sqlite:///PATH "
                             "(sqlite:////abs/path, sqlite:///relative) or just the path")
        return SQLITE_URL + str(Path(path).expanduser())
    return url


def masked_url(url: str) -> str:
    """The URL as it may be shown or logged: a password in it (``user:PASSWORD@host`` or a
    ``password=`` parameter, both allowed in a PostgreSQL URL) replaced by ``***``."""
    return _QUERY_PASSWORD.sub(r"\1***", _USERINFO_PASSWORD.sub(r"\1***@", url))


def one_archive(given: Mapping[str, str]) -> str | None:
    """The archive named by settings that may come under several names (``{name: value}``,
    empty values ignored), as :func:`archive_url`; None when none is given. ValueError when two
    name different archives: the same archive twice is fine, whatever its spelling."""
    urls = {name: archive_url(value) for name, value in given.items() if value.strip()}
    if len(set(urls.values())) > 1:
        listed = ", ".join(f"{name}={masked_url(url)}" for name, url in urls.items())
        raise ValueError(f"two different archives are set ({listed}); set only one")
    return next(iter(urls.values()), None)


def is_loopback(host: str) -> bool:
    """True for an address or name that only this machine can reach."""
    host = host.strip().strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def open_bind_refusal(settings: "Settings", stored_tokens: int = 0) -> str | None:
    """Why the server must not start as configured, or None: listening beyond this machine with
    no token (stored in the archive, or BACKSTORY_API_TOKEN) would let anyone on the network read
    and change the archive."""
    if is_loopback(settings.host) or settings.api_token or stored_tokens or settings.insecure_no_auth:
        return None
    return (f"refusing to serve {settings.host} without authentication: anyone who can reach it could read "
            "and change the archive. Create a token (backstory tokens create NAME), set BACKSTORY_API_TOKEN, "
            "or pass --insecure-no-auth (BACKSTORY_INSECURE_NO_AUTH=1) if the network itself is trusted.")


def _networks(value: str | list[str]) -> list[str]:
    items = value.split(",") if isinstance(value, str) else value
    out = []
    for item in items:
        item = item.strip()
        if item:
            out.append(str(ipaddress.ip_network(item, strict=False)))
    return out


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    host: Annotated[str, Meta(description="Address the server listens on.")] = "127.0.0.1"
    port: Annotated[int, Meta(ge=0, le=65535, description="Port the server listens on.")] = 8000
    archive: Annotated[
        str,
        Meta(description="Where stories are kept, as a URL whose scheme picks the backend: `sqlite:///PATH` (`sqlite:////abs/path`, `sqlite:///relative`) or a plain file path for the SQLite archive (created on first start); `postgresql://…` (or `postgres://`) for a PostgreSQL database with the pgvector extension, shared by several servers (the schema is created on first start). Also read from BACKSTORY_ARCHIVE_PATH, BACKSTORY_DATABASE_URL and DATABASE_URL (flags: --archive, --database-url); two different archives set at once is an error. Default: archive.sqlite3 in the user's data directory."),
    ] = ""
    feed_poll_interval: Annotated[
        float,
        Meta(gt=0, le=60, description="Seconds between the server's looks at the archive's change feed: stories another process (an import, another server on the same archive) adds, changes or deletes reach the related stories and duplicate detection within about this long."),
    ] = 0.5
    worker_stalled_after: Annotated[
        float,
        Meta(gt=0, le=3600, description="PostgreSQL archive: seconds without a heartbeat from a worker (a `backstory worker` or a server) after which the jobs it had taken are given to another. Its heartbeat beats three times as often."),
    ] = 30.0
    analysis: Annotated[
        Literal["local", "remote"],
        Meta(description="Where a reader's analysis runs: `local`, in the server that received it; `remote`, in `backstory worker`s, through a PostgreSQL archive's job queue (the server then loads no models: a thin API tier; the flag `--analysis`)."),
    ] = "local"
    server_takes_jobs: Annotated[
        bool,
        Meta(description="PostgreSQL archive: the server also takes queued analyses (stories an import left) while no reader waits, as a worker would. Off for API servers that leave them to `backstory worker`s."),
    ] = True
    feeds_interval: Annotated[
        float,
        Meta(gt=0, description="Seconds between two polls of a subscribed news feed (`backstory feeds add`), unless the feed's own `ttl` asks for longer. A feed that fails is polled again after twice as long each time, up to BACKSTORY_FEEDS_MAX_BACKOFF."),
    ] = 1800.0
    feeds_min_interval: Annotated[
        float,
        Meta(gt=0, description="The shortest interval between two polls of one feed, whatever the feed or BACKSTORY_FEEDS_INTERVAL says."),
    ] = 300.0
    feeds_max_backoff: Annotated[
        float,
        Meta(gt=0, description="The longest wait before polling a failing feed again (seconds)."),
    ] = 21600.0
    max_body_bytes: Annotated[
        int, Meta(ge=1024, description="Largest request body accepted (bytes); larger ones get 413.")
    ] = 10 * 1024 * 1024
    max_import_bytes: Annotated[
        int,
        Meta(ge=1024, description="Largest export file `POST /api/v1/imports` accepts (bytes); larger ones get 413. The file waits on disk (the system's temporary folder, TMPDIR) while it is imported, never in memory."),
    ] = 200 * 1024 * 1024
    fetch_timeout: Annotated[
        float, Meta(gt=0, description="Seconds allowed for fetching a page the client did not send.")
    ] = 10.0
    max_fetch_bytes: Annotated[
        int, Meta(ge=1024, description="Largest fetched page (bytes); reading stops past it.")
    ] = 5 * 1024 * 1024
    max_redirects: Annotated[int, Meta(ge=0, le=20, description="Redirect hops followed when fetching.")] = 5
    fetch_host_delay: Annotated[
        float,
        Meta(ge=0, le=600, description="Imports and feeds: seconds between the end of one request to a host and the start of the next (a longer Crawl-delay in the host's robots.txt wins, up to 60 s). Each host gets one request at a time."),
    ] = 1.0
    fetch_hosts_at_once: Annotated[
        int,
        Meta(ge=1, le=64, description="Imports and feeds: hosts fetched from at the same time."),
    ] = 4
    rate_limit_analyze: Annotated[
        str,
        Meta(pattern=r"^([1-9][0-9]*/(second|minute|hour))?$",
             description="Analyses a token (or a client address without one) may ask for: `N/second`, `N/minute` or `N/hour`; past it 429 with Retry-After. Empty: no limit. Each server process counts its own."),
    ] = ""
    rate_limit_read: Annotated[
        str,
        Meta(pattern=r"^([1-9][0-9]*/(second|minute|hour))?$",
             description="The other /api/ calls (search, get, related, delete) a token (or a client address) may make: `N/second`, `N/minute` or `N/hour`. Empty: no limit."),
    ] = ""
    trusted_proxies: Annotated[
        list[str],
        Meta(description="Comma-separated networks of reverse proxies whose X-Forwarded-For names the client (for the rate limits); any other peer is the client itself."),
    ] = []
    allowed_networks: Annotated[
        list[str],
        Meta(description="Comma-separated networks the fetcher may reach even though they are private or loopback (e.g. 127.0.0.0/8 for tests, 10.1.0.0/16 for an intranet)."),
    ] = []
    denied_networks: Annotated[
        list[str], Meta(description="Comma-separated extra networks the fetcher must never reach.")
    ] = []
    api_token: Annotated[
        str, Meta(description="The one-person shortcut: a single admin token (named `api-token`); with it every /api request must carry 'Authorization: Bearer <token>'. A team creates named tokens instead (`backstory tokens create NAME`).")
    ] = ""
    cors_origins: Annotated[
        list[str],
        Meta(description="Comma-separated extra web origins (e.g. https://intranet.example) allowed to call the API from a browser page, besides the extension origins."),
    ] = []
    extension_origins: Annotated[
        list[str],
        Meta(description="Comma-separated browser-extension origins allowed to call the API: Backstory's own Chrome extension (its id is fixed by the key in extension/manifest.json) and any Firefox moz-extension origin (random per profile; no web page can send one). 'SCHEME://*' admits every origin of a scheme."),
    ] = msgspec.field(default_factory=lambda: [CHROME_EXTENSION_ORIGIN, "moz-extension://*"])
    allowed_hosts: Annotated[
        list[str],
        Meta(description="Comma-separated Host names the server answers to (a DNS-rebinding page sends its own); '*.example.org' admits subdomains. Empty: the loopback names when bound to loopback, the bound address and loopback names when bound to one address, any name when bound to all addresses (which needs a token)."),
    ] = []
    insecure_no_auth: Annotated[
        bool,
        Meta(description="Serve a non-loopback address without an API token (refused otherwise: anyone on the network could read and change the archive)."),
    ] = False
    workers: Annotated[
        int, Meta(ge=1, le=64, description="Analyses run at once; further requests queue (4 gave the most analyses a second on 2 cores).")
    ] = 4
    analysis_deadline: Annotated[
        float,
        Meta(gt=0, description="Seconds one analysis may take: its extraction and its language analysis (not the fetch, nor the wait for a free worker between them). Past it the client gets 503 (or, streamed, an error line after the facts) and nothing is stored: a safety net, as the limits below keep an analysis far shorter."),
    ] = 20.0
    max_analysis_chars: Annotated[
        int,
        Meta(ge=1000, description="Characters of a story's text that its entities, keyphrases and embedding come from: a longer text is returned and archived whole, but summarised by its first part (cut at a word boundary), so one long text cannot hold the language workers for long."),
    ] = 50_000
    max_analysis_tokens: Annotated[
        int,
        Meta(ge=100, description="Tokens (words, punctuation marks and line breaks) of that first part: spaCy's time goes by tokens, so a text of many tiny ones (one-word lines, lists of links) is cut sooner."),
    ] = 10_000
    max_html_elements: Annotated[
        int,
        Meta(ge=100, description="HTML elements of a page that extraction reads, in document order (the head, then the body from the top); the rest of a larger page is dropped first, as extraction's time grows with the element count."),
    ] = 8_000
    spacy_processes: Annotated[
        int,
        Meta(ge=1, le=2, description="spaCy processes: 2 runs tagger and NER side by side (fastest); 1 saves ~15 MB of memory (the two share the loaded model) for ~50 ms more per story."),
    ] = 2
    log_level: Annotated[str, Meta(description="Logging level: DEBUG, INFO, WARNING or ERROR.")] = "INFO"
    model_cache: Annotated[
        str,
        Meta(description="Folder for the models prepared once from the shipped ones (the quantised embedding model, the compact language identifier), read by every later start; an upgrade that changes one replaces its file. Default: the user's cache directory."),
    ] = ""

    def replace(self, **changes: Any) -> "Settings":
        return msgspec.structs.replace(self, **changes)


_LIST_FIELDS = {"allowed_networks", "denied_networks", "cors_origins", "extension_origins", "allowed_hosts",
                "trusted_proxies"}


def from_env(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build Settings from ``BACKSTORY_<FIELD>`` variables (and the archive's aliases), then
    overrides. ValueError for an invalid value or two different archives."""
    env = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    for field in msgspec.structs.fields(Settings):
        key = PREFIX + field.name.upper()
        if key in env:
            value: Any = env[key]
            if field.name in _LIST_FIELDS:
                value = [v.strip() for v in value.split(",") if v.strip()]
            raw[field.name] = value
    try:
        archive = one_archive({key: env[key] for key in (PREFIX + "ARCHIVE", *ARCHIVE_ALIASES) if key in env})
    except ValueError as exc:
        raise ValueError(f"invalid setting archive: {exc}") from None
    if archive is not None:
        raw["archive"] = archive
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        settings = msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ValueError(f"invalid setting: {exc}") from None
    checks = {"allowed_networks": _networks, "denied_networks": _networks, "trusted_proxies": _networks,
              "archive": archive_url}
    for name, check in checks.items():
        try:
            check(getattr(settings, name))
        except ValueError as exc:
            raise ValueError(f"invalid setting {name}: {exc}") from None
    return settings


def settings_table() -> str:
    """The Markdown table of settings shown in the README."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    defaults = Settings()
    for field in msgspec.structs.fields(Settings):
        meta = field.type.__metadata__[0] if hasattr(field.type, "__metadata__") else None
        default = getattr(defaults, field.name)
        if isinstance(default, list):
            default = ",".join(default)
        shown = f"`{default}`" if default not in ("", []) else "(empty)"
        rows.append(f"| `{PREFIX}{field.name.upper()}` | {shown} | {meta.description if meta else ''} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(settings_table())

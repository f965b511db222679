"""The archive contract: :class:`StoryRecord`, the :class:`Archive` protocol, id/dedup helpers.

Every backend (SQLite now, PostgreSQL + pgvector later) stores StoryRecords, keeps one row per
story (same canonical URL or near-identical text), and answers ``related`` through the shared
in-memory :class:`backstory.archive.related.RelatedIndex`. This module imports no backend: the
registry in ``backstory.archive`` picks one.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from datetime import datetime, timezone
from typing import AsyncIterator, Protocol, runtime_checkable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec

from .. import schemas
from ..words import word_count

EMBEDDING_DIM = 384
# Two texts whose 64-bit SimHashes differ in at most this many bits are one story (used when
# only the hash is known: find_duplicate without the text, and excluding duplicates from related stories).
SIMHASH_MAX_DISTANCE = 3
# With both texts at hand, hashes up to this far apart are candidates, confirmed when the texts
# share this fraction of their word 3-shingles (a syndicated copy with a changed line or byline).
# On ECB+ one inserted word in a 130-word text moves the hash 8 bits; distinct reports of the
# same event differ by 6-12 bits at 0.5-0.75 shingle overlap, copies by 1-5 bits at > 0.95.
SIMHASH_CANDIDATE_DISTANCE = 10
DUPLICATE_JACCARD = 0.8
# Texts with fewer word shingles than this are too short for a trustworthy SimHash match.
SIMHASH_MIN_SHINGLES = 24

_TRACKING_PARAMS = re.compile(
    r"^(utm_\w*|pk_\w*|mtm_\w*|hsa_\w*|_?_hs\w*|vero_\w*|oly_\w*|fbclid|gclid|gclsrc|dclid|gbraid|wbraid|msclkid"
    r"|yclid|twclid|igshid|mc_cid|mc_eid|_ga|_gl|ref_src|ref_url|cmpid|ncid|ocid|smid|smtyp|mkt_tok|spm|s_kwcid)$",
    re.I,
)
_WORD = re.compile(r"\w+", re.UNICODE)
_MASK64 = (1 << 64) - 1


def utc_now() -> str:
    """Current time as ISO 8601 UTC with seconds, e.g. ``2026-01-02T03:04:05Z``."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class StoryRecord(msgspec.Struct, kw_only=True):
    """One archived story: the analysed text and everything derived from it."""

    story_id: str = ""
    url: str
    canonical_url: str
    title: str | None = None
    byline: str | None = None
    site_name: str | None = None
    published: str | None = None
    language: str | None = None
    text: str = ""
    word_count: int = 0
    keyphrases: list[schemas.Keyphrase] = []
    entities: list[schemas.Entity] = []
    embedding: list[float] | None = None
    simhash: int = 0
    content_hash: str = ""
    first_seen: str = ""
    last_seen: str = ""
    analysed: bool = True
    """False for a story stored by a bulk import whose entities, keyphrases and embedding are
    still to be computed (the server does it in the background)."""


def normalize_url(url: str) -> str:
    """The form URLs are compared in: lower-case scheme and host, no default port, no fragment,
    no tracking parameters (utm_*, fbclid, ...), a path of at least "/"."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return url.strip()
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower().rstrip(".")
    try:
        port = parts.port if parts.port and (scheme, parts.port) not in (("http", 80), ("https", 443)) else None
    except ValueError:
        port = None
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _TRACKING_PARAMS.match(k)])
    return urlunsplit((scheme, netloc, parts.path or "/", query, ""))


def _site(url: str) -> str | None:
    """The site a URL belongs to: its registrable domain by the Public Suffix List shipped in the
    ``tld`` package (``news.example.co.uk`` -> ``example.co.uk``; never downloaded), or its host
    when that is an IP address. A host under a suffix the list does not know (``news.example``)
    takes the list's default rule, "*": its last two labels; a one-label host (``localhost``) is
    a site of its own."""
    from tld import get_fld

    try:
        host = (urlsplit(url.strip()).hostname or "").rstrip(".").lower()
    except ValueError:
        return None
    if not host:
        return None
    try:
        return ipaddress.ip_address(host).compressed
    except ValueError:
        pass
    try:
        host = host.encode("idna").decode("ascii")  # one spelling for an international name
    except UnicodeError:
        pass
    return get_fld(host, fix_protocol=True, fail_silently=True) or ".".join(host.split(".")[-2:])


def identity_url(canonical_url: str | None, page_url: str) -> str:
    """The (normalised) URL a page is archived under: the canonical URL the page declares when it
    is on the same site as the page's URL (the client's URL, or the final URL of the server's own
    fetch), else the page's URL. Any page can name any canonical URL: trusting one on another
    site would let it take over that site's stories."""
    if canonical_url:
        site = _site(canonical_url)
        if site is not None and site == _site(page_url):
            return normalize_url(canonical_url)
    return normalize_url(page_url)


def story_id_for(canonical_url: str) -> str:
    """Stable 16-hex-digit id of a story, from its (normalised) canonical URL."""
    return hashlib.sha256(normalize_url(canonical_url).encode("utf-8")).hexdigest()[:16]


def content_hash(text: str) -> str:
    """SHA-256 of the whitespace-normalised text (exact-duplicate check)."""
    return hashlib.sha256(" ".join(text.split()).encode("utf-8")).hexdigest()


def to_signed64(value: int) -> int:
    value &= _MASK64
    return value - (1 << 64) if value >= 1 << 63 else value


def _shingles(text: str) -> list[str]:
    words = _WORD.findall(text.lower())
    if len(words) < 3:
        return [" ".join(words)] if words else []
    return [" ".join(words[i : i + 3]) for i in range(len(words) - 2)]


def simhash(text: str) -> int:
    """64-bit SimHash of word 3-shingles, as a signed int64 (fits an SQLite INTEGER)."""
    import numpy as np

    shingles = set(_shingles(text))
    if not shingles:
        return 0
    hashes = np.fromiter(
        (int.from_bytes(hashlib.blake2b(s.encode("utf-8"), digest_size=8).digest(), "little") for s in shingles),
        dtype=np.uint64, count=len(shingles),
    )
    bits = np.unpackbits(hashes.view(np.uint8).reshape(-1, 8), axis=1, bitorder="little")  # (n, 64), bit i = 2**i
    votes = 2 * bits.sum(axis=0, dtype=np.int64) - len(shingles)
    value = 0
    for bit in np.flatnonzero(votes > 0).tolist():
        value |= 1 << bit
    return to_signed64(value)


def shingle_jaccard(a: str, b: str) -> float:
    """Jaccard overlap of the two texts' word 3-shingle sets."""
    sa, sb = set(_shingles(a)), set(_shingles(b))
    return len(sa & sb) / len(sa | sb) if sa or sb else 1.0


def simhash_usable(text: str) -> bool:
    """True when the text is long enough for SimHash near-duplicate matching."""
    return len(_WORD.findall(text)) >= SIMHASH_MIN_SHINGLES + 2


def hamming(a: int, b: int) -> int:
    return ((a ^ b) & _MASK64).bit_count()


def simhash_bands(value: int) -> tuple[int, int, int, int]:
    """The four 16-bit bands: two hashes within 3 bits share at least one band exactly."""
    v = value & _MASK64
    return (v & 0xFFFF, (v >> 16) & 0xFFFF, (v >> 32) & 0xFFFF, (v >> 48) & 0xFFFF)


def prepare(record: StoryRecord) -> StoryRecord:
    """Fill the derived fields a caller may leave empty (id, hashes, word count, timestamps)."""
    changes: dict = {}
    canonical = normalize_url(record.canonical_url or record.url)
    if canonical != record.canonical_url:
        changes["canonical_url"] = canonical
    if not record.story_id:
        changes["story_id"] = story_id_for(canonical)
    if not record.simhash and record.text:
        changes["simhash"] = simhash(record.text)
    if not record.content_hash:
        changes["content_hash"] = content_hash(record.text)
    if not record.word_count and record.text:
        changes["word_count"] = word_count(record.text)
    now = utc_now()
    if not record.first_seen:
        changes["first_seen"] = record.last_seen or now
    if not record.last_seen:
        changes["last_seen"] = now
    if record.embedding is not None and len(record.embedding) != EMBEDDING_DIM:
        raise ValueError(f"embedding must have {EMBEDDING_DIM} dimensions, not {len(record.embedding)}")
    return msgspec.structs.replace(record, **changes) if changes else record


@runtime_checkable
class Archive(Protocol):
    """What the app needs from an archive backend. All methods are coroutines and never block the loop."""

    @property
    def generation(self) -> int:
        """A number that changes after every write this archive object makes, and after it
        applies another process's writes from the change feed (see ``archive/feed.py``). While it
        stays the same, :meth:`related` for the same record gives the same answer (the pipeline
        reuses it)."""

    async def upsert(self, record: StoryRecord) -> StoryRecord:
        """Store a story. The same canonical URL is the same page: the story is updated (id and
        first_seen kept, last_seen refreshed). A near-identical text elsewhere is ONE story too,
        but the stored one is left as it was (last_seen refreshed): the copy's URLs become its
        aliases. Returns the stored record."""

    async def find_duplicate(self, canonical_url: str, simhash: int, text: str | None = None) -> str | None:
        """Id of the story :meth:`upsert` would store this page as, if any: by canonical URL (or
        alias), else by near-identical text (the SimHash alone when the text is not given)."""

    async def get(self, story_id: str) -> StoryRecord | None: ...

    async def delete(self, story_id: str) -> bool: ...

    async def search(self, q: str | None, limit: int, offset: int) -> tuple[list[schemas.StorySummary], int]:
        """Full-text search (with snippets) when q is given, else newest first. Returns (page, total)."""

    async def related(self, record: StoryRecord, limit: int = 10) -> list[schemas.RelatedStory]:
        """Stories about the same event as ``record`` (archived or not), best first, itself and its
        duplicates excluded; reasons are the shared entities and keyphrases."""

    async def has_canonical_url(self, url: str) -> bool: ...

    def export(self) -> AsyncIterator[StoryRecord]:
        """Every stored record, losslessly (oldest first)."""

    async def import_record(self, record: StoryRecord) -> StoryRecord:
        """Store a record as it is (keeps story_id and first_seen); merges with a stored duplicate."""

    async def count(self) -> int: ...

    async def pending(self, limit: int = 8) -> list[StoryRecord]:
        """Stories stored but not analysed yet (``analysed`` False), oldest first."""
        ...

    async def count_pending(self) -> int: ...

    async def store_analysis(self, record: StoryRecord) -> bool:
        """Complete a pending story in place; False when it is gone or already analysed."""
        ...

    async def close(self) -> None: ...


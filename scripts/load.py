#!/usr/bin/env python3
"""Mixed load (issue 19): the real server, N clients that always wait, a fixed mix of requests.

    .venv/bin/python scripts/load.py                          # 16 clients for 60 s, then 64 for 60 s
    .venv/bin/python scripts/load.py --clients 16 --seconds 15
    .venv/bin/python scripts/load.py --markdown               # + a block for docs/benchmarks.md
    .venv/bin/python scripts/load.py --json                   # + the whole report as one JSON line
    .venv/bin/python scripts/load.py --weight huge_html=0     # change one kind's weight

Starts ``backstory serve`` on 127.0.0.1 (``bench.Server``) on a copy of the bench's cached
10,000-story archive (``scripts/bench.py`` builds it the first time), or on a new empty archive
with ``--fresh``. After ``/readyz`` answers 200 and a short warm-up, each phase (one per
``--clients``) runs that many clients for ``--seconds`` (at most ``--max-requests`` requests);
each client sends one request, waits for its answer, and draws the next kind at random (its own
``random.Random`` from ``--seed``) with the weights of :data:`KINDS` (printed in the report):

* ``analyze_new``: a dev page's HTML under a URL never sent before (an uncached analysis);
* ``analyze_cached``: one of the last answered ``analyze_new`` requests again (a cache hit);
* ``analyze_text``: a DUC text with ``archive: false`` under a new URL;
* ``search``, ``story``, ``related``: ``GET /api/v1/stories?q=``, ``/stories/{id}`` and
  ``/stories/{id}/related`` for ids and keyphrases seen in earlier answers;
* hostile requests that must be refused: a ``text/plain`` body (415), a foreign ``Origin`` (403),
  invalid UTF-8 in the JSON (400), JSON nested 100,000 deep (400), a foreign ``Host`` (400), a
  title of a million characters (any 4xx);
* ``huge_text`` / ``huge_html``: a text just under the text limit, an HTML page just under the
  request body limit, both ``archive: false``: they must be answered (200, a 4xx or 503) within
  ``--huge-timeout`` (the server's analysis deadline plus queueing). At most ``--huge-in-flight``
  are in flight at once, and their latency is kept out of the overall row.

A draw that cannot be sent yet (no id seen, no answered page to repeat, the huge slot taken) is
drawn again among the kinds that can. An **error** is a 5xx, a transport error, a timeout, or any
status not expected for the kind (a 200 to a hostile request). Memory (``bench.proc_memory``: the
unique resident pages of the server and its spaCy processes, each process's RSS) is read before
each phase, right after it and after ``--settle`` idle seconds.

Prints a table; ``--json`` adds the report as one JSON line at the end, ``--markdown`` a block to
paste into ``docs/benchmarks.md``. Needs the evaluation data (``--data``); without it, it says so
and exits 0. Exits 1 when any error was counted, 2 when the server did not start or the
warm-up failed (the server's log tail is printed).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench  # noqa: E402


def _only(*codes: int) -> Callable[[int], bool]:
    return lambda status: status in codes


def _client_error(status: int) -> bool:
    return 400 <= status < 500


def _bounded(status: int) -> bool:
    return status == 200 or 400 <= status < 500 or status == 503


@dataclass(frozen=True)
class Kind:
    weight: float
    expect: str
    ok: Callable[[int], bool]
    hostile: bool = False
    huge: bool = False


# Weights are percentages of the draws; most requests are what a reader's extension sends.
KINDS: dict[str, Kind] = {
    "analyze_new": Kind(32, "200", _only(200)),
    "analyze_cached": Kind(15, "200", _only(200)),
    "analyze_text": Kind(10, "200", _only(200)),
    "search": Kind(12, "200", _only(200)),
    "story": Kind(8, "200", _only(200)),
    "related": Kind(8, "200", _only(200)),
    "text_plain": Kind(2, "415", _only(415), hostile=True),
    "foreign_origin": Kind(2, "403", _only(403), hostile=True),
    "bad_utf8": Kind(2, "400", _only(400), hostile=True),
    "deep_json": Kind(2, "400", _only(400), hostile=True),
    "bad_host": Kind(2, "400", _only(400), hostile=True),
    "long_title": Kind(2, "4xx", _client_error, hostile=True),
    "huge_text": Kind(2, "200/4xx/503", _bounded, huge=True),
    "huge_html": Kind(1, "200/4xx/503", _bounded, huge=True),
}

URL_SLOT = "\x00load-url\x00"
SEARCH_TERMS = ["police", "president", "court", "earthquake", "election", "fire", "government",
                "minister", "storm", "company", "arrested", "killed", "team", "market", "city"]
FOREIGN_ORIGIN = "https://attacker.example"
FOREIGN_HOST = "attacker.example"
NESTING = 100_000
LONG_TITLE_CHARS = 1_000_000
CACHED_POOL = 32  # only recent pages: the server's response cache keeps the last few hundred


# ---------------------------------------------------------------------------------------------
# request bodies, encoded once: a request only splices its URL in


class Template:
    """A JSON body with a slot for the URL (encoding a 10 MB page per request would cost this
    client's CPU, which the server shares)."""

    def __init__(self, body: dict) -> None:
        raw = msgspec.json.encode({**body, "url": URL_SLOT})
        slot = msgspec.json.encode(URL_SLOT)
        self.head, self.tail = raw.split(slot)

    def render(self, url: str) -> bytes:
        return self.head + msgspec.json.encode(url) + self.tail


def fresh_url(url: str, tag: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}load={tag}"


def huge_text(texts: list[str], chars: int) -> str:
    """Real prose (the DUC texts, over and over) cut at a word just under ``chars``."""
    parts, size, i = [], 0, 0
    while size < chars:
        parts.append(texts[i % len(texts)])
        size += len(parts[-1]) + 2
        i += 1
    text = "\n\n".join(parts)[:chars]
    return text[: text.rfind(" ")]


def huge_html(texts: list[str], body_bytes: int) -> str:
    """An article page whose analyze body stays just under ``body_bytes``."""
    head = "<!doctype html><html><head><title>A very long page</title></head><body><article><h1>A very long page</h1>"
    tail = "</article></body></html>"
    paragraphs, size, i = [], len(head) + len(tail), 0
    budget = body_bytes - 4096  # room for the URL and the JSON around the page
    while True:
        p = f"<p>{texts[i % len(texts)]}</p>"
        # JSON escapes quotes and newlines: count the paragraph's encoded size
        cost = len(msgspec.json.encode(p)) - 2
        if size + cost > budget:
            break
        paragraphs.append(p)
        size += cost
        i += 1
    return head + "".join(paragraphs) + tail


@dataclass
class Material:
    pages: list[Template]
    page_urls: list[str]
    texts: list[Template]
    text_urls: list[str]
    small: Template  # a short valid text: what the hostile requests carry
    long_title: Template
    bad_utf8: bytes
    deep_json: bytes
    huge_text: Template
    huge_html: Template
    sizes: dict


def material(data: Path) -> Material:
    from backstory.config import Settings
    from backstory.schemas import MAX_TEXT_CHARS

    pages = bench.load_pages(data, None)
    duc = bench.load_duc(data, None)
    texts = [d.text for d in duc if d.text]
    small = {"text": texts[0], "title": "A short story", "archive": True}
    max_body = Settings().max_body_bytes
    big_text = huge_text(texts, MAX_TEXT_CHARS - 1000)
    big_html = huge_html(texts, max_body)
    m = Material(
        pages=[Template(p.body()) for p in pages], page_urls=[p.url for p in pages],
        texts=[Template(d.body(archive=False)) for d in duc], text_urls=[d.url for d in duc],
        small=Template(small),
        long_title=Template({**small, "title": "T" * LONG_TITLE_CHARS}),
        bad_utf8=b'{"url":"https://bad-utf8.load.example/x","text":"caf\xff\xfe story"}',
        deep_json=b'{"url":"https://deep.load.example/x","text":' + b"[" * NESTING + b"]" * NESTING + b"}",
        huge_text=Template({"text": big_text, "title": "A very long text", "archive": False}),
        huge_html=Template({"html": big_html, "archive": False}),
        sizes={},
    )
    m.sizes = {"pages": len(pages), "texts": len(duc), "huge_text_chars": len(big_text),
               "huge_html_body_bytes": len(m.huge_html.render("https://huge.load.example/page")),
               "max_body_bytes": max_body, "long_title_chars": LONG_TITLE_CHARS, "nesting": NESTING}
    return m


# ---------------------------------------------------------------------------------------------
# one phase


@dataclass
class Seen:
    """What earlier answers showed: story ids, search terms, requests worth repeating."""

    ids: list[str]
    id_set: set[str]
    terms: list[str]
    recent: collections.deque  # (url, Template) of answered analyze_new requests

    def add_id(self, story_id: str) -> None:
        if story_id and story_id not in self.id_set and len(self.ids) < 20_000:
            self.id_set.add(story_id)
            self.ids.append(story_id)


class Ref(msgspec.Struct):
    story_id: str


class Phrase(msgspec.Struct):
    phrase: str


class SidebarSeen(msgspec.Struct):
    """The fields of an analyze answer this client reads (the rest is skipped while decoding)."""

    story_id: str
    cached: bool = False
    related: list[Ref] = []
    keyphrases: list[Phrase] = []


class Listing(msgspec.Struct):
    stories: list[Ref] = []


class RelatedSeen(msgspec.Struct):
    related: list[Ref] = []


def _decoders() -> dict:
    return {"sidebar": msgspec.json.Decoder(SidebarSeen), "listing": msgspec.json.Decoder(Listing),
            "related": msgspec.json.Decoder(RelatedSeen)}


JSON = {"content-type": "application/json"}


async def send(kind: str, client: Any, m: Material, seen: Seen, rng: random.Random, tag: str,
               dec: dict, huge_timeout: float) -> tuple[int, bool | None]:
    """Send one request of ``kind``; returns (status, cached) — cached only for analyses."""
    post = client.post
    if kind == "analyze_new":
        i = rng.randrange(len(m.pages))
        url = fresh_url(m.page_urls[i], tag)
        r = await post("/api/v1/analyze", content=m.pages[i].render(url), headers=JSON)
        if r.status_code == 200:
            sidebar = dec["sidebar"].decode(r.content)
            seen.add_id(sidebar.story_id)
            for ref in sidebar.related:
                seen.add_id(ref.story_id)
            for k in sidebar.keyphrases[:3]:
                if len(seen.terms) < 500:
                    seen.terms.append(k.phrase)
            seen.recent.append((url, m.pages[i]))
        return r.status_code, None
    if kind == "analyze_cached":
        url, template = seen.recent[rng.randrange(len(seen.recent))]
        r = await post("/api/v1/analyze", content=template.render(url), headers=JSON)
        return r.status_code, dec["sidebar"].decode(r.content).cached if r.status_code == 200 else None
    if kind == "analyze_text":
        i = rng.randrange(len(m.texts))
        r = await post("/api/v1/analyze", content=m.texts[i].render(fresh_url(m.text_urls[i], tag)), headers=JSON)
        return r.status_code, None
    if kind == "search":
        r = await client.get("/api/v1/stories", params={"q": rng.choice(seen.terms), "limit": 10})
        if r.status_code == 200:
            for ref in dec["listing"].decode(r.content).stories:
                seen.add_id(ref.story_id)
        return r.status_code, None
    if kind == "story":
        r = await client.get(f"/api/v1/stories/{rng.choice(seen.ids)}")
        return r.status_code, None
    if kind == "related":
        r = await client.get(f"/api/v1/stories/{rng.choice(seen.ids)}/related")
        if r.status_code == 200:
            for ref in dec["related"].decode(r.content).related[:3]:
                seen.add_id(ref.story_id)
        return r.status_code, None
    url = f"https://{kind.replace('_', '-')}.load.example/story?load={tag}"
    if kind == "text_plain":
        r = await post("/api/v1/analyze", content=m.small.render(url), headers={"content-type": "text/plain;charset=UTF-8"})
    elif kind == "foreign_origin":
        r = await post("/api/v1/analyze", content=m.small.render(url), headers={**JSON, "origin": FOREIGN_ORIGIN})
    elif kind == "bad_utf8":
        r = await post("/api/v1/analyze", content=m.bad_utf8, headers=JSON)
    elif kind == "deep_json":
        r = await post("/api/v1/analyze", content=m.deep_json, headers=JSON)
    elif kind == "bad_host":
        r = await client.get("/api/v1/stories", params={"q": "police"}, headers={"host": FOREIGN_HOST})
    elif kind == "long_title":
        r = await post("/api/v1/analyze", content=m.long_title.render(url), headers=JSON)
    elif kind in ("huge_text", "huge_html"):
        template = m.huge_text if kind == "huge_text" else m.huge_html
        r = await post("/api/v1/analyze", content=template.render(url), headers=JSON, timeout=huge_timeout)
    else:
        raise ValueError(f"unknown request kind {kind}")
    return r.status_code, None


async def run_phase(base: str, m: Material, seen: Seen, weights: dict[str, float], clients: int,
                    seconds: float, max_requests: int, seed: int, phase: int, timeout: float,
                    huge_timeout: float, huge_in_flight: int) -> dict:
    import httpx

    dec = _decoders()
    results: list[tuple[str, float, float, str, bool, bool | None]] = []
    counter = iter(range(max_requests))
    started = time.perf_counter()
    deadline = started + seconds
    huge_now = 0
    names = [k for k, w in weights.items() if w > 0]

    def can_send(kind: str) -> bool:
        if kind == "analyze_cached":
            return bool(seen.recent)
        if kind in ("story", "related"):
            return bool(seen.ids)
        if KINDS[kind].huge:
            return huge_now < huge_in_flight
        return True

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=timeout, limits=limits) as client:

        async def worker(index: int) -> None:
            nonlocal huge_now
            rng = random.Random(seed * 1_000_003 + phase * 1009 + index)
            for n in counter:
                if time.perf_counter() >= deadline:
                    return
                kind = rng.choices(names, [weights[k] for k in names])[0]
                if not can_send(kind):
                    ready = [k for k in names if can_send(k)]
                    if not ready:  # only huge kinds in the mix, and the slot is taken
                        await asyncio.sleep(0.05)
                        continue
                    kind = rng.choices(ready, [weights[k] for k in ready])[0]
                huge = KINDS[kind].huge
                huge_now += huge
                t = time.perf_counter()
                cached = None
                try:
                    status, cached = await send(kind, client, m, seen, rng, f"p{phase}-{n}", dec, huge_timeout)
                    outcome, ok = str(status), KINDS[kind].ok(status)
                except httpx.TimeoutException:
                    outcome, ok = "timeout", False
                except httpx.HTTPError as exc:
                    outcome, ok = type(exc).__name__, False
                except msgspec.MsgspecError:  # a 200 whose body is not the documented shape
                    outcome, ok = "200 malformed", False
                finally:
                    huge_now -= huge
                done = time.perf_counter()
                results.append((kind, t - started, (done - t) * 1000, outcome, ok, cached))

        await asyncio.gather(*(worker(i) for i in range(clients)))
    elapsed = time.perf_counter() - started
    return {"elapsed": elapsed, "results": results}


def latency(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    return {"n": len(values), "p50": round(bench.pct(values, 50), 1), "p95": round(bench.pct(values, 95), 1),
            "p99": round(bench.pct(values, 99), 1), "max": round(max(values), 1)}


def tally(rows: list[tuple], elapsed: float) -> dict:
    statuses = collections.Counter(r[3] for r in rows)
    return {
        "count": len(rows),
        "errors": sum(1 for r in rows if not r[4]),
        "fivexx": sum(n for s, n in statuses.items() if s.startswith("5")),
        "latency_ms": latency([r[2] for r in rows]),
        "throughput_per_s": round(len(rows) / elapsed, 2) if elapsed else 0.0,
        "statuses": dict(sorted(statuses.items())),
    }


def memory(server: bench.Server) -> dict:
    m = server.memory()
    return {
        "unique_mb": m.get("footprint"),
        "measure": "unique resident pages" if m.get("unique_pages_mb") is not None else "PSS (no frame numbers without root)",
        "rss_sum_mb": m.get("VmRSS"),
        "pss_mb": m.get("Pss"),
        "per_process_rss_mb": m.get("per_process_rss", {}),
        "processes": m.get("processes", 0),
    }


def warm_up(base: str, m: Material, seen: Seen, n: int) -> None:
    """A few pages under their own URLs (never the measured ones): every worker has loaded its
    models, and the first draws of the cached, story and related kinds have something to ask for."""
    import httpx

    dec = _decoders()
    with httpx.Client(base_url=base, timeout=120.0) as client:
        for i in range(min(n, len(m.pages))):
            url = fresh_url(m.page_urls[i], f"warm-{i}")
            r = client.post("/api/v1/analyze", content=m.pages[i].render(url), headers=JSON)
            if r.status_code != 200:
                raise RuntimeError(f"warm-up analysis answered {r.status_code}: {r.text[:300]}")
            sidebar = dec["sidebar"].decode(r.content)
            seen.add_id(sidebar.story_id)
            for ref in sidebar.related:
                seen.add_id(ref.story_id)
            seen.recent.append((url, m.pages[i]))
        r = client.get("/api/v1/stories", params={"limit": 50})
        if r.status_code == 200:
            for ref in dec["listing"].decode(r.content).stories:
                seen.add_id(ref.story_id)


def phase_report(run: dict, clients: int, seconds: float, weights: dict[str, float]) -> dict:
    results = run["results"]
    # Rates are over the time until the last answer of the mix: a huge request still in flight
    # at the end would otherwise stretch every row's denominator.
    mix = [r for r in results if not KINDS[r[0]].huge]
    span = max((r[1] + r[2] / 1000 for r in mix), default=run["elapsed"])
    elapsed = span
    kinds = {}
    for name in weights:
        rows = [r for r in results if r[0] == name]
        kinds[name] = {"expected": KINDS[name].expect, **tally(rows, elapsed)}
        if name == "analyze_cached":
            kinds[name]["not_cached"] = sum(1 for r in rows if r[5] is False)
    samples = collections.Counter(f"{r[0]}: {r[3]}" for r in results if not r[4])
    return {
        "clients": clients, "seconds": seconds, "elapsed_s": round(run["elapsed"], 2),
        "mix_span_s": round(span, 2), "requests": len(results),
        "errors": sum(1 for r in results if not r[4]),
        "fivexx": sum(1 for r in results if r[3].startswith("5")),
        # the huge requests' latency is their own row: they are bounded by the deadline, not by the mix
        "overall": tally(mix, elapsed),
        "kinds": kinds,
        "error_kinds": dict(samples.most_common()),
    }


# ---------------------------------------------------------------------------------------------
# output


def _ms(lat: dict, key: str) -> str:
    v = lat.get(key)
    return "-" if v is None else f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def _statuses(s: dict) -> str:
    return " ".join(f"{k}×{v}" for k, v in s.items()) or "-"


def print_report(report: dict) -> None:
    print(f"mixed load on {report['archive']}, seed {report['seed']}, commit {report['commit']}")
    print("mix: " + ", ".join(f"{k} {w:g}" for k, w in report["weights"].items() if w > 0))
    print(f"memory at ready: {report['memory_at_ready']['unique_mb']} MB ({report['memory_at_ready']['measure']})")
    for p in report["phases"]:
        o = p["overall"]
        print(f"\n{p['clients']} clients, {p['mix_span_s']} s ({p['elapsed_s']} s with the last huge request): {p['requests']} requests, {p['errors']} errors "
              f"({p['fivexx']} 5xx), {o['throughput_per_s']}/s without the huge ones; "
              f"server CPU {p['server_cpu_ms_per_request']} ms a request, this client's {p['client_cpu_ms_per_request']} ms")
        print(f"{'kind':16s} {'expect':>11s} {'count':>6s} {'p50 ms':>8s} {'p95 ms':>8s} {'p99 ms':>8s} {'/s':>6s} {'errors':>6s}  statuses")
        rows = [*p["kinds"].items(), ("all but huge", {"expected": "", **o})]
        for name, k in rows:
            if not k["count"] and name != "all but huge":
                continue
            lat = k["latency_ms"]
            extra = f" (not cached {k['not_cached']})" if k.get("not_cached") else ""
            print(f"{name:16s} {k['expected']:>11s} {k['count']:6d} {_ms(lat, 'p50'):>8s} {_ms(lat, 'p95'):>8s} "
                  f"{_ms(lat, 'p99'):>8s} {k['throughput_per_s']:6.2f} {k['errors']:6d}  {_statuses(k['statuses'])}{extra}")
        mem = p["memory"]
        print("memory (MB, unique resident): before {} → after {} → {} s idle {}".format(
            mem["before"]["unique_mb"], mem["after"]["unique_mb"], p["settle_s"], mem["settled"]["unique_mb"]))
        for when in ("before", "after", "settled"):
            rss = ", ".join(f"{role} {mb}" for role, mb in mem[when]["per_process_rss_mb"].items())
            print(f"  RSS {when:8s} {rss}")
        print(f"load average (1/5/15 min): before {p['loadavg']['before']}, after {p['loadavg']['after']}")
        if p["error_kinds"]:
            print("errors: " + ", ".join(f"{k} ×{v}" for k, v in p["error_kinds"].items()))
    print(f"\n{report['errors']} errors in all")


def _machine(m: dict) -> str:
    return f"{m.get('cores')} cores ({m.get('cpu') or 'CPU unknown'}), {m.get('memory') or 'RAM unknown'}"


def markdown(report: dict) -> str:
    lines = [
        f"### Mixed load ({report['started_at']}, commit `{report['commit']}`)",
        "",
        "Command: `" + " ".join([".venv/bin/python scripts/load.py", report["argv"]]).strip() + "`",
        f"on {report['archive']}; {_machine(report['machine'])}. Each client sends one request and waits for the answer; "
        f"kinds drawn with seed {report['seed']} and weights (%) "
        + ", ".join(f"{k} {w:g}" for k, w in report["weights"].items() if w > 0)
        + f". Huge requests: a text of {report['sizes']['huge_text_chars']:,} characters and an HTML page in a body of "
        f"{report['sizes']['huge_html_body_bytes']:,} bytes (limit {report['sizes']['max_body_bytes']:,}), at most "
        f"{report['huge_in_flight']} in flight, answered within {report['huge_timeout_s']:g} s or counted as errors; "
        "their latency is not in the overall row. "
        "Errors = 5xx, transport errors, timeouts, or a status other than the one expected for the kind. "
        "Memory = unique resident pages of the server and its spaCy processes.",
        "",
        "| clients | s | requests | errors | 5xx | req/s (no huge) | p50 ms | p95 ms | p99 ms | huge p50 / max ms "
        "| memory MB before → after → settled | load avg after |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in report["phases"]:
        o, mem = p["overall"], p["memory"]
        huge_cell = "; ".join(f"{k} {_ms(v['latency_ms'], 'p50')} / {_ms(v['latency_ms'], 'max')}"
                              for k, v in p["kinds"].items() if KINDS[k].huge and v["count"]) or "-"
        lines.append(
            f"| {p['clients']} | {p['mix_span_s']:.0f} | {p['requests']:,} | {p['errors']} | {p['fivexx']} "
            f"| {o['throughput_per_s']} | {_ms(o['latency_ms'], 'p50')} | {_ms(o['latency_ms'], 'p95')} "
            f"| {_ms(o['latency_ms'], 'p99')} | {huge_cell} | {mem['before']['unique_mb']} → {mem['after']['unique_mb']} "
            f"→ {mem['settled']['unique_mb']} | {' '.join(str(x) for x in p['loadavg']['after'])} |")
    for p in report["phases"]:
        lines += ["", f"{p['clients']} clients, per kind:", "",
                  "| kind | expected | count | p50 ms | p95 ms | p99 ms | req/s | errors | statuses |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for name, k in p["kinds"].items():
            if k["count"]:
                lat = k["latency_ms"]
                lines.append(f"| {name} | {k['expected']} | {k['count']:,} | {_ms(lat, 'p50')} | {_ms(lat, 'p95')} "
                             f"| {_ms(lat, 'p99')} | {k['throughput_per_s']} | {k['errors']} | {_statuses(k['statuses'])} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=bench.DEFAULT_DATA)
    parser.add_argument("--clients", type=int, action="append", help="clients of one phase (repeatable; default 16 then 64)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each phase (no new request after it)")
    parser.add_argument("--max-requests", type=int, default=100_000, help="at most this many requests a phase")
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--weight", action="append", default=[], metavar="KIND=W",
                        help=f"change a kind's weight (repeatable); kinds: {', '.join(KINDS)}")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds a client waits for an answer")
    parser.add_argument("--huge-timeout", type=float, default=60.0,
                        help="seconds a huge request may take: the analysis deadline plus its wait in the "
                             "server's queue, which grows with the clients")
    parser.add_argument("--huge-in-flight", type=int, default=1)
    parser.add_argument("--settle", type=float, default=10.0, help="idle seconds before the last memory reading")
    parser.add_argument("--warm-up", type=int, default=6, help="pages analyzed before the first phase")
    parser.add_argument("--fresh", action="store_true", help="a new empty archive instead of the cached 10,000 stories")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the server (repeatable)")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON line at the end")
    parser.add_argument("--markdown", action="store_true", help="print a block for docs/benchmarks.md")
    parser.add_argument("--keep-log", type=Path, help="copy the server's log here")
    args = parser.parse_args(argv)
    args.clients = args.clients or [16, 64]
    weights = {k: float(v.weight) for k, v in KINDS.items()}
    for item in args.weight:
        name, _, value = item.partition("=")
        if name not in KINDS or not value:
            parser.error(f"--weight {item!r}: expected KIND=W with KIND one of {', '.join(KINDS)}")
        weights[name] = float(value)
    if not any(weights[k] > 0 for k in ("analyze_new", "analyze_text", "search")) and (
            weights["analyze_cached"] or weights["story"] or weights["related"]):
        parser.error("the cached, story and related kinds need a kind that finds pages or ids")
    args.weights = weights
    if min(args.clients) < 1 or args.seconds <= 0 or args.max_requests < 1:
        parser.error("--clients, --seconds and --max-requests must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    import httpx

    args = parse_args(argv)
    missing = bench.data_missing(args.data)
    if args.fresh:  # the cached archive's source texts are not needed then
        missing = [p for p in missing if "related" not in Path(p).parts]
    if missing:
        print(f"load: evaluation data not found ({', '.join(missing)}); nothing measured")
        return 0

    m = material(args.data)
    work = Path(tempfile.mkdtemp(prefix="backstory-load-"))
    archive = work / "archive.sqlite3"
    if args.fresh:
        described = "a new empty archive"
    else:
        source, meta = bench.cached_archive(args.data, 10_000, 496, 3600)
        shutil.copyfile(source, archive)
        described = f"a copy of the cached {meta.get('size', 10_000):,}-story archive"
    env = dict(item.split("=", 1) for item in args.env)
    server = bench.Server(archive, work / "server.log", env)
    report: dict[str, Any] = {
        "script": "load", "started_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": bench.git_commit(), "argv": " ".join(sys.argv[1:] if argv is None else argv),
        "machine": bench.machine(), "archive": described, "fresh": args.fresh, "env": env,
        "seed": args.seed, "weights": args.weights, "kinds": {k: KINDS[k].expect for k in KINDS},
        "huge_in_flight": args.huge_in_flight, "huge_timeout_s": args.huge_timeout, "timeout_s": args.timeout,
        "settle_s": args.settle, "sizes": m.sizes, "phases": [],
    }
    seen = Seen(ids=[], id_set=set(), terms=list(SEARCH_TERMS), recent=collections.deque(maxlen=CACHED_POOL))
    try:
        try:
            ready = server.start()
        except RuntimeError as exc:
            print(f"load: the server did not start: {exc}\n{_tail(work / 'server.log')}", file=sys.stderr)
            return 2
        report["ready_s"] = ready.get("ready_s")
        report["memory_at_ready"] = memory(server)
        bench.log(f"server ready in {ready.get('ready_s')} s on {server.base}; warming up")
        try:
            warm_up(server.base, m, seen, args.warm_up)
        except (RuntimeError, httpx.HTTPError) as exc:
            print(f"load: the warm-up failed: {exc}\n{_tail(work / 'server.log')}", file=sys.stderr)
            return 2
        for phase, clients in enumerate(args.clients):
            bench.log(f"phase {phase + 1}: {clients} clients for {args.seconds:g} s")
            before, load_before = memory(server), bench.loadavg()
            cpu0, server_cpu0 = time.process_time(), server.cpu_s() or 0.0
            run = asyncio.run(run_phase(server.base, m, seen, args.weights, clients, args.seconds, args.max_requests,
                                        args.seed, phase, args.timeout, args.huge_timeout, args.huge_in_flight))
            cpu1, server_cpu1 = time.process_time(), server.cpu_s() or 0.0
            after, load_after = memory(server), bench.loadavg()
            alive = server.proc is not None and server.proc.poll() is None
            if alive and args.settle > 0:
                time.sleep(args.settle)
            p = phase_report(run, clients, args.seconds, args.weights)
            done = max(1, p["requests"])
            p.update({
                "server_alive": alive,
                "memory": {"before": before, "after": after, "settled": memory(server) if alive else {}},
                "settle_s": args.settle,
                "loadavg": {"before": load_before, "after": load_after},
                "server_cpu_ms_per_request": round((server_cpu1 - server_cpu0) * 1000 / done, 1),
                "client_cpu_ms_per_request": round((cpu1 - cpu0) * 1000 / done, 2),
            })
            if not alive:
                p["errors"] += 1
                p["error_kinds"]["server exited"] = 1
            report["phases"].append(p)
            bench.log(f"  {p['requests']} requests, {p['errors']} errors")
            if not alive:
                break
    finally:
        server.stop()
        if args.keep_log and (work / "server.log").exists():
            shutil.copyfile(work / "server.log", args.keep_log)
        errors_seen = sum(p["errors"] for p in report["phases"])
        if errors_seen:
            print(f"server log (tail):\n{_tail(work / 'server.log')}", file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)

    report["errors"] = sum(p["errors"] for p in report["phases"])
    print_report(report)
    if args.markdown:
        print("\n" + markdown(report))
    if args.json:
        print(json.dumps(report))
    return 1 if report["errors"] else 0


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


if __name__ == "__main__":
    raise SystemExit(main())

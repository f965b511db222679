"""The fetched-import benchmark's web: a Pocket export of N URLs and the sites that serve them.

Every page is made from its number (a seeded generator), so the server holds nothing and a run
is repeatable: news articles of 4-16 paragraphs about a few hundred recurring people, places and
organisations, on 8 sites (loopback addresses 127.0.0.2-9, so the polite fetcher sees 8 hosts),
with the furniture real pages have (navigation, a byline, related links, a newsletter box, a
footer); most name their date and author, some declare a canonical URL, one URL in ten redirects
to the story first, and each site serves a robots.txt.
"""

from __future__ import annotations

import csv
import random
import threading
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

SITES = ["The Daily Ledger", "Harbour Courier", "Northern Record", "Metro Wire", "Valley Gazette",
         "Coastal Times", "The Evening Post", "Capital Report"]
ADDRESSES = [f"127.0.0.{n}" for n in range(2, 2 + len(SITES))]
ROBOTS = b"User-agent: *\nDisallow: /admin/\nDisallow: /search\n"

_FIRST = ["Maria", "James", "Aiko", "Daniel", "Fatima", "Lars", "Priya", "Tomas", "Grace", "Omar", "Elena",
          "Kwame", "Sofia", "Henrik", "Mei", "Carlos", "Amara", "Jonas", "Leila", "Patrick"]
_LAST = ["Okafor", "Lindqvist", "Tanaka", "Moreau", "Haddad", "Novak", "Raman", "Ferreira", "Whitfield",
         "Kowalski", "Mensah", "Castillo", "Brandt", "Osei", "Nakamura", "Duarte", "Ibrahim", "Keller"]
_PLACES = ["Rotterdam", "Nairobi", "Lyon", "Osaka", "Porto Alegre", "Gdansk", "Halifax", "Tucson", "Bergen",
           "Valparaiso", "Leeds", "Chennai", "Adelaide", "Graz", "Accra", "Tampere", "Winnipeg", "Cork"]
_ORGS = ["the port authority", "the central bank", "Northwind Energy", "the city council", "Meridian Health",
         "the transport ministry", "Halvorsen Shipping", "the teachers' union", "Calder Pharmaceuticals",
         "the water board", "Atlas Rail", "the university hospital", "Brightline Telecom", "the EU Commission"]
_TOPICS = [
    ("port strike", ["dockworkers", "cargo", "wages", "negotiations", "shipping lines", "container terminal"]),
    ("interest rates", ["inflation", "mortgages", "borrowing costs", "the currency", "savers", "lenders"]),
    ("flood defences", ["the river", "sandbags", "evacuations", "rainfall", "levees", "insurers"]),
    ("hospital waiting lists", ["surgeons", "patients", "beds", "funding", "nurses", "emergency rooms"]),
    ("rail expansion", ["commuters", "tracks", "tunnels", "fares", "contractors", "timetables"]),
    ("wind farm", ["turbines", "the coast", "fishermen", "electricity prices", "the grid", "permits"]),
    ("school reform", ["teachers", "exams", "classrooms", "parents", "the curriculum", "budgets"]),
    ("drug trial", ["volunteers", "regulators", "side effects", "the vaccine", "researchers", "the results"]),
    ("housing shortage", ["rents", "builders", "planning rules", "tenants", "land prices", "new homes"]),
    ("data breach", ["customers", "passwords", "hackers", "regulators", "the company's servers", "fines"]),
]
_ROLES = ["chief executive", "spokeswoman", "spokesman", "mayor", "minister", "director", "chair",
          "economist", "union leader", "lead researcher"]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_SENTENCES = [
    "{person}, the {role} of {org}, said on {day} that the {topic} would shape the coming months in {place}.",
    "Officials in {place} met representatives of {org} to discuss {thing} and {thing2}.",
    "\"We cannot ignore {thing},\" {person} told reporters outside the offices of {org} in {place}.",
    "The dispute over {thing} has drawn attention from {org}, which warned of delays.",
    "According to figures released by {org}, {thing} rose for the third month in a row.",
    "Critics, including {person}, argue that {thing} was neglected for years in {place}.",
    "{person} said a decision on {thing2} was expected before the end of the quarter.",
    "Residents of {place} said {thing} had already changed how they plan their week.",
    "Analysts said the {topic} could spread to other cities if {org} did not act on {thing2}.",
    "The plan, first reported last month, would cost {org} an estimated {n} million euros.",
    "A meeting between {person} and officials from {org} ended without agreement on {thing}.",
    "{org} declined to comment on {thing2}, saying talks were continuing in {place}.",
]


# What real pages carry besides the story (a menu of sections, a script's data, a footer of
# links): it makes a page ~25 KB with some 250 elements for extraction to wade through.
_SECTIONS = [f"{topic.title()} in {place}" for topic, _ in _TOPICS for place in _PLACES[:8]]
_MENU = "<ul class=\"menu\">" + "".join(f'<li><a href="/section/{n}">{escape(name)}</a></li>'
                                        for n, name in enumerate(_SECTIONS)) + "</ul>"
_SCRIPT = "<script>window.__STATE__=" + ",".join(f'{{"id":{n},"slot":"ad-{n}","size":[300,250]}}'
                                                 for n in range(150)) + ";</script>"
_FOOTER = "<ul>" + "".join(f'<li><a href="/about/{n}">{escape(place)} bureau</a></li>'
                           for n, place in enumerate(_PLACES)) + "</ul>"


def _person(rng: random.Random) -> str:
    return f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"


def article(i: int) -> dict:
    """Story ``i``: its site, title, byline, date, paragraphs (the same every time)."""
    rng = random.Random(i)
    topic, things = rng.choice(_TOPICS)
    place, org = rng.choice(_PLACES), rng.choice(_ORGS)
    cast = [_person(rng) for _ in range(3)]

    def sentence() -> str:
        thing, thing2 = rng.sample(things, 2)
        text = rng.choice(_SENTENCES).format(
            person=rng.choice(cast), role=rng.choice(_ROLES), org=rng.choice([org, rng.choice(_ORGS)]),
            day=rng.choice(_DAYS), topic=topic, place=rng.choice([place, place, rng.choice(_PLACES)]),
            thing=thing, thing2=thing2, n=rng.randint(2, 900))
        return text[0].upper() + text[1:]

    paragraphs = [" ".join(sentence() for _ in range(rng.randint(2, 5))) for _ in range(rng.randint(4, 16))]
    paragraphs[0] = f"{place.upper()} — " + paragraphs[0]
    title = f"{place} {rng.choice(['faces', 'weighs', 'braces for', 'debates', 'divided over'])} {topic}" \
            + rng.choice(["", f" as {org} {rng.choice(['steps in', 'warns', 'holds talks'])}", f", {cast[0]} says"])
    return {"site": i % len(SITES), "title": title[0].upper() + title[1:], "paragraphs": paragraphs,
            "byline": cast[1] if rng.random() < 0.8 else None,
            "date": f"2026-{rng.randint(1, 11):02d}-{rng.randint(1, 28):02d}" if rng.random() < 0.85 else None,
            "canonical": rng.random() < 0.3, "tags": rng.sample(["news", topic.replace(" ", "-"), "later", "work"], 2),
            "related": [f"{rng.choice(_PLACES)}: {rng.choice(_TOPICS)[0]}" for _ in range(3)]}


def page_html(i: int, base: str) -> bytes:
    story = article(i)
    site = SITES[story["site"]]
    meta = [f'<meta property="og:title" content="{escape(story["title"])}">',
            f'<meta property="og:site_name" content="{escape(site)}">']
    if story["byline"]:
        meta.append(f'<meta name="author" content="{escape(story["byline"])}">')
    if story["date"]:
        meta.append(f'<meta property="article:published_time" content="{story["date"]}T07:00:00Z">')
    if story["canonical"]:
        meta.append(f'<link rel="canonical" href="{base}/news/{i}">')
    body = "\n".join(f"<p>{escape(p)}</p>" for p in story["paragraphs"])
    related = "".join(f'<li><a href="/news/{(i * 7 + k) % 100000}">{escape(title)}</a></li>'
                      for k, title in enumerate(story["related"], 1))
    byline = f'<p class="byline">By {escape(story["byline"])}</p>' if story["byline"] else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(story["title"])} | {escape(site)}</title>
{chr(10).join(meta)}
<style>body{{font-family:serif}} .newsletter{{border:1px solid #ccc}}</style></head>
<body><header><nav><a href="/">Home</a> <a href="/world">World</a> <a href="/business">Business</a>
<a href="/opinion">Opinion</a> <a href="/subscribe">Subscribe</a>{_MENU}</nav></header>{_SCRIPT}
<main><article><h1>{escape(story["title"])}</h1>{byline}
{body}
</article>
<aside><h3>More from {escape(site)}</h3><ul>{related}</ul></aside>
<aside class="newsletter"><h3>The morning briefing</h3><p>Sign up to get the day's news first.</p></aside></main>
<footer>{_FOOTER}<p>Copyright 2026 {escape(site)}.</p><a href="/privacy">Privacy</a> <a href="/terms">Terms</a></footer>
</body></html>""".encode()


def url_of(i: int, port: int) -> str:
    address = ADDRESSES[i % len(ADDRESSES)]
    return f"http://{address}:{port}/{'r' if i % 10 == 9 else 'news'}/{i}"


class Sites:
    """The 8 sites, one threaded server per loopback address, all on one port."""

    def __init__(self) -> None:
        self.requests = 0
        sites = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                sites.requests += 1  # a count for the report, races are harmless
                base = f"http://{self.headers.get('Host', '')}"
                if self.path == "/robots.txt":
                    return self._send(200, ROBOTS, "text/plain")
                kind, _, number = self.path.strip("/").partition("/")
                if not number.isdigit() or kind not in ("news", "r"):
                    return self._send(404, b"not here", "text/plain")
                if kind == "r":
                    self.send_response(301)
                    self.send_header("Location", f"/news/{number}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                return self._send(200, page_html(int(number), base), "text/html; charset=utf-8")

            def _send(self, status: int, body: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        first = ThreadingHTTPServer((ADDRESSES[0], 0), Handler)
        self.port = first.server_address[1]
        self.servers = [first] + [ThreadingHTTPServer((a, self.port), Handler) for a in ADDRESSES[1:]]
        self.threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in self.servers]
        for server, thread in zip(self.servers, self.threads):
            server.daemon_threads = True
            thread.start()

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


def write_pocket_csv(path: Path, entries: int, port: int) -> Path:
    """Pocket's CSV (title,url,time_added,tags,status) of ``entries`` stories on the sites."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["title", "url", "time_added", "tags", "status"])
        for i in range(entries):
            story = article(i)
            out.writerow([story["title"], url_of(i, port), 1_700_000_000 + i * 60, "|".join(story["tags"]),
                          "archive" if i % 3 == 0 else "unread"])
    return path

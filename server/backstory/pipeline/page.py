"""What one analysis reads and makes, as the pipeline and the workers exchange them."""

from __future__ import annotations

from typing import Protocol

import msgspec

from ..story import StoryRecord
from .analyzer import Analysis

Analyzed = tuple[Analysis, StoryRecord, dict[str, float]]  # the analysis, its record, the extraction's timings


class Page(msgspec.Struct, kw_only=True, frozen=True):
    """What one analysis reads: the client's URL, the page's final URL (after a fetch's redirects),
    its HTML or text, the title, date and author a client or an import sent."""

    url: str
    final_url: str
    html: str | None = None
    text: str | None = None
    title: str | None = None
    published: str | None = None
    byline: str | None = None  # an import's: like published, filled in when the page names no author


class Analyst(Protocol):
    """Analyses done elsewhere (``BACKSTORY_ANALYSIS=remote``: by workers, see :mod:`backstory.jobs`)."""

    async def analyze(self, page: Page, deadline: float) -> Analyzed: ...

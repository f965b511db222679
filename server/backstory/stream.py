"""The streamed sidebar (``Accept: application/x-ndjson``): its lines as wire types, how they
merge into a :class:`~backstory.schemas.Sidebar`, and how an analysis is relayed as they come.

Each line is one flat object whose ``event`` field names its part and whose other fields are that
part of the Sidebar: ``facts`` first (as soon as the page is extracted), then ``keyphrases``,
``entities`` and ``related`` as each is ready, and ``done`` last (the timings, the flags and the
final ``story_id``: it differs from the first one when the story merged with a duplicate). A
failure after the first line ends the stream with an ``error`` line (the problem+json fields).
"""

from __future__ import annotations

import asyncio
from typing import AsyncIterator, Awaitable, Callable, Iterable, Union

import msgspec

from .schemas import Entity, Keyphrase, RelatedStory, Sidebar, StoryFacts, Timings, Value, Visibility
from .story import StoryRecord, reading_minutes

NDJSON = "application/x-ndjson"


class FactsEvent(StoryFacts, tag_field="event", tag="facts"):
    """The story's facts and clean text: ready after extraction, before the language stages.
    Its ``story_id`` is the one the story is stored under unless it joins a stored duplicate
    (``done`` says which)."""


class KeyphrasesEvent(Value, tag_field="event", tag="keyphrases"):
    keyphrases: list[Keyphrase]


class EntitiesEvent(Value, tag_field="event", tag="entities"):
    entities: list[Entity]


class RelatedEvent(Value, tag_field="event", tag="related"):
    related: list[RelatedStory]


class DoneEvent(Value, tag_field="event", tag="done"):
    """The last line of a complete stream."""

    story_id: str
    """The story's final id (see ``facts``)."""
    timings_ms: Timings
    archived: bool
    cached: bool
    analysed: bool
    added_by: list[str]
    visibility: Visibility
    tags: list[str]


class ErrorEvent(Value, tag_field="event", tag="error"):
    """The last line of a stream that failed after its first line: the problem+json fields."""

    status: int
    title: str
    detail: str
    type: str = "about:blank"


Event = Union[FactsEvent, KeyphrasesEvent, EntitiesEvent, RelatedEvent, DoneEvent, ErrorEvent]
EVENTS = (FactsEvent, KeyphrasesEvent, EntitiesEvent, RelatedEvent, DoneEvent, ErrorEvent)  # in the order a stream sends them
Emit = Callable[[Event], None]

encode = msgspec.json.Encoder().encode
decode_event = msgspec.json.Decoder(Event).decode


def facts_of(record: StoryRecord, story_id: str) -> FactsEvent:
    """The facts line of a record (``story_id``: the id it is stored under, by its owner)."""
    return FactsEvent(story_id=story_id, url=record.url, canonical_url=record.canonical_url, title=record.title,
                 byline=record.byline, site_name=record.site_name, published=record.published,
                 language=record.language, word_count=record.word_count,
                 reading_minutes=reading_minutes(record.word_count), text=record.text)


def done_of(sidebar: Sidebar) -> DoneEvent:
    return DoneEvent(story_id=sidebar.story_id, timings_ms=sidebar.timings_ms, archived=sidebar.archived,
                cached=sidebar.cached, analysed=sidebar.analysed, added_by=sidebar.added_by,
                visibility=sidebar.visibility, tags=sidebar.tags)


def merged(events: Iterable[Event]) -> Sidebar:
    """The Sidebar the lines of a complete stream make (later fields win: ``done``'s story_id)."""
    fields: dict = {}
    for event in events:
        if isinstance(event, ErrorEvent):
            raise ValueError(f"the stream failed: {event.detail}")
        fields.update(msgspec.structs.asdict(event))
    return msgspec.convert(fields, Sidebar)


def relay(run: Callable[[Emit], Awaitable[Sidebar]], keep: set[asyncio.Future]) -> AsyncIterator[Event]:
    """The lines of ``run(emit)`` as it emits them, then ``done`` from the Sidebar it returns; its
    error is raised where its line would have been.

    ``run`` is a task of its own, held in ``keep`` until it ends: a client that goes away stops
    reading, never the analysis, which stores the story as a non-streamed request would."""
    queue: asyncio.Queue[Event | None] = asyncio.Queue()
    task = asyncio.ensure_future(run(queue.put_nowait))
    keep.add(task)

    def ended(done: asyncio.Future) -> None:
        keep.discard(done)
        if not done.cancelled():
            done.exception()  # seen: a client that went away leaves no "never retrieved" error
        queue.put_nowait(None)

    task.add_done_callback(ended)

    async def lines() -> AsyncIterator[Event]:
        while (event := await queue.get()) is not None:
            yield event
        yield done_of(task.result())

    return lines()

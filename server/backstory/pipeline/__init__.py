"""Turn a page into a Sidebar, with no HTTP: the stages and the use case around them.

``models`` (the heavy resources, loaded once), ``analyzer`` (the CPU stages), ``workers`` (the
threads and slots readers and the backlog share), ``cache`` (the response cache), ``backlog``
(pending stories analyzed in the background) and ``service`` (:class:`Pipeline`, the use case).
"""

from .analyzer import Analysis, Analyzer, analyzed_part, clean_text
from .backlog import Backlog
from .cache import ResponseCache
from .models import Models
from .page import Analyst, Page
from .remote import RemoteAnalyst
from .service import Pipeline
from .workers import TRIM_INTERVAL, Workers

__all__ = [
    "TRIM_INTERVAL",
    "Analysis",
    "Analyst",
    "Analyzer",
    "Backlog",
    "Models",
    "Page",
    "Pipeline",
    "RemoteAnalyst",
    "ResponseCache",
    "Workers",
    "analyzed_part",
    "clean_text",
]

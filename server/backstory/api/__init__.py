"""HTTP routes: one controller per resource; handlers stay thin and call the pipeline/archive."""

from .analyze import AnalyzeController
from .health import health_routes
from .imports import ImportsController
from .me import me
from .stories import StoriesController

API_ROUTES = [AnalyzeController, StoriesController, ImportsController, me]

__all__ = ["API_ROUTES", "health_routes"]

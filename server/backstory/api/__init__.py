"""HTTP routes: one controller per resource; handlers stay thin and call the pipeline/archive."""

from .analyze import AnalyzeController
from .health import health_routes
from .stories import StoriesController

API_ROUTES = [AnalyzeController, StoriesController]

__all__ = ["API_ROUTES", "health_routes"]

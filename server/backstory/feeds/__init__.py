"""News feeds that fill the archive by themselves: subscriptions (kept in the archive, see
``archive/subscriptions.py``), parsing (:mod:`.parse`) and polling (:mod:`.poller`)."""

from .poller import FeedPoller, PollResult, interval_for, subscribe

__all__ = ["FeedPoller", "PollResult", "interval_for", "subscribe"]

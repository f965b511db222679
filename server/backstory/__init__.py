"""Backstory: the backstory of any news story."""

__version__ = "0.1.0"

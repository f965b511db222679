"""Backstory: the backstory of any news story."""

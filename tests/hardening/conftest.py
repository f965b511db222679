"""The hardening suite: every finding of the hostile-user review as a regression test. The shared
fixtures (models, settings on a real SQLite file, the AsyncTestClient, the page server) come from
tests/conftest.py."""

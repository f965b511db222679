"""The mixed load of ``scripts/load.py`` (issue 19), shared with tests/test_load.py.

``kinds`` (the request kinds, their bodies, how each is sent), ``phase`` (N clients for a while,
and the tally), ``report`` (table and Markdown), ``run`` (the command line). The server, the
corpus and the process accounting are the speed benchmark's: :mod:`backstory_tools.bench`.
"""

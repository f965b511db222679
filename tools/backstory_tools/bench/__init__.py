"""The speed benchmark of ``scripts/bench.py`` (issue 5), in modules that scripts and tests import.

``common`` (paths, log, percentiles), ``corpus`` (documents, bulk import, the cached archive),
``procs`` (``/proc`` accounting), ``server`` (the real server in a subprocess), ``load`` (requests
against it), ``children`` (the related lookup alone and the floor, in child processes), ``naive``
(the naive stack), ``ideal`` (the ideal server), ``postgres`` (with ``--database-url``: the same
run's PostgreSQL side, migrate-archive, a second server, import and workers), ``report`` and
``report_pg`` (verdicts, table, Markdown) and ``run`` (the command line: ``python -m backstory_tools.bench`` or ``scripts/bench.py``).
"""

#!/usr/bin/env python3
"""Mixed load (issue 19): the real server, N clients that always wait, a fixed mix of requests.

    .venv/bin/python scripts/load.py                          # 16 clients for 60 s, then 64 for 60 s
    .venv/bin/python scripts/load.py --clients 16 --seconds 15
    .venv/bin/python scripts/load.py --markdown               # + a block for docs/benchmarks.md
    .venv/bin/python scripts/load.py --json                   # + the whole report as one JSON line
    .venv/bin/python scripts/load.py --weight huge_html=0     # change one kind's weight

The code, and what each kind of request is, is the package ``backstory_tools.mixedload`` (``tools/``).
"""

from backstory_tools.mixedload.run import main

if __name__ == "__main__":
    raise SystemExit(main())

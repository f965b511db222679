#!/usr/bin/env python3
"""Schemathesis against the live OpenAPI document of the real server, with every check (issue 19).

    .venv/bin/python scripts/fuzz.py                  # 300 examples per operation
    .venv/bin/python scripts/fuzz.py -n 2000          # many more
    .venv/bin/python scripts/fuzz.py -n 50 --seed 1   # a short, repeatable run

The code is ``backstory_tools.fuzz`` (``tools/``), shared with tests/hardening/test_fuzz.py.
"""

import sys

from backstory_tools.fuzz import main

if __name__ == "__main__":
    sys.exit(main())

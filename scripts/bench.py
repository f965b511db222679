#!/usr/bin/env python3
"""Speed benchmark (issue 5): the real server against the naive stack, in one run.

    .venv/bin/python scripts/bench.py            # full run (≈ 15 min on 2 cores)
    .venv/bin/python scripts/bench.py --quick    # a few documents, short load phase (≈ 3 min)
    .venv/bin/python scripts/bench.py --help     # every knob

The code, and what each phase measures, is the package ``backstory_tools.bench`` (``tools/``).
"""

import sys

from backstory_tools.bench.run import main

if __name__ == "__main__":
    sys.exit(main())

import sys

from backstory_tools.bench.run import main

sys.exit(main())

"""``python -m rmc_agents.tune``: see :mod:`rmc_agents.tune`."""

import sys

from rmc_agents.tune.cli import main

if __name__ == "__main__":
    sys.exit(main())

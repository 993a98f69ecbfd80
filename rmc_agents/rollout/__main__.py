"""``python -m rmc_agents.rollout``: see :mod:`rmc_agents.rollout`."""

import sys

from rmc_agents.rollout.cli import main

if __name__ == "__main__":
    sys.exit(main())

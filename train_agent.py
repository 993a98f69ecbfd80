"""Train an agent (IMPALA, APPO or PPO) with the Relational Memory Core policy: ``python train_agent.py --env ID``.

All logic lives in :mod:`rmc_agents.rl.cli`; run ``python train_agent.py --help`` for the flags.
"""

import sys

from rmc_agents.rl.cli import main

if __name__ == "__main__":
    sys.exit(main())

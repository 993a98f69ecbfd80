"""Mini-Pacman (DeepMind's I2A game): batched game core, Env and VectorEnv faces, renderer.

Installed as the top-level package ``minipacman`` (its source sits in the repository's ``envs/``
folder). Importing it, or ``rmc_agents``, registers the Gymnasium ids:

- ``MiniPacman-Viewport-v0``: Mini-Pacman seen through a 5x5 window centred on Pacman.
- ``MiniPacman-Full-v0``: Mini-Pacman seen whole (15x19).

Both have a batched vector face:
``gym.make_vec(id, num_envs=N, vectorization_mode="vector_entry_point")``. Where only a string can
be passed (another process, a config file), Gymnasium's module-prefixed form
``minipacman:MiniPacman-Viewport-v0`` imports this package first.
"""

from gymnasium.envs.registration import register, registry

from .core import DIRECTIONS, MODES, GameCore
from .env import MiniPacmanEnv
from .vector import MiniPacmanVectorEnv

__all__ = ["DIRECTIONS", "ENV_IDS", "MODES", "GameCore", "MiniPacmanEnv", "MiniPacmanVectorEnv"]

ENV_IDS = ("MiniPacman-Viewport-v0", "MiniPacman-Full-v0")

for _env_id, _view in zip(ENV_IDS, ("viewport", "full"), strict=True):
    if _env_id not in registry:
        register(
            id=_env_id,
            entry_point="minipacman.env:MiniPacmanEnv",
            vector_entry_point="minipacman.vector:MiniPacmanVectorEnv",
            kwargs={"view": _view},
        )

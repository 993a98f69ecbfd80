"""Gymnasium environments of rmc-agents. Importing this package registers their ids.

- ``MiniPacman-Viewport-v0``: Mini-Pacman seen through a 5x5 window centred on Pacman.
- ``MiniPacman-Full-v0``: Mini-Pacman seen whole (15x19).

Both have a batched vector face: ``gym.make_vec(id, num_envs=N, vectorization_mode="vector_entry_point")``.
"""

from gymnasium.envs.registration import register, registry

ENV_IDS = ("MiniPacman-Viewport-v0", "MiniPacman-Full-v0")

for _env_id, _view in zip(ENV_IDS, ("viewport", "full"), strict=True):
    if _env_id not in registry:
        register(
            id=_env_id,
            entry_point="envs.minipacman.env:MiniPacmanEnv",
            vector_entry_point="envs.minipacman.vector:MiniPacmanVectorEnv",
            kwargs={"view": _view},
        )

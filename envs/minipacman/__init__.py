"""Mini-Pacman (DeepMind's I2A game): batched game core, Env and VectorEnv faces, renderer."""

from .core import DIRECTIONS, MODES, GameCore
from .env import MiniPacmanEnv
from .vector import MiniPacmanVectorEnv

__all__ = ["DIRECTIONS", "MODES", "GameCore", "MiniPacmanEnv", "MiniPacmanVectorEnv"]

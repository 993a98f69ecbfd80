"""Counter-based random numbers: each game draws from its own seeded stream.

A draw is a pure function of (the game's 64-bit key, its tick, a draw index): the SplitMix64
finaliser applied to ``key + ((tick << 20) + index) * golden``. Because nothing is shared between
games and no draw depends on how many other draws happen, game ``i`` of a batch seeded ``s``
replays exactly the game of a single environment seeded ``s``, whatever the batch size, and the
batched (numpy) and scalar (Python int) evaluations below give bit-identical floats.

The tick counts the game's resets and steps since it was seeded; the index separates the draws of
one tick (ghost rolls, level set-up).
"""

from __future__ import annotations

import numpy as np

MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB
INDEX_BITS = 20
INV_2_53 = 2.0**-53

_U_GOLDEN = np.uint64(GOLDEN)
_U_MIX1 = np.uint64(MIX1)
_U_MIX2 = np.uint64(MIX2)
_U_BITS = np.uint64(INDEX_BITS)


def key_from_generator(rng: np.random.Generator) -> int:
    """A game's 64-bit stream key, drawn from a (seeded) numpy generator."""
    return int(rng.integers(0, 2**63, dtype=np.int64)) * 2 + int(rng.integers(0, 2))


def uniform_scalar(key: int, tick: int, index: int) -> float:
    """One uniform float in [0, 1) for a single game (Python ints, no numpy)."""
    z = (key + ((tick << INDEX_BITS) + index) * GOLDEN) & MASK64
    z = ((z ^ (z >> 30)) * MIX1) & MASK64
    z = ((z ^ (z >> 27)) * MIX2) & MASK64
    z ^= z >> 31
    return (z >> 11) * INV_2_53


def uniform_batch(key: np.ndarray, tick: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Uniform floats in [0, 1) of shape ``[len(index), N]`` for N games (uint64 keys/ticks)."""
    pos = (tick[None, :] << _U_BITS) + index.astype(np.uint64)[:, None]
    z = key[None, :] + pos * _U_GOLDEN
    z ^= z >> np.uint64(30)
    z *= _U_MIX1
    z ^= z >> np.uint64(27)
    z *= _U_MIX2
    z ^= z >> np.uint64(31)
    return (z >> np.uint64(11)).astype(np.float64) * INV_2_53

"""Exceptions shared by the RL modules, kept free of heavy imports (torch, Ray).

The CLI catches these to print one ``error:`` line; importing them from here lets it report a
user's mistake (a bad config, an unknown env id) without first paying for a torch import.
"""

from __future__ import annotations

__all__ = ["UnsupportedSpaceError"]


class UnsupportedSpaceError(ValueError):
    """The observation (or action) space has no encoder."""

"""rmc-agents: memory-based RL agents built around the Relational Memory Core."""

__version__ = "0.1.0"

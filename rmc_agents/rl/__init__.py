"""RLlib glue: the agent's RLModule (torso by observation space, core, heads), env resolution,
the IMPALA config builder, the training loop and its CLI (``train_agent.py``)."""

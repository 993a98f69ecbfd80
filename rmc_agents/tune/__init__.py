"""Hyperparameter search on Ray Tune: ``python -m rmc_agents.tune SWEEP.yaml --output DIR``.

A sweep file (:mod:`~rmc_agents.tune.sweep`; examples in ``configs/sweeps/``) names a base config
file, settings fixed for every trial and the settings to search with their distributions. Each
trial is a Ray Tune function trainable (:mod:`~rmc_agents.tune.trial`) that trains with this
project's trainer into ``DIR/trials/<trial_id>/`` (a ``train_agent.py`` run's folder) and reports
each iteration to Tune, with ``return_last20`` (the mean return over the last 20% of the frames so
far) as the metric ASHA and the final ranking use. :mod:`~rmc_agents.tune.cli` checks the inputs,
starts Ray, runs or continues the sweep and writes ``DIR/trials.csv`` and ``DIR/best.yaml``.
See docs/training.md, "Hyperparameter search (Ray Tune)".
"""

from __future__ import annotations

from rmc_agents.tune.cli import main
from rmc_agents.tune.sweep import Sweep, load_sweep, trial_settings

__all__ = ["Sweep", "load_sweep", "main", "trial_settings"]

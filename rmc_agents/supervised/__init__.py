"""The RMC paper's supervised tasks on the shared recurrent cores (no Ray here).

- ``nth-farthest``: relational reasoning over a set of vectors (:mod:`.nth_farthest`).
- ``learning-to-execute``: evaluate small programs, encoder-decoder (:mod:`.learning_to_execute`).
- ``language-model``: word-level language modelling on a WikiText-layout corpus
  (:mod:`.language_model`).

Run ``python -m rmc_agents.supervised --help``; every task shares :func:`.trainer.train`.
"""

from rmc_agents.supervised.common import SupervisedError

__all__ = ["TASKS", "SupervisedError", "get_task"]

TASKS = ("nth-farthest", "learning-to-execute", "language-model")


def get_task(name: str) -> type:
    """The :class:`~rmc_agents.supervised.trainer.Task` class called ``name``."""
    if name == "nth-farthest":
        from rmc_agents.supervised.nth_farthest import NthFarthestTask

        return NthFarthestTask
    if name == "learning-to-execute":
        from rmc_agents.supervised.learning_to_execute import LearningToExecuteTask

        return LearningToExecuteTask
    if name == "language-model":
        from rmc_agents.supervised.language_model import LanguageModelTask

        return LanguageModelTask
    raise SupervisedError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")

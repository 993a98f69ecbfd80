"""One trial of a sweep: a Ray Tune function trainable that runs the project's trainer.

Each trial trains with :func:`rmc_agents.rl.trainer.train` into ``<sweep>/trials/<trial_id>/``
(``config.yaml``, ``progress.csv``, ``tb/``, ``checkpoint/``, ``summary.json``: a
``train_agent.py`` run's folder) and reports every ``progress.csv`` row to Tune, with
``return_last20`` (:func:`late_mean` of the returns so far) beside the row's columns.

A trial started again (a resumed sweep) whose folder holds a checkpoint continues from it with
``train(..., resume=True)``; one whose run already reached its stop criterion only reports its last
row again. When Tune stops a trial early (the ASHA scheduler, or the sweep being interrupted), the
trial ends its run as Ctrl-C ends a ``train_agent.py`` run (final checkpoint, ``summary.json``,
EnvRunners stopped) before Tune lets its process go: see :class:`FinishRunOnStop`.

Resources: :func:`trial_resources` asks RLlib what the trial's algorithm needs
(``Algorithm.default_resource_request``: one bundle for the driver, whose CPU also runs the learner
when ``resources.num_learners`` is 0, then one per EnvRunner, then one per remote learner). Tune
reserves them as one placement group and starts the trial's process in its first bundle; RLlib then
places each EnvRunner actor in its own bundle of that group (Tune's trial actors capture their
child actors into the group), so trials never take each other's CPUs.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from rmc_agents.tune.sweep import trial_settings

__all__ = [
    "FinishRunOnStop",
    "LATE_FRACTION",
    "STOPPED_BY_TUNE",
    "best_block_mean",
    "late_mean",
    "run_trial",
    "trial_resources",
]

#: The share of a trial's frames that ``return_last20`` averages over.
LATE_FRACTION = 0.2
#: How ``summary.json``'s ``stopped_because`` starts for a run that Tune stopped early.
STOPPED_BY_TUNE = "stopped by Ray Tune"
#: Seconds Tune's stop waits for a stopped trial's run to end (final checkpoint, EnvRunners).
FINISH_TIMEOUT_S = 120.0


def late_mean(steps: list[int], returns: list[float], fraction: float = LATE_FRACTION) -> float:
    """The mean of the logged returns over the last ``fraction`` of the frames (those logged at
    ``steps[-1] * (1 - fraction)`` frames or later); NaN before any return was logged. The
    measure of ``bench/learning.py`` too (it imports this one)."""
    if not steps:
        return float("nan")
    start = steps[-1] * (1.0 - fraction)
    late = [r for s, r in zip(steps, returns, strict=True) if s >= start]
    return sum(late) / len(late)


def best_block_mean(means: list[float], counts: list[float], window: float) -> float:
    """The best mean over blocks of at least ``window`` episodes: the logged means (each the mean
    of ``counts[i]`` episodes) pooled from the last one back into consecutive blocks, each block's
    mean weighted by the counts; a part at the start too small for a block is left out unless no
    block fills, when the mean of everything logged is the one block. POPGym's MMER (max mean
    episode return) made comparable across batch shapes: a logged mean of few episodes is noisy,
    and the best of many noisy means reads high by chance. ``window`` <= 0: the best logged mean.
    NaN when nothing was logged."""
    if len(means) != len(counts):
        raise ValueError(f"{len(means)} means but {len(counts)} episode counts")
    if not means:
        return float("nan")
    if window <= 0:
        return max(means)
    blocks: list[float] = []
    total = weighted = 0.0
    for mean, count in zip(reversed(means), reversed(counts), strict=True):
        total, weighted = total + count, weighted + count * mean
        if total >= window - 1e-9:
            blocks.append(weighted / total)
            total = weighted = 0.0
    return max(blocks) if blocks else weighted / total


def read_returns(progress_csv: Path) -> tuple[list[int], list[float]]:
    """The (env steps, episode_return_mean) of the ``progress.csv`` rows that have a return."""
    if not progress_csv.is_file():
        return [], []
    with progress_csv.open(newline="") as f:
        return returns_of_rows(csv.DictReader(f))


def returns_of_rows(rows: Iterable[Mapping[str, str]]) -> tuple[list[int], list[float]]:
    """(env steps, episode_return_mean) of the ``progress.csv`` rows given that have a return."""
    steps: list[int] = []
    returns: list[float] = []
    for row in rows:
        if row.get("episode_return_mean"):
            steps.append(int(float(row["env_steps"])))
            returns.append(float(row["episode_return_mean"]))
    return steps, returns


def trial_resources(settings: Mapping[str, Any], config: Mapping[str, Any]) -> Any:
    """The placement group factory of the trial with Tune ``config`` (its sampled values under
    ``"search"``): RLlib's ``default_resource_request`` for the trial's algorithm."""
    from rmc_agents.rl.algorithms import build_algo_config

    run = trial_settings(settings, config["search"])
    algo_config = build_algo_config(run)
    return algo_config.algo_class.default_resource_request(algo_config)


class FinishRunOnStop:
    """A mixin for Tune's function trainable (``run_trial.__mixins__``).

    When Tune stops a trial, its ``cleanup`` wakes the trial's thread (blocked in ``tune.report``)
    and returns at once; the process then goes, and with it the run's final checkpoint and
    ``summary.json`` half written and its EnvRunners. Here ``cleanup`` first lets the thread end
    the run (:func:`run_trial` turns the stop into the trainer's Ctrl-C path), up to
    :data:`FINISH_TIMEOUT_S`.
    """

    def cleanup(self) -> None:
        try:
            from ray.train._internal.session import get_session

            session = get_session()
            thread = getattr(session, "training_thread", None)
            if session is not None and thread is not None and thread.is_alive():
                session.finish(timeout=FINISH_TIMEOUT_S)
        except Exception:  # pragma: no cover - Tune's own cleanup below reports its errors
            pass
        super().cleanup()  # type: ignore[misc]


class _Reporter:
    """``train(on_iteration=...)``: each row to Tune, with ``return_last20`` so far."""

    def __init__(self, output: Path) -> None:
        self.output = output
        self.steps: list[int] | None = None
        self.returns: list[float] = []
        self.stopped = False  # Tune stopped the trial

    def metrics(self, row: Mapping[str, Any]) -> dict[str, Any]:
        if self.steps is None:  # the rows before this one (a resumed run's), this one included
            self.steps, self.returns = read_returns(self.output / "progress.csv")
        elif row.get("episode_return_mean") is not None:
            self.steps.append(int(row["env_steps"]))
            self.returns.append(float(row["episode_return_mean"]))
        metrics = {k: (math.nan if v is None else v) for k, v in row.items()}
        metrics["return_last20"] = late_mean(self.steps, self.returns)
        return metrics

    def __call__(self, row: dict[str, Any]) -> None:
        from ray import tune

        metrics = self.metrics(row)
        try:
            tune.report(metrics)
        except SystemExit:  # Tune's way to end a trial's thread: end the run cleanly instead
            self.stopped = True
            raise KeyboardInterrupt from None


def finished_by_own_stop(output: Path) -> bool:
    """True when ``output`` holds a run that ended by its own stop criterion."""
    path = output / "summary.json"
    if not path.is_file():
        return False
    try:
        reason = str(json.loads(path.read_text()).get("stopped_because", ""))
    except (OSError, ValueError):
        return False
    return bool(reason) and reason != "interrupted" and not reason.startswith(STOPPED_BY_TUNE)


def _has_checkpoint(output: Path) -> bool:
    from rmc_agents.rl.trainer import CHECKPOINT_DIR, PROGRESS_FILE

    names = (CHECKPOINT_DIR, CHECKPOINT_DIR + ".old")
    return any((output / name / PROGRESS_FILE).is_file() for name in names)


def _report_last_row(output: Path) -> None:
    """Report a finished run's last ``progress.csv`` row again (Tune restarted a trial whose run
    had ended before the sweep's state recorded it)."""
    from ray import tune

    with (output / "progress.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    row: dict[str, Any] = {}
    for key, text in rows[-1].items():
        try:
            row[key] = float(text) if text else None
        except ValueError:
            row[key] = text
    row["iteration"] = int(row["iteration"])
    row["env_steps"] = int(row["env_steps"])
    steps, returns = read_returns(output / "progress.csv")
    metrics = {k: (math.nan if v is None else v) for k, v in row.items()}
    metrics["return_last20"] = late_mean(steps, returns)
    tune.report(metrics)


def run_trial(config: dict[str, Any], *, settings: dict[str, Any], output: str) -> None:
    """The trainable: train the trial's settings (the sweep's ``settings`` with ``config
    ["search"]`` applied) into ``<output>/trials/<trial_id>/``, reporting each row to Tune.

    Raises whatever the trainer raises (Tune marks the trial as errored, with the message).
    """
    from ray import tune

    from rmc_agents.rl.trainer import load_run_settings, train

    trial_id = tune.get_context().get_trial_id()
    folder = Path(output) / "trials" / trial_id
    if finished_by_own_stop(folder):
        _report_last_row(folder)
        return
    resume = _has_checkpoint(folder)
    run = load_run_settings(folder) if resume else trial_settings(settings, config["search"])
    reporter = _Reporter(folder)

    def log(line: str) -> None:  # the driver prints the iterations; keep the rest
        if not line.startswith("iter "):
            print(f"[{trial_id}] {line}", flush=True)

    summary = train(
        run,
        folder,
        resume=resume,
        overwrite=not resume,  # a run that never reached a checkpoint starts again
        log=log,
        on_iteration=reporter,
    )
    if reporter.stopped:
        summary["stopped_because"] = _stop_reason(run, summary)
        (folder / "summary.json").write_text(json.dumps(summary, indent=2))
        raise SystemExit(0)  # Tune is waiting for the thread to end, not for another result


def _stop_reason(run: Any, summary: Mapping[str, Any]) -> str:
    """Why a run that Tune stopped ended: its own stop criterion if the last row met it (Tune
    stops a trial at its last row too), else :data:`STOPPED_BY_TUNE` and where."""
    stop, steps = run.stop, int(summary["env_steps"])
    if stop.timesteps is not None and steps >= stop.timesteps:
        return f"timesteps: {steps:,} >= {stop.timesteps:,}"
    if stop.iterations is not None and summary["iterations"] >= stop.iterations:
        return f"iterations: {summary['iterations']} >= {stop.iterations}"
    return f"{STOPPED_BY_TUNE} at {steps:,} env steps (the ASHA scheduler, or the sweep stopped)"


run_trial.__mixins__ = (FinishRunOnStop,)  # type: ignore[attr-defined]

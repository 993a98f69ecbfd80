"""The training loop around RLlib's algorithms: output dir, progress, metrics, checkpoints, resume.

:func:`train` runs one experiment described by :class:`RunSettings` into an output directory::

    <output>/config.yaml      the resolved settings (file + CLI flags)
    <output>/progress.csv     one row per training iteration (columns: see METRIC_COLUMNS)
    <output>/tb/              the same metrics for TensorBoard
    <output>/checkpoint/      the last checkpoint (periodic and final), replaced atomically
    <output>/summary.json     the final summary (env_steps, returns, frames/s, why it stopped)

RLlib hides exceptions raised inside the loss (they kill the learner thread; ``train()`` then keeps
returning or blocks). A watchdog stops the run with the error when the learner thread dies or when
``num_env_steps_trained_lifetime`` has not risen for ``stall_seconds``.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rmc_agents.config import ConfigError, config_from_dict, save_config
from rmc_agents.rl.settings import DIAGNOSTIC_KEYS, RunSettings

__all__ = ["METRIC_COLUMNS", "TrainingError", "train"]

CHECKPOINT_DIR = "checkpoint"
PROGRESS_FILE = "trainer_progress.json"
RUN_MARKER = "config.yaml"

#: progress.csv columns, and the RLlib result key each comes from (None: computed here; a tuple:
#: the first key present, as the algorithms name their loss terms differently).
METRIC_COLUMNS: dict[str, str | tuple[str, ...] | None] = {
    "iteration": None,
    "time_s": None,
    "env_steps": None,  # env steps sampled, over the whole run (resumes included)
    "env_steps_trained": None,  # env steps the learner has trained on
    "frames_per_second": None,  # env steps sampled per wall-clock second, this iteration
    "episode_return_mean": "env_runners/episode_return_mean",
    "episode_len_mean": "env_runners/episode_len_mean",
    # the episodes that ended in this iteration: how many returns episode_return_mean averages
    "episodes": "env_runners/num_episodes",
    "total_loss": "learners/default_policy/total_loss",
    "policy_loss": ("learners/default_policy/mean_pi_loss", "learners/default_policy/policy_loss"),
    "value_loss": ("learners/default_policy/mean_vf_loss", "learners/default_policy/vf_loss"),
    "entropy": "learners/default_policy/entropy",
    # mean V(x) over the batch's real steps, in the loss's units (rewards x training.reward_scale)
    "mean_value": "learners/default_policy/mean_value",
    "lr": "learners/default_policy/default_optimizer_learning_rate",  # the step size in use
    "entropy_coeff": "learners/default_policy/curr_entropy_coeff",  # the entropy bonus in use
    # rmc_agents/rl/evaluation.py: every evaluation.every iterations (empty in the others)
    "eval/return_mean": None,
    "eval/return_std": None,
    # rmc_agents/rl/diagnostics.py: every training.diagnostics_every-th learner update
    **{
        f"diag/{key[len('diag_') :]}": (
            (f"learners/default_policy/{key}", "learners/default_policy/vf_explained_var")
            if key == "diag_value_ev"
            else f"learners/default_policy/{key}"
        )
        for key in DIAGNOSTIC_KEYS
    },
}
_SAMPLED = "env_runners/num_env_steps_sampled_lifetime"
_TRAINED = "learners/__all_modules__/num_env_steps_trained_lifetime"
_TRAINED_NOW = "learners/__all_modules__/num_env_steps_trained"


class TrainingError(RuntimeError):
    """A run cannot start or had to stop (bad output dir, stalled learner, ...)."""


class _Stalled(BaseException):
    """Raised in the main thread by the watchdog (a BaseException so RLlib cannot swallow it)."""


def _lookup(result: dict[str, Any], key: str) -> Any:
    node: Any = result
    for part in key.split("/"):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _number(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


# --- output directory ----------------------------------------------------------------------


def prepare_output(output: Path, resume: bool, overwrite: bool) -> Path | None:
    """Check, then clean/create ``output``; return the checkpoint to resume from (or None).

    Raises: as :func:`check_output`.
    """
    restore_from = check_output(output, resume, overwrite)
    _make_output(output, restore_from)
    return restore_from


def _make_output(output: Path, restore_from: Path | None) -> None:
    """After :func:`check_output` passed: clear a run being overwritten, create the directory."""
    if restore_from is None:
        if output.exists() and any(output.iterdir()):
            shutil.rmtree(output)
        output.mkdir(parents=True, exist_ok=True)


def check_output(output: Path, resume: bool, overwrite: bool) -> Path | None:
    """Check ``output`` without touching it; return the checkpoint to resume from (or None).

    Raises:
        TrainingError: the directory holds another run (and neither ``resume`` nor ``overwrite``),
            holds files that are not a run, or ``resume`` finds no checkpoint.
    """
    if resume and overwrite:
        raise TrainingError("--resume and --overwrite exclude each other")
    if output.exists() and not output.is_dir():
        raise TrainingError(f"output {output} is a file, not a directory")
    is_run = (output / RUN_MARKER).is_file()
    if resume:
        from rmc_agents.rl.checkpoints import verify_checkpoint

        for name in (CHECKPOINT_DIR, CHECKPOINT_DIR + ".old"):
            if (output / name / PROGRESS_FILE).is_file():
                verify_checkpoint(output / name)  # a damaged one fails here, naming the file
                return output / name
        raise TrainingError(f"--resume: no checkpoint found in {output}")
    if output.exists() and any(output.iterdir()):
        if not is_run:
            raise TrainingError(
                f"output directory {output} is not empty and holds no run; choose another --output"
            )
        if not overwrite:
            raise TrainingError(
                f"output directory {output} holds another run; use --resume to continue it or "
                "--overwrite to replace it"
            )
    return None


def load_run_settings(output: Path) -> RunSettings:
    """The settings a run in ``output`` was started with."""
    import yaml

    path = output / RUN_MARKER
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return config_from_dict(RunSettings, data, source=str(path))


# --- watchdog --------------------------------------------------------------------------------


def _stalled_cause(exc: BaseException) -> _Stalled | None:
    """The watchdog's :class:`_Stalled` behind ``exc`` (as its cause or context), or None."""
    seen: set[int] = set()
    node: BaseException | None = exc
    while node is not None and id(node) not in seen:
        if isinstance(node, _Stalled):
            return node
        seen.add(id(node))
        node = node.__cause__ or node.__context__
    return None


def _set_async_exc(thread_id: int | None, exc_type: type[BaseException] | None) -> bool:
    """Raise ``exc_type`` in thread ``thread_id`` at its next Python instruction (None: cancel a
    pending one); True if the thread was found."""
    import ctypes

    if thread_id is None:
        return False
    exc = ctypes.py_object(exc_type) if exc_type is not None else None
    return ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), exc) == 1


#: Seconds between two signals of the watchdog while the loop has not stopped after the first.
REFIRE_S = 5.0


class _Watchdog:
    """Stops the training thread when the learner dies or stops making progress.

    In the main thread (``train_agent.py``) by a signal, which also breaks into Ray's blocking
    calls. Elsewhere (a Ray Tune trial runs its function in a thread of its own; only the main
    thread gets signals) by an exception set for that thread (``PyThreadState_SetAsyncExc``):
    raised at its next Python instruction, so a thread blocked inside C code sees it when that
    call returns; and :meth:`check` raises it from the loop after every iteration either way.
    """

    def __init__(self, stall_seconds: float) -> None:
        self.stall_seconds = stall_seconds
        self.last_progress = time.monotonic()
        self.error: str | None = None
        self.iterations = 0  # training iterations that returned (set by the loop)
        self._stop = threading.Event()
        self._old_hook = threading.excepthook
        self._old_handler = None
        self._target: int | None = None  # the thread to stop, when it is not the main thread
        self._fired = False
        self._last_fire = 0.0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="rmc-watchdog", daemon=True)

    def __enter__(self) -> _Watchdog:
        threading.excepthook = self._hook
        if threading.current_thread() is threading.main_thread():
            self._old_handler = signal.signal(signal.SIGUSR1, self._interrupt)
        else:
            self._target = threading.get_ident()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            with self._lock:
                self._stop.set()
                if self._fired:  # one not delivered yet must not land after the loop
                    _set_async_exc(self._target, None)
        finally:
            threading.excepthook = self._old_hook
            if self._old_handler is not None:
                signal.signal(signal.SIGUSR1, self._old_handler)

    def progress(self) -> None:
        self.last_progress = time.monotonic()

    def _hook(self, args: Any) -> None:
        from rmc_agents.rl.errors import NonFiniteUpdateError

        # A refused non-finite update is raised in this thread by the learner's next ``update``
        # (rmc_agents.rl.fault_tolerance.NonFiniteGuard): stopping the run here too would race it.
        refused = isinstance(args.exc_value, NonFiniteUpdateError)
        if args.thread is not None and "Learner" in args.thread.name and not refused:
            self.error = f"the learner thread failed: {args.exc_type.__name__}: {args.exc_value}"
            self._fire()
        self._old_hook(args)

    def _interrupt(self, signum: int, frame: Any) -> None:
        raise _Stalled(self.error)

    def _fire(self) -> None:
        if self._old_handler is not None:
            with self._lock:  # never after the loop has left (the handler is restored then)
                if not self._stop.is_set():
                    self._last_fire = time.monotonic()
                    os.kill(os.getpid(), signal.SIGUSR1)
        elif self._target is not None:
            message = self.error

            class _StalledHere(_Stalled):
                def __init__(self) -> None:  # raised as a class: carries its message itself
                    super().__init__(message)

            with self._lock:
                if not self._stop.is_set() and not self._fired:
                    self._fired = _set_async_exc(self._target, _StalledHere)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            if self.error is None and time.monotonic() - self.last_progress > self.stall_seconds:
                self.error = self.stall_message()
                self._fire()
            elif self.error is not None and time.monotonic() - self._last_fire >= REFIRE_S:
                # The loop is still running: the signal's exception was lost (raised inside
                # Ray's C code, wrapped, and caught by RLlib's own error handling). Again.
                self._fire()

    def stall_message(self) -> str:
        if self.iterations == 0:
            return (
                f"no training iteration finished in {self.stall_seconds:.0f} s: the EnvRunners "
                "sampled nothing or the learner never finished an update (a slow or overloaded "
                "machine: raise stall_seconds); see the Ray logs above"
            )
        return (
            f"the learner made no progress for {self.stall_seconds:.0f} s "
            "(num_env_steps_trained_lifetime did not rise); see the Ray logs above"
        )

    def check(self) -> None:
        if self.error is not None:
            raise _Stalled(self.error)


# --- checkpoints -----------------------------------------------------------------------------


def _save_checkpoint(algo: Any, output: Path, progress: dict[str, Any]) -> Path:
    """Write a checkpoint into a temp dir, then swap it in for ``<output>/checkpoint``."""
    final = output / CHECKPOINT_DIR
    tmp = output / (CHECKPOINT_DIR + ".tmp")
    old = output / (CHECKPOINT_DIR + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    algo.save_to_path(str(tmp.resolve()))
    (tmp / PROGRESS_FILE).write_text(json.dumps(progress, indent=2))
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def _truncate_progress(csv_path: Path, iterations: int) -> None:
    """Keep the rows of ``progress.csv`` up to ``iterations`` (the checkpoint's), atomically, in
    the current columns."""
    if not csv_path.exists():
        return
    with csv_path.open(newline="") as f:
        rows = [
            r for r in csv.DictReader(f) if r.get("iteration") and int(r["iteration"]) <= iterations
        ]
    tmp = csv_path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(METRIC_COLUMNS), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(csv_path)


class _BestPolicy:
    """The policy of the iteration with the best mean episode return so far, kept in memory and
    written to ``<output>/best/`` with each checkpoint: ``policy/`` (an RLModule directory, weights
    only), ``config.yaml`` and ``best.json`` (its iteration, env steps and return).
    ``python -m rmc_agents.rollout --checkpoint <output>/best`` plays it."""

    def __init__(self) -> None:
        self.weights: dict[str, Any] | None = None
        self.row: dict[str, Any] = {}
        self.written = True

    def hold(self, algo: Any, row: dict[str, Any]) -> None:
        try:
            self.weights = algo.learner_group.get_weights()["default_policy"]
        except Exception:  # pragma: no cover - keep training; the best copy is a convenience
            return
        self.row, self.written = dict(row), False

    def write(self, checkpoint: Path, output: Path) -> None:
        if self.written or self.weights is None:
            return
        import pickle

        module_dir = checkpoint / "learner_group" / "learner" / "rl_module" / "default_policy"
        tmp, final = output / "best.tmp", output / "best"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(module_dir, tmp / "policy")
        state = {
            k: v.detach().cpu().numpy() if hasattr(v, "detach") else v
            for k, v in self.weights.items()
        }
        with (tmp / "policy" / "module_state.pkl").open("wb") as f:
            pickle.dump(state, f)
        if (output / RUN_MARKER).is_file():
            shutil.copy(output / RUN_MARKER, tmp / RUN_MARKER)
        (tmp / "best.json").write_text(json.dumps(self.row, indent=2))
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        self.written = True


# --- the loop --------------------------------------------------------------------------------


def _check_gpus(res: Any) -> None:
    """Refuse GPU learners that cannot be placed (RLlib would wait for them forever).

    Asks the cluster (or torch, for a learner in this process) only when GPUs are asked for.
    """
    if res.gpus_per_learner <= 0:
        return
    if res.num_learners == 0:
        import torch

        if not torch.cuda.is_available():
            raise TrainingError(
                f"--gpus-per-learner {res.gpus_per_learner:g} with --num-learners 0 learns in this "
                "process, but torch here sees no CUDA GPU (torch.cuda.is_available() is False)"
            )
        return
    import ray

    wanted = res.num_learners * res.gpus_per_learner
    cluster_gpus = ray.cluster_resources().get("GPU", 0.0)
    if wanted > cluster_gpus:
        raise TrainingError(
            f"--num-learners {res.num_learners} x --gpus-per-learner {res.gpus_per_learner:g} "
            f"asks for {wanted:g} GPU(s), but the Ray cluster has {cluster_gpus:g}; RLlib would "
            "wait for them forever (start GPU nodes with `ray start --num-gpus N`, or drop "
            "--gpus-per-learner to learn on CPUs)"
        )


def _progress_line(row: dict[str, Any], stop_total: int | None) -> str:
    steps = f"{int(row['env_steps']):,}"
    if stop_total:
        steps += f"/{stop_total:,}"
    ret = row["episode_return_mean"]
    loss = row["total_loss"]
    return (
        f"iter {row['iteration']:>4}  steps {steps}  {row['frames_per_second']:,.0f} fps  "
        f"return {'-' if ret is None else f'{ret:.2f}'}  "
        f"loss {'-' if loss is None else f'{loss:.3f}'}  {row['time_s']:.0f}s"
    )


def train(
    run: RunSettings,
    output: str | Path,
    resume: bool = False,
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
    verbose: bool = False,
    *,
    on_iteration: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train until a stop criterion; return the summary (also ``<output>/summary.json``).

    With ``resume``, ``run`` should be the settings saved in the output dir (see
    :func:`load_run_settings`) with any overrides; the step counters continue. ``verbose``: show
    Ray's and RLlib's informational start-up lines (by default only their warnings and errors).
    ``on_iteration``: called with each iteration's ``progress.csv`` row (column -> value, None
    where RLlib gave nothing) once the row is written (``rmc_agents.tune`` reports it to Ray
    Tune); raising ``KeyboardInterrupt`` there ends the run as Ctrl-C does (final checkpoint,
    ``summary.json``, stopped because "interrupted").

    The steps, in order: :func:`_prepare` (every check a user's input can fail, Ray, the output
    dir), :func:`_build` (the algorithm, restored on ``resume``), :func:`_loop` (train, record,
    checkpoint until a stop criterion), then the final checkpoint and :func:`_finish` (summary).

    Raises:
        TrainingError: output dir problems, a stalled or failed learner.
        ConfigError, EnvResolutionError: bad settings or env (before Ray starts).
    """
    log = log or (lambda line: print(line, flush=True))
    output = Path(output)
    restore_from, previous = _prepare(run, output, resume, overwrite, verbose)
    algo, steps_offset = _build(run, output, restore_from, previous, log)
    state = _RunState(previous, steps_offset)
    record = _Record(output, restore_from, previous, steps_offset)
    if on_iteration is not None:
        write_row = record.write

        def write_and_report(row: dict[str, Any]) -> None:
            write_row(row)
            on_iteration(row)

        record.write = write_and_report  # type: ignore[method-assign]
    try:
        stopped_because = _loop(algo, run, output, state, record, log)
    finally:
        record.close()
    checkpoint = _save_checkpoint(algo, output, state.progress())
    state.best_policy.write(checkpoint, output)
    return _finish(algo, run, output, state, stopped_because, checkpoint)


def _prepare(
    run: RunSettings, output: Path, resume: bool, overwrite: bool, verbose: bool = False
) -> tuple[Path | None, dict[str, Any]]:
    """Check what a user's input can get wrong, start (or join) Ray, make the output dir.

    Returns the checkpoint to resume from (or None) and its saved progress."""
    from rmc_agents.rl.checks import check_spaces
    from rmc_agents.rl.cluster import check_ray_address, requested_address
    from rmc_agents.rl.envs import resolve_env

    # Fail early, before Ray starts and before the output dir is touched (and, for a bad env id
    # or a busy output dir, before torch and Ray are imported: answered in a fraction of a second).
    resolve_env(run.env)
    restore_from = check_output(output, resume, overwrite)  # the directory is touched below
    check_spaces(run.env, run.env_kwargs, run.model)
    import ray

    address = requested_address(run.resources.address)
    if address and not ray.is_initialized():
        address = check_ray_address(address)
    previous: dict[str, Any] = {}
    if restore_from is not None:
        previous = json.loads((restore_from / PROGRESS_FILE).read_text())

    from rmc_agents.rl import quiet

    if not verbose:
        quiet.install()
    if not ray.is_initialized():
        import logging

        res = run.resources
        kwargs: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": True,
            "logging_level": logging.INFO if verbose else logging.WARNING,
        }
        if address:
            kwargs["address"] = address
        elif res.num_cpus:
            kwargs["num_cpus"] = res.num_cpus
        try:
            ray.init(**kwargs)
        except ConnectionError as exc:  # the address answered the check but not ray.init
            raise TrainingError(f"cannot join the Ray cluster at {address}: {exc}") from None
    _check_gpus(run.resources)
    # Only now, with Ray up and able to place the run, is a run being overwritten cleared.
    _make_output(output, restore_from)
    save_config(run, output / RUN_MARKER)
    return restore_from, previous


def _build(
    run: RunSettings,
    output: Path,
    restore_from: Path | None,
    previous: dict[str, Any],
    log: Callable[[str], None],
) -> tuple[Any, int]:
    """The algorithm, restored from ``restore_from`` if given; returns it and the env steps the
    run had reached before (0 for a new run)."""
    from rmc_agents.rl.algorithms import build_algo_config, set_driver_threads
    from rmc_agents.rl.cluster import env_runner_nodes

    config = build_algo_config(run)
    set_driver_threads(run)
    algo = config.build_algo()
    placement = env_runner_nodes(algo)
    if placement["runners"]:
        nodes = len(placement["nodes"])
        log(f"EnvRunners: {placement['runners']} on {nodes} node{'s' if nodes != 1 else ''}")
    if restore_from is None:
        return algo, 0
    try:
        algo.restore_from_path(str(restore_from.resolve()))
    except Exception as exc:  # verify_checkpoint passed, but RLlib could not use it
        algo.stop()
        raise TrainingError(
            f"cannot restore checkpoint {restore_from}: {type(exc).__name__}: {exc}"
        ) from None
    steps_offset = int(previous.get("env_steps", 0))
    log(f"resumed from {restore_from} at {steps_offset:,} env steps")
    return algo, steps_offset


class _RunState:
    """The run's counters across iterations (and across a resume: ``previous`` holds the saved
    ones), updated from each RLlib result."""

    def __init__(self, previous: dict[str, Any], steps_offset: int) -> None:
        self.steps_offset = steps_offset
        self.env_steps = steps_offset
        self.iteration = int(previous.get("iterations", 0))
        self.time_offset = float(previous.get("time_s", 0.0))
        self.best = _number(previous.get("best_episode_return_mean"))
        self.last_return: float | None = _number(previous.get("episode_return_mean"))
        self.start = time.monotonic()
        self.elapsed = 0.0
        self.sampled_base: float | None = None
        self.trained_last = -1.0
        self.trained = 0.0
        self.fps_samples: list[tuple[float, float]] = []
        self.trained_in_run = 0.0  # env steps trained by this process (RLlib's may not resume)
        self.best_policy = _BestPolicy()
        # With evaluation on, best/ holds the policy of the best evaluation, not of the best
        # running training mean (which mixes several policies and is noisy).
        self.select_on_eval = False
        self.best_eval = _number(previous.get("best_eval_return_mean"))
        self.last_eval: float | None = _number(previous.get("eval_return_mean"))

    def observe(self, result: dict[str, Any], dt: float, algo: Any, watchdog: _Watchdog) -> dict:
        """Count one iteration's result; return its ``progress.csv`` row."""
        self.iteration += 1
        sampled = _number(_lookup(result, _SAMPLED)) or 0.0
        if self.sampled_base is None:
            # RLlib restores its lifetime counters from a checkpoint or not, depending on
            # version; count from what this process has seen and add the saved total.
            self.sampled_base = sampled - (
                _number(_lookup(result, "env_runners/num_env_steps_sampled")) or 0.0
            )
        prev_steps = self.env_steps
        self.env_steps = self.steps_offset + int(sampled - self.sampled_base)
        self.trained = _number(_lookup(result, _TRAINED)) or 0.0
        if self.trained > self.trained_last:
            watchdog.progress()
            if self.trained_last >= 0:
                self.trained_in_run += self.trained - self.trained_last
            else:  # the first iteration of this process: its own count, as for sampled
                self.trained_in_run += _number(_lookup(result, _TRAINED_NOW)) or 0.0
            self.trained_last = self.trained
        self.elapsed = time.monotonic() - self.start
        steps = self.env_steps - prev_steps
        self.fps_samples.append((steps, dt))
        row: dict[str, Any] = {
            "iteration": self.iteration,
            "time_s": round(self.time_offset + self.elapsed, 2),
            "env_steps": self.env_steps,
            "env_steps_trained": int(self.trained),
            "frames_per_second": round(steps / dt if dt > 0 else 0.0, 1),
        }
        for column, key in METRIC_COLUMNS.items():
            if key is not None:
                keys = (key,) if isinstance(key, str) else key
                found = (_lookup(result, k) for k in keys)
                row[column] = _number(next((v for v in found if v is not None), None))
        if row["episode_return_mean"] is not None:
            self.last_return = row["episode_return_mean"]
            if self.best is None or self.last_return > self.best:
                self.best = self.last_return
                if not self.select_on_eval:
                    self.best_policy.hold(algo, row)
        return row

    def observe_eval(self, row: dict[str, Any], algo: Any) -> None:
        """Count an evaluation (``row`` holds its ``eval/*`` values); keep the best policy."""
        self.last_eval = row["eval/return_mean"]
        if self.best_eval is None or self.last_eval > self.best_eval:
            self.best_eval = self.last_eval
            self.best_policy.hold(algo, row)

    def stop_reason(self, stop: Any) -> str:
        """Why the run stops now ("" to go on): the first stop criterion that is met."""
        if stop.timesteps is not None and self.env_steps >= stop.timesteps:
            return f"timesteps: {self.env_steps:,} >= {stop.timesteps:,}"
        if stop.reward is not None and self.last_return is not None:
            if self.last_return >= stop.reward:
                return f"reward: {self.last_return:.3f} >= {stop.reward}"
        if stop.seconds is not None and self.elapsed >= stop.seconds:
            return f"seconds: {self.elapsed:.0f} >= {stop.seconds:.0f}"
        if stop.iterations is not None and self.iteration >= stop.iterations:
            return f"iterations: {self.iteration} >= {stop.iterations}"
        return ""

    def progress(self) -> dict[str, Any]:
        """What a checkpoint records (``trainer_progress.json``)."""
        return {
            "env_steps": self.env_steps,
            "iterations": self.iteration,
            "time_s": self.time_offset + self.elapsed,
            "episode_return_mean": self.last_return,
            "best_episode_return_mean": self.best,
            "eval_return_mean": self.last_eval,
            "best_eval_return_mean": self.best_eval,
        }


class _Record:
    """``progress.csv`` and the TensorBoard events; on a resume both continue from the
    checkpoint (rows and events written after it are dropped)."""

    def __init__(
        self, output: Path, restore_from: Path | None, previous: dict[str, Any], steps_offset: int
    ) -> None:
        from torch.utils.tensorboard import SummaryWriter

        csv_path = output / "progress.csv"
        if restore_from is not None:
            # Rows and TensorBoard events written after the checkpoint belong to a past that the
            # resumed run replaces: drop them, so that the record rises through kills and resumes.
            _truncate_progress(csv_path, int(previous.get("iterations", 0)))
        new_csv = not csv_path.exists()
        self.csv_file = csv_path.open("a", newline="")
        self.writer = csv.DictWriter(self.csv_file, fieldnames=list(METRIC_COLUMNS))
        if new_csv:
            self.writer.writeheader()
        # purge_step: TensorBoard hides the earlier run's events from this step on.
        self.tb = SummaryWriter(
            str(output / "tb"), purge_step=steps_offset + 1 if steps_offset else None
        )

    def write(self, row: dict[str, Any]) -> None:
        self.writer.writerow(row)
        self.csv_file.flush()
        for column, value in row.items():
            if column not in ("iteration", "env_steps") and value is not None:
                self.tb.add_scalar(column, value, row["env_steps"])

    def close(self) -> None:
        self.csv_file.close()
        self.tb.close()


def _loop(
    algo: Any,
    run: RunSettings,
    output: Path,
    state: _RunState,
    record: _Record,
    log: Callable[[str], None],
) -> str:
    """Train, record and checkpoint until a stop criterion; return why it stopped.

    Raises:
        TrainingError: the learner failed or stalled (see :class:`_Watchdog`), or an update was
            refused as non-finite.
    """
    from rmc_agents.rl.errors import non_finite_cause

    interactive = sys.stdout.isatty()
    last_print = 0.0
    last_ckpt = time.monotonic()
    evaluator = None
    if run.evaluation.every:
        from rmc_agents.rl.evaluation import Evaluator

        evaluator = Evaluator(run, algo)
        state.select_on_eval = True
    try:
        with _Watchdog(run.stall_seconds) as watchdog:
            while True:
                t0 = time.monotonic()
                result = algo.train()
                watchdog.check()
                watchdog.iterations += 1
                row = state.observe(result, time.monotonic() - t0, algo, watchdog)
                if evaluator is not None and evaluator.due(state.iteration):
                    row.update(evaluator.evaluate())
                    state.observe_eval(row, algo)
                record.write(row)
                line = _progress_line(row, run.stop.timesteps)
                if interactive:
                    print("\r" + line + " " * 4, end="", flush=True)
                elif state.elapsed - last_print >= 10 or state.iteration == 1:
                    log(line)
                    last_print = state.elapsed
                stopped_because = state.stop_reason(run.stop)
                if stopped_because:
                    break
                if time.monotonic() - last_ckpt >= run.checkpoint_every_seconds:
                    saved = _save_checkpoint(algo, output, state.progress())
                    state.best_policy.write(saved, output)
                    last_ckpt = time.monotonic()
    except _Stalled as exc:
        if interactive:
            print()
        raise TrainingError(str(exc)) from None
    except Exception as exc:  # a remote learner's non-finite update arrives as a RayTaskError
        stalled = _stalled_cause(exc)
        if stalled is not None:  # the watchdog's signal landed inside Ray's C code, which
            if interactive:  # wrapped it (SystemError "returned a result with an exception set")
                print()
            raise TrainingError(str(stalled)) from None
        cause = non_finite_cause(exc)
        if cause is None:
            raise
        if interactive:
            print()
        raise TrainingError(str(cause)) from None
    except KeyboardInterrupt:
        state.elapsed = time.monotonic() - state.start
        stopped_because = "interrupted"
    finally:
        if evaluator is not None:
            evaluator.close()
    if interactive:
        print()
    return stopped_because


def _finish(
    algo: Any,
    run: RunSettings,
    output: Path,
    state: _RunState,
    stopped_because: str,
    checkpoint: Path,
) -> dict[str, Any]:
    """Stop the algorithm and write ``summary.json``; return the summary."""
    from rmc_agents.rl.cluster import env_runner_nodes

    placement: dict[str, Any] = {}
    try:
        placement = env_runner_nodes(algo)  # again: restarted runners may have moved
    except Exception:  # pragma: no cover - reporting only
        pass
    algo.stop()
    run_steps = sum(s for s, _ in state.fps_samples)
    run_time = sum(t for _, t in state.fps_samples)
    summary = {
        "env": run.env,
        "model": run.model.core,
        "env_steps": state.env_steps,
        "env_steps_trained": int(state.trained),
        "iterations": state.iteration,
        "time_s": round(state.time_offset + state.elapsed, 1),
        "episode_return_mean": state.last_return,
        "best_episode_return_mean": state.best,
        # with evaluation on (evaluation.every): the last and the best evaluation's mean return
        "eval_return_mean": state.last_eval,
        "best_eval_return_mean": state.best_eval,
        "frames_per_second": round(run_steps / run_time, 1) if run_time > 0 else 0.0,
        # IMPALA drops sampled batches that its learner cannot take in time: this is the rate
        # that was learned from (below frames_per_second when the learner is the bottleneck).
        "trained_frames_per_second": (
            round(state.trained_in_run / run_time, 1) if run_time > 0 else 0.0
        ),
        "stopped_because": stopped_because,
        # This process's part of the run (a resumed run's totals above include the earlier ones;
        # frames_per_second and trained_frames_per_second are this session's rates).
        "resumed_from_env_steps": state.steps_offset,
        "session_env_steps": state.env_steps - state.steps_offset,
        "session_time_s": round(time.monotonic() - state.start, 1),
        "checkpoint": str(checkpoint),
        "env_runner_nodes": placement,  # {"runners": n, "nodes": {node id: runners there}}
    }
    from rmc_agents.provenance import provenance

    summary["written_with"] = provenance()  # the commit, uncommitted changes or not, versions
    (output / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


__all__ += ["ConfigError", "check_output", "load_run_settings", "prepare_output"]

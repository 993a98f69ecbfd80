"""``python -m rmc_agents.tune SWEEP.yaml --output DIR``: a hyperparameter search on Ray Tune.

The sweep file is read and checked first (:func:`~rmc_agents.tune.sweep.load_sweep`), then the
output directory, before Ray starts. Then Ray Tune runs the trials (:mod:`rmc_agents.tune.trial`)
and the results are written::

    DIR/sweep.yaml     the sweep file as given; DIR/sweep.json: what a resume compares
    DIR/parts.json     the parts run into DIR: each --only subset of the same file is one, with
                       its own Tune state (tune/, tune-2/, ...); trials.csv covers them all
    DIR/trials/<id>/   each trial's run, as train_agent.py writes one (config.yaml, progress.csv,
                       tb/, checkpoint/, summary.json)
    DIR/tune/          Ray Tune's state (what a resume restores)
    DIR/trials.csv     one row per trial: its searched values, frames, returns and status
    DIR/best.yaml      the best trial's settings: python train_agent.py --config DIR/best.yaml

The same command run again with the same ``--output`` continues a sweep that was stopped (Ctrl-C,
a kill, a failed trial): finished trials are kept, unfinished and failed ones go on from their
checkpoints. The same file with other ``--only`` values (and nothing else changed) runs as a part
beside those already there, if it shares no trial with them. Errors a user can cause print one
``error: ...`` line and exit with status 2.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import math
import os
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from rmc_agents.config import parse_set_items
from rmc_agents.tune.sweep import Sweep, load_sweep

__all__ = ["main", "parse_args"]

SWEEP_COPY = "sweep.yaml"
SWEEP_MARKER = "sweep.json"
TUNE_DIR = "tune"
TRIALS_DIR = "trials"
PARTS_FILE = "parts.json"
#: Seconds between two progress lines of one trial.
PROGRESS_EVERY_S = 10.0


class SweepError(RuntimeError):
    """The sweep cannot start: a busy output directory, a cluster too small for one trial."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m rmc_agents.tune",
        description="Search hyperparameters with Ray Tune: each trial trains as train_agent.py "
        "does (the settings of a base config file, fixed ones and sampled ones), early stopping "
        "by ASHA on env frames. See configs/sweeps/ for the file format.",
    )
    p.add_argument("sweep", help="the sweep file (YAML, see configs/sweeps/)")
    p.add_argument(
        "--output",
        help="the sweep's directory (default runs/sweeps/<sweep file name>); the same command "
        "again continues the sweep there",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="fix a setting for every trial, on top of the file's set: (repeatable; replaces a "
        "searched key's search), e.g. --set stop.timesteps=5000000",
    )
    p.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="KEY=V1[,V2...]",
        help="run only these values of a grid-searched key (repeatable; values split at commas), "
        "e.g. --only seed=3",
    )
    p.add_argument("--overwrite", action="store_true", help="replace the sweep in --output")
    p.add_argument("--num-cpus", type=int, help="CPUs for a Ray started here (default: all)")
    p.add_argument(
        "--address",
        help="address of a running Ray cluster (default: start one); on several nodes --output "
        "must be a directory that every node sees at the same path",
    )
    p.add_argument(
        "--verbose", action="store_true", help="also show Ray's and Ray Tune's own output"
    )
    return p.parse_args(argv)


def parse_only_items(items: list[str]) -> dict[str, list[Any]]:
    """``--only KEY=V1,V2`` strings: each value read as YAML (``3``, ``0.5``, an env id).

    Raises:
        ConfigError: an item is not ``KEY=VALUES``.
    """
    from rmc_agents.config import ConfigError

    only: dict[str, list[Any]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip() or not text.strip():
            raise ConfigError(f"--only expects KEY=V1[,V2...], got {item!r}")
        try:
            values = [yaml.safe_load(part) for part in text.split(",")]
        except yaml.YAMLError:
            raise ConfigError(f"--only {key}: cannot read values {text!r}") from None
        only.setdefault(key.strip(), []).extend(values)
    return only


def _error(message: str) -> int:
    lead = "\n" if "ray" in sys.modules else ""
    print(f"{lead}error: {message}", file=sys.stderr, flush=True)
    return 2


# --- the output directory ------------------------------------------------------------------


class Place(NamedTuple):
    """Where in its output directory a sweep runs: ``tune_dir`` holds its Tune state, ``resume``
    whether that state is continued."""

    resume: bool
    tune_dir: str = TUNE_DIR


def read_parts(output: Path) -> list[dict[str, Any]]:
    """The parts of the sweep in ``output``: ``{"tune_dir", "identity", "command_line"}`` each,
    the first run first. A directory from before sweeps could be run in parts holds one."""
    path = output / PARTS_FILE
    if path.is_file():
        try:
            parts = json.loads(path.read_text())["parts"]
        except (ValueError, KeyError, TypeError):
            raise SweepError(f"{path} is not readable; it lists the parts of the sweep") from None
        return list(parts)
    try:
        stored = json.loads((output / SWEEP_MARKER).read_text())
    except ValueError:
        stored = {}
    return [{"tune_dir": TUNE_DIR, "identity": stored, "command_line": ""}]


def _grid_keys(whole: dict[str, Any]) -> list[str]:
    search = whole.get("search")
    if not isinstance(search, dict):
        return []
    return [k for k, v in search.items() if isinstance(v, dict) and isinstance(v.get("grid"), list)]


def _narrows(identity: dict[str, Any], whole: dict[str, Any]) -> bool:
    """Whether ``identity`` is the sweep ``whole`` with some of its grids narrowed (``--only``)."""
    if not isinstance(identity, dict) or not isinstance(identity.get("search"), dict):
        return False
    rest = {k: v for k, v in identity.items() if k != "search"}
    if rest != {k: v for k, v in whole.items() if k != "search"}:
        return False
    search, full = identity["search"], whole.get("search")
    if not isinstance(full, dict) or set(search) != set(full):
        return False
    grids = _grid_keys(whole)
    for key, spec in search.items():
        if key not in grids:
            if spec != full[key]:
                return False
        elif not (isinstance(spec, dict) and set(spec) == {"grid"} and spec["grid"]):
            return False
        elif any(value not in full[key]["grid"] for value in spec["grid"]):
            return False
    return True


def _shared_points(a: dict[str, Any], b: dict[str, Any], grids: list[str]) -> dict[str, list]:
    """The grid values two parts of one sweep share, per grid key; empty if they share no trial
    (a trial is one value of every grid key)."""
    shared = {}
    for key in grids:
        values = [v for v in a["search"][key]["grid"] if v in b["search"][key]["grid"]]
        if not values:
            return {}
        shared[key] = values
    return shared


def check_output(output: Path, sweep: Sweep, overwrite: bool) -> Place:
    """Check ``output`` without touching it; return where in it the sweep runs.

    An empty or new directory starts the sweep; one holding this sweep (the same file, ``--set``
    and ``--only``) continues it; one holding other parts of the same sweep file (other ``--only``
    values, the rest the same) takes this one as a part of its own, beside them.

    Raises:
        SweepError: ``output`` is a file, holds files that are not a sweep, holds a sweep of
            another sweep file (and not ``overwrite``), or holds a part that would run some of the
            same trials.
    """
    if output.exists() and not output.is_dir():
        raise SweepError(f"output {output} is a file, not a directory")
    if not output.exists() or not any(output.iterdir()):
        return Place(resume=False)
    marker = output / SWEEP_MARKER
    if not marker.is_file():
        raise SweepError(
            f"output directory {output} is not empty and holds no sweep; choose another --output"
        )
    if overwrite:
        return Place(resume=False)
    parts = read_parts(output)
    current = json.loads(sweep.identity_json())
    for part in parts:
        if part["identity"] == current:
            return Place(resume=True, tune_dir=part["tune_dir"])
    whole = sweep.whole_identity()
    if all(_narrows(part["identity"], whole) for part in parts):  # (current narrows its own)
        grids = [key for key in sweep.search if key in _grid_keys(whole)]  # the file's order
        held = []
        for part in parts:
            shared = _shared_points(part["identity"], current, grids)
            if shared:
                named = " ".join(f"{k}={','.join(map(str, v))}" for k, v in shared.items())
                held.append(f"{named} (from {part['command_line'] or 'the first run'})")
        if held:
            raise SweepError(
                f"output directory {output} already holds the trials of {'; '.join(held)}; "
                "give --only values it does not hold, or another --output"
            )
        taken = {part["tune_dir"] for part in parts}
        number = len(parts) + 1
        while f"{TUNE_DIR}-{number}" in taken:
            number += 1
        return Place(resume=False, tune_dir=f"{TUNE_DIR}-{number}")
    stored = parts[0]["identity"] if isinstance(parts[0]["identity"], dict) else {}
    differ = sorted(k for k in set(stored) | set(current) if stored.get(k) != current.get(k))
    raise SweepError(
        f"output directory {output} holds a sweep of another sweep file (it differs in: "
        f"{', '.join(differ)}; see {output / SWEEP_COPY}); choose another --output, or "
        "--overwrite to replace that sweep"
    )


def _make_output(output: Path, sweep: Sweep, place: Place) -> None:
    """After :func:`check_output` passed and Ray is up: clear a sweep being replaced, create the
    directory, record the sweep (or the new part of it)."""
    if place.resume:
        return
    part = {
        "tune_dir": place.tune_dir,
        "identity": json.loads(sweep.identity_json()),
        "command_line": sweep.command_line,
    }
    if place.tune_dir != TUNE_DIR:  # a part beside those already there
        parts = read_parts(output) + [part]
        with (output / SWEEP_COPY).open("a") as f:
            f.write(f"# also run with {sweep.command_line} (Tune state: {place.tune_dir}/)\n")
    else:
        if output.exists() and any(output.iterdir()):
            shutil.rmtree(output)  # a sweep (check_output) being overwritten
        output.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sweep.path, output / SWEEP_COPY)
        if sweep.command_line:
            with (output / SWEEP_COPY).open("a") as f:
                f.write(f"\n# run with {sweep.command_line}\n")
        (output / SWEEP_MARKER).write_text(sweep.identity_json() + "\n")
        parts = [part]
    (output / PARTS_FILE).write_text(json.dumps({"parts": parts}, indent=2, sort_keys=True) + "\n")


# --- Ray and the trials' resources ---------------------------------------------------------


def _start_ray(args: argparse.Namespace) -> bool:
    """Start Ray (or join ``--address``) unless it runs already; True if it was started here."""
    import logging

    import ray

    from rmc_agents.rl.cluster import check_ray_address, requested_address

    if ray.is_initialized():
        return False
    address = requested_address(args.address)
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": True,
        "logging_level": logging.INFO if args.verbose else logging.WARNING,
    }
    if address:
        kwargs["address"] = check_ray_address(address)
    elif args.num_cpus:
        kwargs["num_cpus"] = args.num_cpus
    try:
        ray.init(**kwargs)
    except ConnectionError as exc:
        raise SweepError(f"cannot join the Ray cluster at {address}: {exc}") from None
    return True


def _trial_request(sweep: Sweep) -> dict[str, float]:
    """The most CPUs and GPUs one trial reserves (over the searched values of ``resources.*``)."""
    from rmc_agents.config import config_to_dict
    from rmc_agents.tune.trial import trial_resources

    settings = config_to_dict(sweep.settings)
    first = {k: d.candidates()[0] for k, d in sweep.search.items()}
    configs = [first]
    for key, dist in sweep.search.items():
        if key.startswith("resources."):
            configs += [{**first, key: value} for value in dist.candidates()]
    most = {"CPU": 0.0, "GPU": 0.0}
    for config in configs:
        pgf = trial_resources(settings, {"search": config})
        for kind in most:
            most[kind] = max(most[kind], sum(b.get(kind, 0.0) for b in pgf.bundles))
    return most


def _check_fits(request: dict[str, float], joined: bool) -> None:
    import ray

    have = ray.cluster_resources()
    for kind, need in request.items():
        if need > have.get(kind, 0.0) + 1e-9:
            text = (
                f"one trial reserves {need:g} {kind} (what RLlib asks for its settings: the "
                "driver, which learns when resources.num_learners is 0, each EnvRunner at "
                "resources.num_cpus_per_env_runner, each learner), but the Ray cluster has "
                f"{have.get(kind, 0.0):g}; lower them under set:, or give Ray more (--num-cpus)"
            )
            if not joined:
                raise SweepError(text)
            print(f"warning: {text}; trials wait until the cluster grows", flush=True)


# --- Ray Tune ------------------------------------------------------------------------------


def _trial_name(trial: Any) -> str:
    return str(trial.trial_id)


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _make_progress(keys: list[str], every_s: float) -> Any:
    from ray import tune

    class Progress(tune.Callback):
        """One line per trial at most every ``every_s`` seconds, and one at each start and end."""

        def __init__(self) -> None:
            self.last: dict[str, float] = {}

        def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            search = trial.config.get("search", {})
            shown = ", ".join(f"{k}={_fmt(search.get(k))}" for k in keys)
            print(f"[{trial.trial_id}] started: {shown}", flush=True)

        def on_trial_result(
            self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
        ) -> None:
            now = time.monotonic()
            if now - self.last.get(trial.trial_id, -math.inf) < every_s:
                return
            self.last[trial.trial_id] = now
            steps = result.get("env_steps")
            frames = f"frames {steps:,}  " if isinstance(steps, int) else ""
            print(
                f"[{trial.trial_id}] iter {_fmt(result.get('iteration'))}  {frames}"
                f"return {_fmt(result.get('episode_return_mean'))}  "
                f"last20 {_fmt(result.get('return_last20'))}  "
                f"{_fmt(result.get('frames_per_second'))} fps",
                flush=True,
            )

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            result = trial.last_result or {}
            print(
                f"[{trial.trial_id}] ended at {result.get('env_steps', 0):,} frames: last20 "
                f"{_fmt(result.get('return_last20'))}",
                flush=True,
            )

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            print(f"[{trial.trial_id}] failed (details: {trial.error_file})", flush=True)

    return Progress()


def _trainable(sweep: Sweep, output: Path) -> Any:
    from ray import tune

    from rmc_agents.config import config_to_dict
    from rmc_agents.tune.trial import run_trial, trial_resources

    settings = config_to_dict(sweep.settings)
    with_params = tune.with_parameters(run_trial, settings=settings, output=str(output.resolve()))
    return tune.with_resources(with_params, functools.partial(trial_resources, settings))


def _tuner(sweep: Sweep, output: Path, place: Place, verbose: bool) -> Any:
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    trainable = _trainable(sweep, output)
    experiment = output.resolve() / place.tune_dir
    if place.resume:
        if tune.Tuner.can_restore(str(experiment)):
            return tune.Tuner.restore(
                str(experiment), trainable, resume_unfinished=True, resume_errored=True
            )
        # Killed before Tune recorded anything: nothing to continue, start the trials afresh
        # (their folders go too, unless other parts' trials live beside them).
        shutil.rmtree(experiment, ignore_errors=True)
        if len(read_parts(output)) == 1:
            shutil.rmtree(output / TRIALS_DIR, ignore_errors=True)
    file = sweep.file
    if file.scheduler.type == "asha":
        scheduler: Any = ASHAScheduler(
            time_attr="env_steps",
            max_t=sweep.settings.stop.timesteps,
            grace_period=file.scheduler.grace_frames,
            reduction_factor=file.scheduler.reduction_factor,
        )
    else:
        scheduler = FIFOScheduler()
    return tune.Tuner(
        trainable,
        param_space={"search": {k: d.to_tune() for k, d in sweep.search.items()}},
        tune_config=tune.TuneConfig(
            metric=file.metric,
            mode="max",
            search_alg=BasicVariantGenerator(
                max_concurrent=file.max_concurrent, random_state=file.seed
            ),
            scheduler=scheduler,
            num_samples=file.num_samples,
            trial_name_creator=_trial_name,
            trial_dirname_creator=_trial_name,
        ),
        run_config=tune.RunConfig(
            name=place.tune_dir,
            storage_path=str(output.resolve()),
            verbose=1 if verbose else 0,
            callbacks=[_make_progress(list(sweep.search), PROGRESS_EVERY_S)],
            failure_config=tune.FailureConfig(max_failures=0),
        ),
    )


# --- results -------------------------------------------------------------------------------


def trial_row(folder: Path, search: dict[str, Any], keys: list[str], tune_status: str) -> dict:
    """One ``trials.csv`` row, from the trial's own ``progress.csv`` and ``summary.json`` and its
    status in Tune (``TERMINATED``, ``ERROR``, ``RUNNING``, ``PENDING``, ``PAUSED``)."""
    from rmc_agents.tune.trial import STOPPED_BY_TUNE, finished_by_own_stop, late_mean, read_returns

    steps, returns = read_returns(folder / "progress.csv")
    frames = 0
    if (folder / "progress.csv").is_file():
        with (folder / "progress.csv").open(newline="") as f:
            rows = list(csv.DictReader(f))
        if rows:
            frames = int(float(rows[-1]["env_steps"]))
    stopped = ""
    if (folder / "summary.json").is_file():
        stopped = str(json.loads((folder / "summary.json").read_text()).get("stopped_because"))
    if tune_status == "ERROR":
        status = "error"
    elif tune_status != "TERMINATED":  # the sweep was stopped before the trial ended
        status = "unfinished"
    elif finished_by_own_stop(folder):
        status = "done"
    elif stopped.startswith(STOPPED_BY_TUNE):
        status = "stopped early"  # by the scheduler
    else:
        status = "unfinished"
    row: dict[str, Any] = {"trial_id": folder.name}
    row.update({k: search.get(k) for k in keys})
    row.update(
        env_frames=frames,
        return_last20=late_mean(steps, returns),
        best_episode_return_mean=max(returns) if returns else math.nan,
        final_episode_return_mean=returns[-1] if returns else math.nan,
        status=status,
    )
    return row


def write_results(sweep: Sweep, output: Path, tune_dir: str = TUNE_DIR) -> tuple[list, list]:
    """``trials.csv`` and ``best.yaml`` from the finished (or stopped) trials of every part of
    the sweep in ``output``, as Tune's saved state lists them; returns all rows, best first, and
    the rows of the part whose Tune state is ``tune_dir``."""
    from ray import tune

    keys = list(sweep.search)
    rows, own = [], []
    for part in read_parts(output):
        experiment = output.resolve() / part["tune_dir"]
        if not any(experiment.glob("experiment_state*.json")):
            continue  # a part stopped before Tune recorded anything: no trials to list
        for trial in tune.ExperimentAnalysis(str(experiment)).trials:
            folder = output / TRIALS_DIR / trial.trial_id
            search = (trial.config or {}).get("search", {})
            rows.append(trial_row(folder, search, keys, str(trial.status)))
            if part["tune_dir"] == tune_dir:
                own.append(rows[-1])
    rows.sort(key=lambda r: r["trial_id"])
    columns = [
        "trial_id",
        *keys,
        "env_frames",
        "return_last20",
        "best_episode_return_mean",
        "final_episode_return_mean",
        "status",
    ]
    with (output / "trials.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if _fmt(v) == "-" else v for k, v in row.items()})
    ranked = rank(rows, sweep.file.metric)
    best_yaml = output / "best.yaml"
    best_yaml.unlink(missing_ok=True)
    column = _COLUMN[sweep.file.metric]
    if ranked and not math.isnan(ranked[0][column]):
        _write_best(ranked[0], column, output, best_yaml)
    return ranked, own


#: The trials.csv column of each sweep metric.
_COLUMN = {
    "return_last20": "return_last20",
    "episode_return_mean": "final_episode_return_mean",
}


def rank(rows: list[dict], metric: str) -> list[dict]:
    """``rows`` best first: the trials that ran their whole budget ("done": with ASHA, those it
    kept), then the others, each by ``metric`` (highest first; no value last). A trial stopped
    early is measured over fewer frames, so its number does not compete with the full runs'."""
    column = _COLUMN[metric]

    def key(row: dict) -> tuple:
        value = row[column]
        missing = math.isnan(value)
        return (row["status"] != "done", missing, 0.0 if missing else -value)

    return sorted(rows, key=key)


def _write_best(row: dict, metric: str, output: Path, best_yaml: Path) -> None:
    from rmc_agents.config import load_config
    from rmc_agents.rl.settings import RunSettings

    config = output / TRIALS_DIR / row["trial_id"] / "config.yaml"
    header = (
        f"# The best trial of the sweep in {output}: {row['trial_id']}, {metric} "
        f"{row[metric]:.4g} at {row['env_frames']:,} frames.\n"
        f"# Its complete settings; train them again with: "
        f"python train_agent.py --config {best_yaml}\n"
    )
    best_yaml.write_text(header + config.read_text())
    load_config(RunSettings, best_yaml)  # what train_agent.py --config does with it


def print_table(rows: list[dict], keys: list[str], metric: str) -> None:
    columns = ["trial", *keys, "frames", "last20", "best", "final", "status"]
    table = [
        [
            r["trial_id"],
            *(_fmt(r[k]) for k in keys),
            f"{r['env_frames']:,}",
            _fmt(r["return_last20"]),
            _fmt(r["best_episode_return_mean"]),
            _fmt(r["final_episode_return_mean"]),
            r["status"],
        ]
        for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(columns, *table, strict=True)]
    for line in [columns, *table]:
        print("  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)).rstrip())
    print(
        f"(best first: the trials that ran their whole budget, then the others, each by {metric}; "
        "last20: the mean return over the last 20% of a trial's frames)"
    )


# --- main ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m rmc_agents.tune``; returns the exit status."""
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    args = parse_args(argv)
    from rmc_agents.config import ConfigError
    from rmc_agents.rl.cluster import ClusterError
    from rmc_agents.rl.envs import EnvResolutionError
    from rmc_agents.rl.errors import UnsupportedSpaceError
    from rmc_agents.rl.trainer import TrainingError

    try:
        typed = [f"--set {shlex.quote(item)}" for item in args.set]
        typed += [f"--only {shlex.quote(item)}" for item in args.only]
        sweep = load_sweep(
            args.sweep,
            parse_set_items(args.set),
            parse_only_items(args.only),
            command_line=" ".join(typed),
        )
        output = Path(args.output or Path("runs") / "sweeps" / sweep.name)
        place = check_output(output, sweep, args.overwrite)
        _check_env(sweep)
    except (ConfigError, EnvResolutionError, UnsupportedSpaceError, SweepError) as exc:
        return _error(str(exc))
    # Tune runs each trial's function in the folder the sweep was started from (relative paths in
    # settings mean what they mean to train_agent.py), not in the trial's folder.
    os.environ["RAY_CHDIR_TO_TRIAL_DIR"] = "0"
    if not args.verbose:  # Tune's older reporter, silent at verbose 0: the lines are ours
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import ray

    from rmc_agents.rl import quiet

    if not args.verbose:
        quiet.install()
    started = False
    try:
        started = _start_ray(args)
        _check_fits(_trial_request(sweep), joined=bool(args.address) or not started)
        _make_output(output, sweep, place)
        if place.resume:
            print(f"continuing the sweep in {output}", flush=True)
        elif place.tune_dir != TUNE_DIR:
            print(f"a part beside the sweep's others in {output} ({place.tune_dir}/)", flush=True)
        _tuner(sweep, output, place, args.verbose).fit()
        rows, own = write_results(sweep, output, place.tune_dir)
    except (ConfigError, ClusterError, SweepError, TrainingError) as exc:
        return _error(str(exc))
    finally:
        if started:
            ray.shutdown()
    print()
    print_table(rows, list(sweep.search), sweep.file.metric)
    print(f"trials: {output / 'trials.csv'}", flush=True)
    if (output / "best.yaml").is_file():
        print(f"best settings: {output / 'best.yaml'}", flush=True)
    failed = [r["trial_id"] for r in own if r["status"] == "error"]
    unfinished = [r["trial_id"] for r in own if r["status"] == "unfinished"]
    not_started = sweep.num_trials - len(own)
    if failed or unfinished or not_started > 0:
        parts = [f"{len(failed)} failed ({', '.join(failed)})"] * bool(failed)
        parts += [f"{len(unfinished)} unfinished ({', '.join(unfinished)})"] * bool(unfinished)
        parts += [f"{not_started} not started"] * (not_started > 0)
        print(
            f"the sweep is not complete: {'; '.join(parts)}. The same command continues it "
            "(failed trials from their last checkpoint)",
            flush=True,
        )
        return 1
    return 0


def _check_env(sweep: Sweep) -> None:
    """The env of the trials resolves and the policy fits its spaces (before Ray starts)."""
    from rmc_agents.rl.checks import check_spaces
    from rmc_agents.rl.envs import resolve_env
    from rmc_agents.tune.sweep import trial_settings

    run = trial_settings(sweep.settings, {k: d.candidates()[0] for k, d in sweep.search.items()})
    resolve_env(run.env)
    check_spaces(run.env, run.env_kwargs, run.model)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

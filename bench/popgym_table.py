"""A memory benchmark on POPGym (Morad et al., ICLR 2023): every model on several Easy envs.

For each env, ``bench/learning.py`` trains every model for every seed into ``<out>/<env>/`` (a
queue cut short is finished by running the same command again); then the table of POPGym's
measure, the **max mean episode return** (MMER: the best of the logged running means of a run),
mean and range over seeds, goes to ``<out>/table.md`` and ``<out>/results.json``.

    pip install popgym
    python bench/popgym_table.py --frames 100000 --seeds 0,1 --out results/popgym
    python bench/popgym_table.py --envs RepeatFirstEasy --models rmc,lstm --frames 20000 --seeds 0
    python bench/popgym_table.py --report-only --out results/popgym   # tabulate what is there
    python bench/popgym_table.py --records bench/records/popgym_sized --models rmc,lstm,gru

``--records DIR`` tabulates a folder of run curves instead (no training, no POPGym needed): files
``popgym-<Env>-v0-<model>-seed<N>.csv``, as ``bench/sweep_records.py --name
'{env}-<model>-seed{seed}'`` names a sweep's trials. These runs may differ in batch shape, and a
logged mean of fewer episodes is noisier, so its best reads higher by chance: here the MMER is
the best mean over blocks of at least ``--window-episodes`` episodes (default 64, one logged mean
of ``configs/popgym.yaml``'s 64 envs; see :func:`mmer`). Below the table it counts the envs where the
first model's mean is at or above the best mean of the others. With ``--pick``, models named
``<core>_<setting>`` (e.g. ``rmc_out01``) count as settings of ``<core>``: one column per core, each
env's cell the core's setting with the highest mean (the same selection for every core; give every
core the same number of settings for a fair pick).

    python bench/popgym_table.py --records bench/records/popgym_sized --pick

Every run takes ``--config`` (default ``configs/popgym.yaml``: PPO, 64 envs x 20 steps a batch, 10
passes in two minibatches); ``--algo`` overrides its algorithm, ``--set KEY=VALUE`` any setting.
Runs are kept per (env, model, seed), so a longer seed list later adds to the same table.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import statistics
import subprocess
import sys
from pathlib import Path

from rmc_agents.tune.trial import best_block_mean

ENVS = (
    "RepeatFirstEasy",
    "RepeatPreviousEasy",
    "AutoencodeEasy",
    "CountRecallEasy",
    "PositionOnlyCartPoleEasy",
    "HigherLowerEasy",
)
HERE = Path(__file__).resolve().parent


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--envs",
        help="POPGym env names without prefix (default: the six Easy envs; with "
        "--records: those found there)",
    )
    p.add_argument(
        "--models",
        help="default rmc,lstm,gru,dnc,mlp (with --records: those found there, rmc first)",
    )
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--frames", type=int, default=300_000, help="env steps per run")
    p.add_argument("--config", default=str(HERE.parent / "configs" / "popgym.yaml"))
    p.add_argument("--algo", choices=["impala", "appo", "ppo"], help="default: the config's")
    p.add_argument("--report-only", action="store_true", help="only tabulate the runs in --out")
    p.add_argument("--out", default="results/popgym")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--records", type=Path, help="tabulate the run curves in this folder instead")
    p.add_argument(
        "--pick",
        action="store_true",
        help="with --records: one column per core, each env's cell the core's setting with the "
        "highest mean (models named <core>_<setting> are settings of <core>)",
    )
    p.add_argument(
        "--digits",
        type=int,
        default=2,
        help="decimals of the MMERs shown (the 'at or above' count compares the unrounded means)",
    )
    p.add_argument(
        "--window-episodes",
        type=int,
        default=WINDOW_EPISODES,
        help="with --records: the MMER is the best mean over blocks of at least this many "
        f"episodes, so runs with other batch shapes compare (default {WINDOW_EPISODES}: each "
        "logged mean of configs/popgym.yaml's 64 envs; 0: the best logged mean)",
    )
    args = p.parse_args()
    if not 0 <= args.digits <= 6:
        p.error(f"--digits must be 0 to 6, got {args.digits}")
    if args.window_episodes < 0:
        p.error(f"--window-episodes must be 0 or more, got {args.window_episodes}")
    if args.records is not None:
        return report_records(
            args.records,
            _names(args.models),
            _names(args.envs),
            args.pick,
            args.digits,
            args.window_episodes,
        )
    if args.pick:
        p.error("--pick needs --records")
    args.envs = args.envs or ",".join(ENVS)
    args.models = args.models or "rmc,lstm,gru,dnc,mlp"
    try:
        import popgym  # noqa: F401
    except ImportError:
        p.error("POPGym is not installed: pip install popgym")
    out = Path(args.out)
    envs = [e.strip() for e in args.envs.split(",") if e.strip()]
    rows = []
    for env in envs:
        env_out = out / env
        cmd = [
            sys.executable,
            str(HERE / "learning.py"),
            "--env", f"popgym:popgym-{env}-v0",
            "--models", args.models,
            "--seeds", args.seeds,
            "--frames", str(args.frames),
            "--out", str(env_out),
            "--config", args.config,
        ]  # fmt: skip
        if args.algo:
            cmd += ["--set", f"algo={args.algo}"]
        if args.report_only:
            if not env_out.is_dir():
                continue
            cmd.append("--report-only")
        for item in args.set:
            cmd += ["--set", item]
        print(f"== {env}", flush=True)
        if subprocess.run(cmd).returncode != 0:
            print(f"error: the runs on {env} failed", file=sys.stderr)
            return 1
        for r in json.loads((env_out / "results.json").read_text()):
            rows.append({"env": env, **r})
    models = args.models.split(",")
    lines = [
        "MMER (max mean episode return: the best logged running mean of a run), "
        f"{Path(args.config).name}{' with ' + args.algo if args.algo else ''}, "
        f"{args.frames:,} env steps per run; mean (min to max) over seeds {args.seeds} "
        "([n=k]: only k of them finished)",
        "",
        "| env | " + " | ".join(models) + " |",
        "|---|" + "---:|" * len(models),
    ]
    for env in envs:
        cells = []
        for model in models:
            found = [r for r in rows if r["env"] == env and r["model"] == model]
            if not found:
                cells.append("-")
                continue
            best = found[0]["best"]
            if len(best) < len(args.seeds.split(",")):
                spread_note = f" [n={len(best)}]"
            else:
                spread_note = ""
            digits = args.digits
            spread = f" ({min(best):.{digits}f} to {max(best):.{digits}f})" if len(best) > 1 else ""
            cells.append(f"{statistics.mean(best):.{digits}f}{spread}{spread_note}")
        lines.append(f"| {env} | " + " | ".join(cells) + " |")
    (out / "table.md").write_text("\n".join(lines) + "\n")
    (out / "results.json").write_text(json.dumps(rows, indent=2))
    print("\n".join(lines))
    return 0


RECORD = re.compile(r"^popgym-(?P<env>[A-Za-z]+)-v0-(?P<model>[a-z0-9_]+)-seed(?P<seed>\d+)\.csv$")


#: the episodes each point of the MMER averages (see :func:`mmer`): the 64 envs of
#: ``configs/popgym.yaml`` end their fixed-length episodes together, so there every logged mean
#: is already one such point and the MMER is the best logged mean, as POPGym reports it.
WINDOW_EPISODES = 64


def _float(text: str | None) -> float | None:
    if text is None or not text.strip():
        return None
    value = float(text)
    return None if math.isnan(value) else value


def mmer(path: Path, window: int = WINDOW_EPISODES) -> tuple[float, int]:
    """POPGym's measure of one run, the max mean episode return, and the env steps it reached.

    Each logged ``episode_return_mean`` is the mean of the episodes that ended in its iteration,
    so a run with fewer envs logs means of fewer episodes: a noisier log, whose best value reads
    higher by chance. To compare runs of any batch shape, the logged means are pooled, from the
    last one back, into consecutive blocks of at least ``window`` episodes (each mean weighted by
    its episode count), and the MMER is the best block mean. The counts come from the
    ``episodes`` column; in records without it, from the run's average (steps up to the last
    logged mean / mean episode length / number of logged means), which is exact for POPGym's
    fixed-length episodes with envs that start together. A run with neither column, or
    ``window`` 0, gives the best logged mean. A run too short for one block gives the mean of
    all it logged.
    """
    steps = steps_logged = 0
    means: list[float] = []
    counts: list[float | None] = []
    lengths: list[float | None] = []
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            steps = max(steps, int(float(row["env_steps"])))
            value = _float(row.get("episode_return_mean"))
            if value is not None:
                means.append(value)
                steps_logged = steps
                counts.append(_float(row.get("episodes")) or None)
                lengths.append(_float(row.get("episode_len_mean")) or None)
    if not means:
        return -math.inf, steps
    known = [c for c in counts if c is not None]
    if len(known) < len(counts):
        sizes = [n for n in lengths if n is not None]
        if len(sizes) == len(means):  # the run's average count, as the docstring says
            known = [steps_logged / statistics.mean(sizes) / len(means)] * len(means)
        else:
            known, window = [1.0] * len(means), 0
    return best_block_mean(means, known, window), steps


def _names(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def report_records(
    records: Path,
    models: list[str] | None,
    envs: list[str] | None,
    pick: bool = False,
    digits: int = 2,
    window: int = WINDOW_EPISODES,
) -> int:
    """The MMER table of the curves in ``records`` (see the module's docstring)."""
    if not records.is_dir():
        print(f"error: --records {records}: not a folder", file=sys.stderr)
        return 1
    runs: dict[tuple[str, str], list[tuple[int, float, int]]] = {}
    for path in sorted(records.glob("*.csv")):
        match = RECORD.match(path.name)
        if match is None:
            print(f"error: {path}: not named popgym-<Env>-v0-<model>-seed<N>.csv", file=sys.stderr)
            return 1
        try:
            best, steps = mmer(path, window)
        except (KeyError, ValueError) as exc:
            print(f"error: {path}: not a run's progress.csv ({exc!r})", file=sys.stderr)
            return 1
        if best == -math.inf:
            print(f"left out {path.name}: no episode_return_mean logged", file=sys.stderr)
            continue
        key = (match["env"], match["model"])
        runs.setdefault(key, []).append((int(match["seed"]), best, steps))
    if not runs:
        print(f"error: --records {records}: no run with returns in it", file=sys.stderr)
        return 1
    found_envs = sorted(
        {e for e, _ in runs}, key=lambda e: (e not in ENVS, ENVS.index(e) if e in ENVS else 0, e)
    )
    found_models = sorted({m for _, m in runs}, key=lambda m: (m != "rmc", m))
    envs, models = envs or found_envs, models or found_models
    left = sorted({k for k in runs if k[0] not in envs or k[1] not in models})
    for env, model in left:
        print(f"left out {env} / {model}: not in --envs / --models", file=sys.stderr)
    envs = [e for e in envs if any(k[0] == e for k in runs)]
    steps = sorted({s for found in runs.values() for _, _, s in found})
    measure = (
        f"the best mean over blocks of at least {window} episodes of a run"
        if window
        else "the best logged mean of a run"
    )
    lines = [
        f"MMER (max mean episode return: {measure}), "
        f"{steps[0]:,}-{steps[-1]:,} env steps per run; mean (min to max) over the seeds listed",
        "",
        "| env | " + " | ".join(models) + " |",
        "|---|" + "---:|" * len(models),
    ]
    cells: dict[tuple[str, str], str] = {}
    means: dict[tuple[str, str], float] = {}
    for env in envs:
        for model in models:
            found = sorted(runs.get((env, model), []))
            if not found:
                continue
            best = [b for _, b, _ in found]
            means[env, model] = statistics.mean(best)
            low, high, mean = min(best), max(best), means[env, model]
            spread = f" ({low:.{digits}f} to {high:.{digits}f})" if len(best) > 1 else ""
            seeds = ",".join(str(seed) for seed, _, _ in found)
            cells[env, model] = f"{mean:.{digits}f}{spread} [seeds {seeds}]"
    columns, shown, shown_cells = models, means, cells
    if pick:  # one column per core: per env, the setting of that core with the highest mean
        cores = sorted({m.split("_", 1)[0] for m in models}, key=lambda c: (c != "rmc", c))
        settings = {c: [m for m in models if m.split("_", 1)[0] == c] for c in cores}
        # new tables: a core's column "rmc" is not its base setting "rmc"
        shown, shown_cells = {}, {}
        for env in envs:
            for core in cores:
                tried = [m for m in settings[core] if (env, m) in means]
                if not tried:
                    continue
                top = max(tried, key=lambda m: means[env, m])
                setting = top.split("_", 1)[1] if "_" in top else "base"
                shown[env, core] = means[env, top]
                shown_cells[env, core] = cells[env, top].replace(" [seeds", f" [{setting}; seeds")
        lines[0] += "; each core at its best setting per env"
        lines.insert(
            1, "settings per core: " + "; ".join(f"{c} {', '.join(settings[c])}" for c in cores)
        )
        columns = cores
    lines[-2:] = ["| env | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for env in envs:
        row = [shown_cells.get((env, c), "-") for c in columns]
        lines.append(f"| {env} | " + " | ".join(row) + " |")
    first, others = columns[0], columns[1:]
    compared = [e for e in envs if (e, first) in shown and all((e, m) in shown for m in others)]
    if others and compared:
        ahead = [e for e in compared if shown[e, first] >= max(shown[e, m] for m in others)]
        lines += [
            "",
            f"{first} at or above the best of {', '.join(others)}: {len(ahead)} of "
            f"{len(compared)} envs ({', '.join(ahead) or 'none'})",
        ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

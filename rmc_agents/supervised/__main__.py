"""Command line: ``python -m rmc_agents.supervised TASK [options]`` (also ``rmc-supervised``).

Examples::

    python -m rmc_agents.supervised nth-farthest --config configs/nth_farthest_small.yaml
    python -m rmc_agents.supervised learning-to-execute --config configs/learning_to_execute_small.yaml \\
        --model lstm --set task.family=copy
    python -m rmc_agents.supervised language-model --config configs/language_model_small.yaml \\
        --data path/to/wikitext-2
    python -m rmc_agents.supervised nth-farthest --output runs/supervised/nf --resume --steps 2000

Without ``--config`` the task's defaults (the paper's settings) are used. ``--resume`` continues
the run in ``--output`` with its saved config (flags may only lengthen it: ``--steps``,
``--set train.time_budget_s=...``). User mistakes print one ``error: ...`` line and exit 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rmc_agents.config import (
    ConfigError,
    apply_overrides,
    config_to_dict,
    load_config,
    parse_set_items,
)
from rmc_agents.core import CORE_NAMES
from rmc_agents.supervised import TASKS, get_task
from rmc_agents.supervised.common import SupervisedError

# Keys a resumed run may change; everything else must match the saved config.
RESUMABLE_KEYS = {"train.steps", "train.time_budget_s"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m rmc_agents.supervised",
        description="Train a recurrent core (RMC, LSTM, GRU or DNC) on one of the RMC paper's "
        "supervised tasks.",
    )
    parser.add_argument("task", help=f"one of: {', '.join(TASKS)}")
    parser.add_argument("--config", type=Path, help="YAML config (default: the paper's settings)")
    parser.add_argument(
        "--model", help=f"one of {', '.join(CORE_NAMES)} (the core: sets model.core.name)"
    )
    parser.add_argument("--steps", type=int, help="training steps (sets train.steps)")
    parser.add_argument("--seed", type=int, help="random seed (sets train.seed)")
    parser.add_argument("--data", help="language-model: WikiText-layout directory (task.data)")
    parser.add_argument(
        "--output", type=Path, help="run directory (default: runs/supervised/TASK-CORE-sSEED)"
    )
    parser.add_argument("--resume", action="store_true", help="continue the run in --output")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace a previous run in --output"
    )
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config key, e.g. --set task.vector_dim=32 (repeatable)",
    )
    parser.add_argument(
        "--threads", type=int, help="CPU threads for torch (1 is fastest on a busy machine)"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """``--set`` items (``null`` included) and the flags that were given (unset ones left out)."""
    overrides = parse_set_items(args.sets)
    flags = {
        "model.core.name": args.model,
        "train.steps": args.steps,
        "train.seed": args.seed,
        "task.data": args.data,
    }
    overrides.update({k: v for k, v in flags.items() if v is not None})
    return overrides


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in d.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def resolve_config(args: argparse.Namespace, task_cls: type) -> tuple[Any, Path]:
    """The run's config and output directory from the flags (and, on resume, the saved run)."""
    overrides = _overrides(args)
    if args.data is not None and task_cls.name != "language-model":
        raise SupervisedError(f"--data is only used by language-model, not {task_cls.name}")
    cfg = load_config(task_cls.config_class, args.config, overrides, skip_none=False)
    output = args.output or Path(
        "runs", "supervised", f"{task_cls.name}-{cfg.model.core.name}-s{cfg.train.seed}"
    )
    if args.resume:
        saved_path = output / "config.yaml"
        if not saved_path.is_file():
            raise SupervisedError(f"--resume: no config.yaml in {output}; is it a run directory?")
        saved = load_config(task_cls.config_class, saved_path)
        if args.config is None:  # continue from the saved config, with the flags on top
            cfg = apply_overrides(saved, overrides, skip_none=False)
        new, old = _flatten(config_to_dict(cfg)), _flatten(config_to_dict(saved))
        for key in old:
            if key not in RESUMABLE_KEYS and new.get(key) != old[key]:
                raise SupervisedError(
                    f"--resume: '{key}' is {new.get(key)!r} but the run in {output} used "
                    f"{old[key]!r}; only {', '.join(sorted(RESUMABLE_KEYS))} may change"
                )
    return cfg, output


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 2 user error, 130 interrupted)."""
    args = build_parser().parse_args(argv)
    # torch and the trainer only after the flags parsed: --help and flag errors answer at once
    from rmc_agents.supervised.trainer import Interrupted, train

    try:
        if args.threads is not None:
            if args.threads < 1:
                raise SupervisedError(f"--threads must be >= 1, got {args.threads}")
            import torch

            torch.set_num_threads(args.threads)
        task_cls = get_task(args.task)
        cfg, output = resolve_config(args, task_cls)

        results = train(
            task_cls,
            cfg,
            output,
            resume=args.resume,
            overwrite=args.overwrite,
            progress=not args.no_progress,
        )
    except (SupervisedError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 130 if isinstance(exc, Interrupted) else 2
    final = ", ".join(f"{k}={v:.4g}" for k, v in results["final_eval"].items())
    print(
        f"{results['task']} [{results['core']}]: {results['steps']} steps in "
        f"{results['train_time_s']:.1f}s, {results['parameters']:,} parameters; "
        f"final eval: {final}; results in {output}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

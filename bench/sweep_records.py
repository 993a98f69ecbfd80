"""Copy a sweep's finished trials into a records folder, one CSV per trial, named from its settings.

A sweep run with ``python -m rmc_agents.tune SWEEP.yaml --output DIR`` keeps each trial's curve in
``DIR/trials/<trial id>/progress.csv`` beside the trial's settings (``config.yaml``). The learning
tables (``bench/ablation_table.py --records``) read a folder of ``<variant>-seed<N>.csv`` files.
This script makes those files: ``--name`` is a template whose ``{key}`` fields are filled from the
trial's ``config.yaml`` (dotted keys: ``{seed}``, ``{model.core}``, ``{training.lr}``; ``{env}``
gives the id after its last ``:``, so ``popgym:popgym-RepeatFirstEasy-v0`` is
``popgym-RepeatFirstEasy-v0``).

    python bench/sweep_records.py runs/sweeps/viewport_mlp_floor_5m \\
        --records bench/records/viewport_long_variants --name viewport-long-mlp368-floor-clip1-seed{seed}
    python bench/sweep_records.py runs/sweeps/popgym_sized_rmc \\
        --records bench/records/popgym_sized --name {env}-rmc-seed{seed}

Only trials that ran to their own stop criterion are copied (``--partial`` copies the others as
well: a trial stopped by the scheduler or by a kill, with the frames it reached). A record that is
already there with other contents is not replaced unless ``--overwrite`` is given; two trials that
would get the same file name are an error. Nothing is written when any check fails.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

FIELD = re.compile(r"\{([A-Za-z0-9_.]+)\}")
#: Characters kept in a filled-in value; any other becomes "-".
UNSAFE = re.compile(r"[^A-Za-z0-9._+-]")


class RecordsError(Exception):
    """A check failed; the message names what is wrong."""


def lookup(config: Any, key: str) -> Any:
    """The value of dotted ``key`` in the nested ``config`` mapping."""
    value = config
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(key)
        value = value[part]
    return value


def fill(template: str, config: dict, where: str) -> str:
    """``template`` with each ``{key}`` replaced by the trial's setting, made safe for a file name."""

    def one(match: re.Match) -> str:
        key = match.group(1)
        try:
            value = lookup(config, key)
        except KeyError:
            raise RecordsError(
                f"{where}: --name field {{{key}}}: no setting {key} in its config.yaml"
            ) from None
        if isinstance(value, (dict, list)):
            raise RecordsError(f"{where}: --name field {{{key}}} is not a single value: {value!r}")
        text = str(value)
        if key == "env":
            text = text.rsplit(":", 1)[-1]
        return UNSAFE.sub("-", text)

    name = FIELD.sub(one, template)
    return name if name.endswith(".csv") else name + ".csv"


def check_template(template: str) -> str | None:
    """Why ``template`` cannot name a record file (None when it can)."""
    if not FIELD.search(template):
        return (
            "--name has no {field}: every trial would get the same file name (e.g. rmc-seed{seed})"
        )
    rest = FIELD.sub("", template)
    if "{" in rest or "}" in rest:
        return f"--name {template!r}: a brace that is not a {{dotted.key}} field"
    if "/" in template or "\\" in template or template.startswith("."):
        return f"--name {template!r}: a file name, not a path (the folder is --records)"
    return None


def finished(trial: Path) -> bool:
    """True when the trial's run ended by its own stop criterion (frames or time), not by a kill
    or by the sweep's scheduler (the trainer's ``summary.json`` says which)."""
    from rmc_agents.tune.trial import finished_by_own_stop

    return finished_by_own_stop(trial)


def plan(output: Path, records: Path, template: str, partial: bool) -> list[tuple[Path, Path]]:
    """(source progress.csv, record file) pairs, checked; raises :class:`RecordsError`."""
    trials_dir = output / "trials"
    if not trials_dir.is_dir():
        raise RecordsError(f"{output}: not a sweep's output folder (no trials/ in it)")
    trials = sorted(p for p in trials_dir.iterdir() if p.is_dir())
    pairs: list[tuple[Path, Path]] = []
    skipped = []
    for trial in trials:
        progress, config_file = trial / "progress.csv", trial / "config.yaml"
        if not progress.is_file() or not config_file.is_file():
            skipped.append(f"{trial.name} (no progress.csv or config.yaml yet)")
            continue
        if not partial and not finished(trial):
            skipped.append(f"{trial.name} (not finished; --partial copies it)")
            continue
        try:
            config = yaml.safe_load(config_file.read_text())
        except yaml.YAMLError as exc:
            raise RecordsError(f"{config_file}: not readable YAML: {exc}") from None
        if not isinstance(config, dict):
            raise RecordsError(f"{config_file}: not a mapping of settings")
        pairs.append((progress, records / fill(template, config, str(trial))))
    for line in skipped:
        print(f"skipped {line}", file=sys.stderr)
    if not pairs:
        raise RecordsError(f"{output}: no trial to copy ({len(trials)} trial folders)")
    names: dict[Path, Path] = {}
    for source, target in pairs:
        if target in names:
            raise RecordsError(
                f"two trials get the record name {target.name}: {names[target].parent.name} and "
                f"{source.parent.name}; put the setting that tells them apart into --name"
            )
        names[target] = source
    return pairs


def copy(pairs: list[tuple[Path, Path]], overwrite: bool) -> list[str]:
    """Copy each pair, refusing (before writing any) to replace a different existing record."""
    folders = [t for _, t in pairs if t.is_dir()]
    if folders:
        raise RecordsError(f"{folders[0]}: a folder where a record would go")
    clashes = [
        t for s, t in pairs if t.exists() and t.read_bytes() != s.read_bytes() and not overwrite
    ]
    if clashes:
        names = ", ".join(t.name for t in clashes)
        raise RecordsError(
            f"{clashes[0].parent}: records with other contents already there: {names} "
            "(--overwrite replaces them)"
        )
    lines = []
    for source, target in pairs:
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists() and target.read_bytes() == source.read_bytes():
            lines.append(f"{target} (already there)")
            continue
        shutil.copyfile(source, target)
        lines.append(f"{target} <- {source}")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "output", type=Path, help="the sweep's output folder (python -m rmc_agents.tune --output)"
    )
    p.add_argument("--records", type=Path, required=True, help="the records folder to copy into")
    p.add_argument(
        "--name",
        required=True,
        help="file name template, {dotted.key} fields from each trial's config.yaml, e.g. rmc-seed{seed}",
    )
    p.add_argument("--partial", action="store_true", help="also copy trials that did not finish")
    p.add_argument("--overwrite", action="store_true", help="replace records with other contents")
    args = p.parse_args(argv)
    problem = check_template(args.name)
    if problem is None and args.records.exists() and not args.records.is_dir():
        problem = f"--records {args.records}: a file, not a folder"
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        pairs = plan(args.output, args.records, args.name, args.partial)
        lines = copy(pairs, args.overwrite)
    except RecordsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    copied = sum(not line.endswith("(already there)") for line in lines)
    print(
        json.dumps(
            {"copied": copied, "already_there": len(lines) - copied, "records": str(args.records)}
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""One training loop for every supervised task.

A :class:`Task` owns its data (seeded generators or a corpus), builds its model and turns one
batch into a loss. :func:`train` does the rest, the same way for all tasks: Adam with optional
gradient clipping, a progress bar with live metrics, periodic evaluation, atomic checkpoints,
exact resume (step counter, optimizer, model, torch and data RNG states), metrics to CSV and
TensorBoard, a PNG plot of the curves and ``results.json`` with the final numbers.

Files in the output directory::

    config.yaml     the resolved config of the run
    checkpoint.pt   latest checkpoint (written to a temp file, then renamed)
    train.csv       step, train_time_s and the task's training metrics, averaged over log_every steps
    eval.csv        step, train_time_s and the task's evaluation metrics
    tensorboard/    the same metrics as TensorBoard scalars (train/*, eval/*)
    curves.png      the curves of train.csv and eval.csv
    results.json    final evaluation, steps done, training time, parameter count
"""

from __future__ import annotations

import abc
import csv
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn
from tqdm import tqdm

from rmc_agents.config import config_to_dict, save_config
from rmc_agents.supervised.common import SupervisedError, TrainConfig, resolve_device

__all__ = ["RUN_FILES", "Interrupted", "Task", "check_output_dir", "plot_curves", "train"]

RUN_FILES = (
    "config.yaml",
    "checkpoint.pt",
    "train.csv",
    "eval.csv",
    "tensorboard",
    "curves.png",
    "results.json",
)
CHECKPOINT_FORMAT = 1


class Interrupted(SupervisedError):
    """Training was stopped with Ctrl-C; a checkpoint was written first."""


class Task(abc.ABC):
    """A supervised problem: data, model and per-batch loss.

    Subclasses set ``name`` (the CLI name), ``config_class`` (a dataclass with a ``train``
    section of type :class:`TrainConfig`) and ``progress_keys`` (metrics shown on the bar).
    """

    name: ClassVar[str]
    config_class: ClassVar[type]
    progress_keys: ClassVar[tuple[str, ...]] = ("loss", "accuracy")

    def __init__(self, cfg: Any, device: torch.device) -> None:
        self.cfg = cfg
        self.device = device

    @abc.abstractmethod
    def build_model(self) -> nn.Module:
        """The model to train, on ``self.device``."""

    @abc.abstractmethod
    def training_loss(self, model: nn.Module, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """Draw the next training batch; return its loss (to minimise) and metrics to log."""

    @abc.abstractmethod
    def evaluate(self, model: nn.Module, final: bool) -> dict[str, float]:
        """Metrics on held-out data (``final``: the end of training, e.g. add the test split)."""

    def reference_lines(self) -> dict[str, tuple[float, str]]:
        """Levels worth drawing on the curves: ``{metric: (value, label)}`` (none by default)."""
        return {}

    def summarize(self, averaged: dict[str, float]) -> dict[str, float]:
        """Training metrics averaged over a log window -> the row to log (e.g. add perplexity)."""
        return averaged

    def state_dict(self) -> dict[str, Any]:
        """Data-side state needed to resume exactly (generator RNG, stream position...)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        del state  # tasks without data-side state have nothing to restore


def check_output_dir(output: Path, resume: bool, overwrite: bool) -> None:
    """Check ``output`` may be used for this run; changes nothing on disk.

    Raises:
        SupervisedError: the directory holds another run and neither flag was given, or
            ``resume`` was asked for but there is no checkpoint to resume from.
    """
    if resume and overwrite:
        raise SupervisedError("--resume and --overwrite cannot be used together")
    if output.exists() and not output.is_dir():
        raise SupervisedError(f"output path {output} exists and is not a directory")
    if resume:
        if not (output / "checkpoint.pt").is_file():
            raise SupervisedError(f"--resume: no checkpoint.pt in {output} to resume from")
        return
    held = [name for name in RUN_FILES if (output / name).exists()]
    if held and not overwrite:
        raise SupervisedError(
            f"output directory {output} already holds a run ({', '.join(held)}); "
            "pass --resume to continue it, --overwrite to replace it, or choose another --output"
        )


def _clear_run_files(output: Path) -> None:
    for name in RUN_FILES:
        path = output / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def train(
    task_cls: type[Task],
    cfg: Any,
    output: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Train ``task_cls`` with ``cfg``, writing everything into ``output``.

    Returns:
        The contents of ``results.json``.
    """
    output = Path(output)
    tcfg: TrainConfig = cfg.train
    check_output_dir(output, resume, overwrite)
    device = resolve_device(tcfg.device)
    checkpoint = _load_checkpoint(output / "checkpoint.pt") if resume else None

    # Everything that can fail on user input (data, model settings) comes before any write.
    torch.manual_seed(tcfg.seed)
    task = task_cls(cfg, device)
    try:
        model = task.build_model().to(device)
    except (ValueError, TypeError) as exc:  # the core rejects its settings: a config mistake
        raise SupervisedError(f"cannot build the {cfg.model.core.name} model: {exc}") from None
    optimizer = torch.optim.Adam(model.parameters(), lr=tcfg.learning_rate)
    step, train_time = 0, 0.0
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        task.load_state_dict(checkpoint["task"])
        torch.set_rng_state(checkpoint["torch_rng"])
        step, train_time = checkpoint["step"], checkpoint["train_time_s"]
        if step >= tcfg.steps:
            raise SupervisedError(
                f"--resume: the run in {output} already reached step {step}; "
                f"pass --steps larger than {step} to continue it"
            )
        for name in ("train.csv", "eval.csv"):
            _truncate_csv(output / name, step)
    elif overwrite:
        _clear_run_files(output)
    output.mkdir(parents=True, exist_ok=True)
    save_config(cfg, output / "config.yaml")

    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(output / "tensorboard"), purge_step=step + 1 if resume else None)
    logger = _MetricsLog(output, writer)
    n_params = sum(p.numel() for p in model.parameters())

    def save() -> None:
        _save_checkpoint(
            output / "checkpoint.pt",
            {
                "format": CHECKPOINT_FORMAT,
                "task_name": task_cls.name,
                "config": config_to_dict(cfg),
                "step": step,
                "train_time_s": train_time,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "task": task.state_dict(),
                "torch_rng": torch.get_rng_state(),
            },
        )

    def evaluate(final: bool) -> dict[str, float]:
        model.eval()
        with torch.no_grad():
            metrics = task.evaluate(model, final)
        model.train()
        logger.write("eval", step, train_time, metrics)
        return metrics

    last_eval: dict[str, float] = {}
    window: dict[str, float] = {}
    window_n = 0
    # A bar on a terminal; in a log file (not a TTY) plain lines at each logged step instead,
    # since a bar's carriage returns turn a log into one long line.
    interactive = progress and sys.stderr.isatty()
    bar = tqdm(
        total=tcfg.steps,
        initial=step,
        desc=f"{task_cls.name} [{cfg.model.core.name}]",
        disable=not interactive,
        dynamic_ncols=True,
        mininterval=0.5,
    )
    model.train()
    try:
        while step < tcfg.steps:
            if tcfg.time_budget_s is not None and train_time >= tcfg.time_budget_s:
                break
            started = time.perf_counter()
            loss, metrics = task.training_loss(model, step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if tcfg.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.grad_clip)
            optimizer.step()
            train_time += time.perf_counter() - started
            step += 1
            if not all(math.isfinite(v) for v in metrics.values()):
                raise SupervisedError(
                    f"training diverged at step {step}: {metrics}; lower train.learning_rate "
                    "or set train.grad_clip"
                )
            for key, value in metrics.items():
                window[key] = window.get(key, 0.0) + value
            window_n += 1
            bar.update(1)
            if step % tcfg.log_every == 0 or step == tcfg.steps:
                averaged = task.summarize({k: v / window_n for k, v in window.items()})
                logger.write("train", step, train_time, averaged)
                window, window_n = {}, 0
                bar.set_postfix(_postfix(averaged, last_eval, task_cls.progress_keys))
                if progress and not interactive:
                    shown = _postfix(averaged, last_eval, task_cls.progress_keys)
                    fields = "  ".join(f"{k} {v}" for k, v in shown.items())
                    print(f"step {step:,}/{tcfg.steps:,}  {train_time:.0f} s  {fields}", flush=True)
            finishing = step >= tcfg.steps or (
                tcfg.time_budget_s is not None and train_time >= tcfg.time_budget_s
            )
            if step % tcfg.eval_every == 0 and not finishing:  # the final evaluation follows
                last_eval = evaluate(final=False)
                bar.set_postfix(_postfix({}, last_eval, task_cls.progress_keys))
            if step % tcfg.checkpoint_every == 0:
                save()
    except KeyboardInterrupt:
        bar.close()
        save()
        logger.close()
        raise Interrupted(
            f"interrupted at step {step}; checkpoint saved in {output}, continue with --resume"
        ) from None
    bar.close()

    stopped_by = "steps" if step >= tcfg.steps else "time_budget"
    final_eval = evaluate(final=True)
    save()
    logger.close()
    plot_curves(
        output,
        title=f"{task_cls.name}, {cfg.model.core.name} core, {step:,} steps",
        lines=task.reference_lines(),
    )
    results = {
        "task": task_cls.name,
        "core": cfg.model.core.name,
        "seed": tcfg.seed,
        "steps": step,
        "train_time_s": round(train_time, 3),
        "stopped_by": stopped_by,
        "parameters": n_params,
        "final_eval": final_eval,
    }
    (output / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


# --- internals -------------------------------------------------------------------------------


def _postfix(train: Mapping[str, float], evaluation: Mapping[str, float], keys: tuple[str, ...]):
    shown: dict[str, str] = {}
    for key in keys:
        if key in train:
            shown[key] = f"{train[key]:.4g}"
    for key in keys:
        if key in evaluation:
            shown[f"eval_{key}"] = f"{evaluation[key]:.4g}"
    return shown


def _save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` atomically: a reader sees the old or the new file, never half of one."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def _load_checkpoint(path: Path) -> dict[str, Any]:
    # weights_only: tensors, numbers, strings and containers of them; a file that would need to
    # run code while loading (any other pickled object) is refused, not executed.
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say which one
        raise SupervisedError(f"cannot read checkpoint {path}: {exc}") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise SupervisedError(f"{path} is not a checkpoint written by this trainer")
    return payload


def _truncate_csv(path: Path, step: int) -> None:
    """Drop rows logged after ``step`` (they belong to the part of the run being redone)."""
    if not path.is_file():
        return
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= step]
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(kept)


def _write_rows(path: Path, header: list[str], rows: list[Mapping[str, Any]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as f:
        out = csv.DictWriter(f, fieldnames=header, restval="")
        out.writeheader()
        out.writerows(rows)
    os.replace(tmp, path)


class _MetricsLog:
    """Appends metric rows to ``<split>.csv`` and TensorBoard scalars ``<split>/<name>``."""

    def __init__(self, output: Path, writer: Any) -> None:
        self.output = output
        self.writer = writer

    def write(self, split: str, step: int, train_time: float, metrics: Mapping[str, float]) -> None:
        path = self.output / f"{split}.csv"
        row = {"step": step, "train_time_s": round(train_time, 3), **metrics}
        if not path.is_file() or path.stat().st_size == 0:
            _write_rows(path, list(row), [row])
        else:
            with path.open(newline="") as f:
                reader = csv.DictReader(f)
                header = list(reader.fieldnames or [])
                new_keys = [k for k in row if k not in header]
                if new_keys:  # e.g. the final test metrics: rewrite with the extra columns
                    _write_rows(path, header + new_keys, [*reader, row])
            if not new_keys:
                with path.open("a", newline="") as f:
                    csv.DictWriter(f, fieldnames=header, restval="").writerow(row)
        for key, value in metrics.items():
            self.writer.add_scalar(f"{split}/{key}", value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def read_csv(path: Path) -> dict[str, list[float]]:
    """Columns of a metrics CSV as float lists (empty dict if the file is missing)."""
    if not path.is_file():
        return {}
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    return {key: [float(r[key]) if r[key] else math.nan for r in rows] for key in rows[0]}


def plot_curves(
    output: Path, title: str | None = None, lines: dict[str, tuple[float, str]] | None = None
) -> Path:
    """Draw every metric of ``train.csv`` / ``eval.csv`` against step into ``curves.png``, under
    ``title``, with ``lines`` (metric: (value, label)) drawn across their panels (e.g. the
    accuracy of a task's trivial plateau)."""
    from matplotlib.figure import Figure

    train_cols = read_csv(output / "train.csv")
    eval_cols = read_csv(output / "eval.csv")
    skip = {"step", "train_time_s"}
    keys = [k for k in train_cols if k not in skip]
    keys += [k for k in eval_cols if k not in skip and k not in keys]
    keys = keys or ["(no metrics)"]
    fig = Figure(figsize=(4.5 * min(len(keys), 3), 3.2 * math.ceil(len(keys) / 3)))
    for i, key in enumerate(keys):
        ax = fig.add_subplot(math.ceil(len(keys) / 3), min(len(keys), 3), i + 1)
        if key in train_cols:
            ax.plot(train_cols["step"], train_cols[key], label="train", lw=1)
        if key in eval_cols:
            ax.plot(eval_cols["step"], eval_cols[key], "o-", label="eval", ms=3)
        if lines and key in lines:
            value, label = lines[key]
            ax.axhline(value, color="grey", ls="--", lw=1, label=label)
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = output / "curves.png"
    fig.savefig(path, dpi=90)
    return path

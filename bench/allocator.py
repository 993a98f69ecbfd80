"""Learner update time with and without freed memory kept (``resources.keep_freed_memory``).

The setting changes the process's C allocator for good (``rmc_agents/rl/allocator.py``), so each
side runs in its own process: ``--rounds`` pairs of processes, the two sides taking turns so that a
change in the machine's load hits both alike. Each process samples ``--batches`` batches with the
run's settings (default: Mini-Pacman viewport, the default RMC), then times ``--updates`` learner
updates over them (the one-pass learner connector with packed chunks, forward, loss, backward,
optimizer step; one thread) after one warm-up pass, and reports milliseconds per update and its
resident memory (now and at its peak).

    python bench/allocator.py
    python bench/allocator.py --config configs/minipacman_viewport_rmc.yaml
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", category=DeprecationWarning)


def _status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def worker(config: str | None, env: str, keep: bool, batches: int, updates: int) -> dict:
    """One side, in this process: ms per learner update and resident memory in MB."""
    import torch

    from rmc_agents.config import load_config
    from rmc_agents.rl.settings import RunSettings

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from learner_pipeline import learner_and_batches, learner_update

    torch.set_num_threads(1)
    overrides = {"env": env, "resources.num_env_runners": 0, "resources.keep_freed_memory": keep}
    run = load_config(RunSettings, config, overrides=overrides, skip_none=False)
    learner, blobs = learner_and_batches(run, batches)
    connector = learner._learner_connector  # the run's: one pass, packed chunks
    for blob in blobs:  # warm-up
        learner_update(learner, connector, blob)
    spent = 0.0
    for i in range(updates):
        start = time.perf_counter()
        learner_update(learner, connector, blobs[i % len(blobs)])
        spent += time.perf_counter() - start
    return {
        "ms_per_update": spent / updates * 1e3,
        "rss_mb": _status_mb("VmRSS"),
        "peak_mb": _status_mb("VmHWM"),
        "batch": run.train_batch_size,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="MiniPacman-Viewport-v0")
    p.add_argument("--config", help="YAML run settings (default: built-in defaults)")
    p.add_argument("--batches", type=int, default=6, help="sampled batches per process")
    p.add_argument("--updates", type=int, default=24, help="timed updates per process")
    p.add_argument("--rounds", type=int, default=2, help="process pairs, the sides alternating")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--worker", choices=["keep", "default"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        got = worker(args.config, args.env, args.worker == "keep", args.batches, args.updates)
        print(json.dumps(got))
        return

    runs: dict[str, list[dict]] = {"default": [], "keep": []}
    for r in range(args.rounds):
        for side in ("default", "keep"):
            cmd = [sys.executable, __file__, "--worker", side, "--env", args.env]
            cmd += ["--batches", str(args.batches), "--updates", str(args.updates)]
            if args.config:
                cmd += ["--config", args.config]
            done = subprocess.run(cmd, capture_output=True, text=True, check=True)
            runs[side].append(json.loads(done.stdout.strip().splitlines()[-1]))
            got = runs[side][-1]
            print(
                f"round {r + 1}, {side:>7}: {got['ms_per_update']:6.1f} ms per update of "
                f"{got['batch']}, resident {got['rss_mb']:.0f} MB (peak {got['peak_mb']:.0f})",
                flush=True,
            )
    summary = {
        side: {
            key: statistics.mean(run[key] for run in runs[side])
            for key in ("ms_per_update", "rss_mb", "peak_mb")
        }
        for side in runs
    }
    ratio = summary["default"]["ms_per_update"] / summary["keep"]["ms_per_update"]
    print(
        f"\n{args.config or 'defaults'}, {args.rounds} rounds x {args.updates} updates, one "
        f"thread, {os.cpu_count()} CPUs ({platform.processor() or platform.machine()})"
    )
    print("| freed memory | ms per update | resident MB | peak MB |")
    print("|---|---:|---:|---:|")
    for side, label in (("default", "returned (glibc default)"), ("keep", "kept")):
        s = summary[side]
        print(f"| {label} | {s['ms_per_update']:.1f} | {s['rss_mb']:.0f} | {s['peak_mb']:.0f} |")
    print(f"update time, glibc's default vs kept: {ratio:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "summary": summary}, indent=2))


if __name__ == "__main__":
    main()

"""How fast each core learns a reactive policy by plain supervised learning, without RL.

The viewport agents play as memoryless ones (``bench/memory_use.py``), and at an equal frame
budget the RMC learns that play slower than the LSTM and a memoryless MLP. This bench asks
whether that slowness belongs to the architecture's fit of a reactive map by gradient descent,
or to the RL loop around it (exploration, value targets, V-trace): it records a trained
teacher's play, then trains each student module from scratch to match the teacher's action
distribution (the mean KL(teacher || student) over the steps of a batch, Adam, the student's
gradient clip) and reports the held-out KL and how often the student's most likely action is the
teacher's, after each number of updates.

Each student is a run config or a sweep file (its ``base`` and ``set``; its search is ignored),
built as ``train_agent.py`` builds the module. Every student trains at every step size of
``--lrs`` and every seed of ``--seeds`` (the same tuning budget for each), on batches of
``--batch`` chunks of ``--unroll`` consecutive steps (the RL learner's 32 x 20 by default), each
chunk starting from the initial state (the teacher's play needs no memory, and neither may a
student's). Chunks are cut from each episode's start, one after the other, so the last steps of
an episode that do not fill a chunk are left out of training and evaluation alike. The teacher's
episodes and the held-out ones are played from different env seeds. The students are built for
the teacher's observation and action spaces and trained with Adam whatever their config's
optimizer; a teacher that reads its previous action and reward, or whose observations are not one
array (a Dict), is refused.

    python bench/imitation_speed.py --teacher pretrained/viewport-lstm \\
        --student rmc=configs/minipacman_viewport_tuned_rmc.yaml \\
        --student lstm=configs/minipacman_viewport_tuned_lstm.yaml \\
        --student mlp=configs/sweeps/viewport_mlp_floor.yaml --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@dataclass
class Play:
    """A teacher's recorded play: observations ``[steps, ...]``, its action probabilities
    ``[steps, actions]`` and where each episode starts."""

    obs: np.ndarray
    probs: np.ndarray
    starts: list[int]
    returns: list[float]

    def chunks(self, length: int) -> np.ndarray:
        """Start indices of the chunks of ``length`` steps: each episode cut from its start into
        runs of ``length``, a shorter tail left out."""
        ends = [*self.starts[1:], len(self.obs)]
        out = [
            s + k * length
            for s, e in zip(self.starts, ends, strict=True)
            for k in range((e - s) // length)
        ]
        return np.asarray(out, dtype=np.int64)


def load_teacher(checkpoint: str) -> Any:
    """The teacher policy, checked for what :func:`record` needs."""
    from rmc_agents.rollout import RolloutError, load_policy

    policy = load_policy(checkpoint)
    if policy.env_spec is None:
        raise RolloutError(f"{checkpoint}: the env it was trained on is not recorded")
    import gymnasium as gym

    if not isinstance(policy.module.action_space, gym.spaces.Discrete):
        raise RolloutError(
            f"{checkpoint}: imitation here needs a Discrete action space, the policy has "
            f"{policy.module.action_space}"
        )
    from rmc_agents.rollout.acting import _prev_inputs_layout

    if _prev_inputs_layout(policy.module.observation_space) is not None:
        raise RolloutError(
            f"{checkpoint}: the teacher reads its previous action and reward; a student would need "
            "them too (not supported here)"
        )
    if not isinstance(policy.module.observation_space, gym.spaces.Box):
        raise RolloutError(
            f"{checkpoint}: imitation here needs observations that are one array (a Box), the "
            f"policy reads {type(policy.module.observation_space).__name__} observations"
        )
    return policy


def record(policy: Any, episodes: int, seed: int, max_steps: int | None = None) -> Play:
    """Play ``episodes`` episodes of ``policy`` (a loaded teacher; sampling its actions, as it
    acted in training) from env seed ``seed`` on, recording what it saw and its action
    probabilities."""
    import torch

    from rmc_agents.rollout import make_rollout_env
    from rmc_agents.rollout.acting import PolicyStepper
    from rmc_agents.rollout.environment import check_compatible

    env = make_rollout_env(policy.env_spec, policy.env_kwargs, frames=False)
    check_compatible(policy.module, env, policy.env_spec)
    stepper = PolicyStepper(policy.module)
    obs_list: list[np.ndarray] = []
    probs: list[np.ndarray] = []
    starts: list[int] = []
    returns: list[float] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            for index in range(episodes):
                stepper.reset()
                obs, _ = env.reset(seed=seed if index == 0 else None)
                starts.append(len(obs_list))
                total, steps, done = 0.0, 0, False
                while not done:
                    action, _ = stepper.act(obs)
                    obs_list.append(np.asarray(obs, dtype=np.float32))
                    probs.append(torch.softmax(stepper.last_dist_inputs[0], -1).numpy())
                    obs, reward, terminated, truncated, _ = env.step(action)
                    total += float(reward)
                    steps += 1
                    done = bool(terminated or truncated) or (
                        max_steps is not None and steps >= max_steps
                    )
                returns.append(total)
        finally:
            env.close()
    return Play(np.stack(obs_list), np.stack(probs).astype(np.float32), starts, returns)


def student_settings(path: str) -> Any:
    """The run settings of a run config or a sweep file (its base and ``set``)."""
    from rmc_agents.config import load_config, read_mapping
    from rmc_agents.rl.settings import RunSettings
    from rmc_agents.tune.sweep import load_sweep

    data = read_mapping(Path(path), "student config")
    if "search" in data or "base" in data:
        return load_sweep(path).settings
    return load_config(RunSettings, path)


def build_student(settings: Any, observation_space: Any, action_space: Any, seed: int) -> Any:
    import torch

    from rmc_agents.rl.algorithms import module_spec

    torch.manual_seed(seed)
    spec = module_spec(settings)
    spec.observation_space, spec.action_space = observation_space, action_space
    return spec.build()


def _logits(module: Any, obs: Any) -> Any:
    """The student's action logits ``[B, T, A]`` for ``obs`` ``[B, T, ...]``, each chunk from
    the initial state."""
    import torch
    from ray.rllib.core.columns import Columns

    b, t = obs.shape[:2]
    init = module.get_initial_state()
    if not init:  # stateless (mlp): RLlib's [B, ...] form
        out = module._forward({Columns.OBS: obs.reshape(b * t, *obs.shape[2:])})
        return out[Columns.ACTION_DIST_INPUTS].reshape(b, t, -1)
    state = {k: torch.as_tensor(v)[None].expand(b, *np.shape(v)) for k, v in init.items()}
    out = module._forward({Columns.OBS: obs, Columns.STATE_IN: state})
    return out[Columns.ACTION_DIST_INPUTS]


def _kl(logits: Any, probs: Any) -> Any:
    """Mean KL(teacher || student) over the steps."""
    import torch

    logp = torch.log_softmax(logits, -1)
    return (probs * (torch.log(probs.clamp_min(1e-8)) - logp)).sum(-1).mean()


def evaluate(module: Any, play: Play, unroll: int) -> tuple[float, float]:
    """Held-out mean KL and the share of steps where the student's most likely action is the
    teacher's."""
    import torch

    idx = play.chunks(unroll)
    if len(idx) == 0:
        raise ValueError(f"no held-out episode is {unroll} steps long")
    kl_sum, agree, n = 0.0, 0.0, 0
    with torch.no_grad():
        for i in range(0, len(idx), 64):
            rows = idx[i : i + 64, None] + np.arange(unroll)[None]
            obs = torch.as_tensor(play.obs[rows])
            probs = torch.as_tensor(play.probs[rows])
            logits = _logits(module, obs)
            kl_sum += float(_kl(logits, probs)) * rows.size
            agree += float((logits.argmax(-1) == probs.argmax(-1)).float().sum())
            n += rows.size
    return kl_sum / n, agree / n


def train(
    module: Any,
    train_play: Play,
    test_play: Play,
    lr: float,
    grad_clip: float | None,
    updates: int,
    batch: int,
    unroll: int,
    seed: int,
    eval_at: list[int],
) -> list[dict[str, float]]:
    """Adam on the imitation loss; the held-out KL and agreement at each count of ``eval_at``
    (0 included: the untrained student)."""
    import torch

    idx = train_play.chunks(unroll)
    if len(idx) < batch:
        raise ValueError(
            f"the teacher's play holds {len(idx)} chunks of {unroll} steps, fewer than a batch of "
            f"{batch}: record more episodes"
        )
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(module.parameters(), lr=lr)
    rows_out = []
    for u in range(updates + 1):
        if u in eval_at:
            kl, agree = evaluate(module, test_play, unroll)
            rows_out.append({"updates": u, "kl": kl, "agreement": agree})
        if u == updates:
            break
        pick = idx[rng.choice(len(idx), size=batch, replace=False)]
        rows = pick[:, None] + np.arange(unroll)[None]
        loss = _kl(
            _logits(module, torch.as_tensor(train_play.obs[rows])),
            torch.as_tensor(train_play.probs[rows]),
        )
        opt.zero_grad()
        loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(module.parameters(), grad_clip)
        opt.step()
    return rows_out


def _parse_student(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"--student wants NAME=CONFIG, got {text!r}")
    if not Path(path).is_file():
        raise argparse.ArgumentTypeError(f"--student {name}: no config file at {path}")
    return name, path


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"want numbers separated by commas, got {text!r}"
        ) from None


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"want whole numbers separated by commas, got {text!r}"
        ) from None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--teacher", default="pretrained/viewport-lstm", help="a policy or a run")
    p.add_argument(
        "--student", type=_parse_student, action="append", required=True,
        help="NAME=CONFIG: a run config or a sweep file (repeat for each student)",
    )  # fmt: skip
    p.add_argument("--episodes", type=int, default=20, help="teacher episodes to learn from (20)")
    p.add_argument("--test-episodes", type=int, default=5, help="held-out episodes (5)")
    p.add_argument("--max-steps", type=int, default=None, help="cut episodes at this many steps")
    p.add_argument("--lrs", type=_floats, default=[1e-3, 3e-3], help="Adam step sizes (1e-3,3e-3)")
    p.add_argument("--seeds", type=_ints, default=[0, 1], help="student seeds (0,1)")
    p.add_argument("--updates", type=int, default=300, help="updates per student (300)")
    p.add_argument("--batch", type=int, default=32, help="chunks per batch (32)")
    p.add_argument("--unroll", type=int, default=20, help="steps per chunk (20)")
    p.add_argument("--evals", type=_ints, default=None, help="update counts to evaluate at")
    p.add_argument("--seed", type=int, default=0, help="the teacher's first env seed (0)")
    p.add_argument("--json", help="also write every curve here")
    args = p.parse_args(argv)
    for name in ("episodes", "test_episodes", "updates", "batch", "unroll"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if not args.lrs or not args.seeds:
        p.error("--lrs and --seeds need one value at least")
    if any(not lr > 0 for lr in args.lrs):
        p.error(f"--lrs must all be > 0, got {args.lrs}")
    if any(seed < 0 for seed in args.seeds) or args.seed < 0:
        p.error("seeds must be >= 0")
    if args.max_steps is not None and args.max_steps < 1:
        p.error(f"--max-steps must be at least 1, got {args.max_steps}")
    if args.evals and any(not 0 <= e <= args.updates for e in args.evals):
        p.error(f"--evals must lie in [0, --updates={args.updates}], got {args.evals}")
    names = [n for n, _ in args.student]
    if len(set(names)) != len(names):
        p.error(f"student names repeat: {names}")
    evals = args.evals or sorted(
        {0, *(int(args.updates * f) for f in (0.1, 0.25, 0.5)), args.updates}
    )
    evals = sorted({e for e in evals if 0 <= e <= args.updates} | {args.updates})

    import torch

    from rmc_agents.config import ConfigError
    from rmc_agents.rollout import RolloutError

    torch.set_num_threads(1)
    try:
        settings = {n: student_settings(path) for n, path in args.student}
        t0 = time.time()
        teacher = load_teacher(args.teacher)
        play = record(teacher, args.episodes, args.seed, args.max_steps)
        held = record(teacher, args.test_episodes, args.seed + 10_000, args.max_steps)
        have, held_chunks = len(play.chunks(args.unroll)), len(held.chunks(args.unroll))
        if have < args.batch or held_chunks < 1:
            raise RolloutError(
                f"the teacher's play holds {have} chunks of {args.unroll} steps to learn from and "
                f"{held_chunks} held out; a batch needs {args.batch} and the evaluation one: "
                "record more (or longer) episodes, or ask for a smaller --batch or --unroll"
            )
    except (RolloutError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"teacher {args.teacher}: {len(play.obs)} steps in {args.episodes} episodes "
        f"(mean return {np.mean(play.returns):.1f}), held out {len(held.obs)} steps "
        f"({time.time() - t0:.0f} s)",
        flush=True,
    )
    obs_space, act_space = teacher.module.observation_space, teacher.module.action_space
    results = []
    for name, path in args.student:
        for lr in args.lrs:
            for seed in args.seeds:
                module = build_student(settings[name], obs_space, act_space, seed)
                size = sum(q.numel() for q in module.parameters())
                t0 = time.time()
                curve = train(
                    module, play, held, lr, settings[name].training.grad_clip, args.updates,
                    args.batch, args.unroll, seed, evals,
                )  # fmt: skip
                results.append(
                    {"student": name, "config": path, "parameters": size, "lr": lr,
                     "seed": seed, "seconds": time.time() - t0, "curve": curve}
                )  # fmt: skip
                last = curve[-1]
                print(
                    f"{name} ({size:,} parameters) lr {lr:g} seed {seed}: KL "
                    + " / ".join(f"{r['kl']:.3f}" for r in curve)
                    + f" at {evals} updates; agreement {last['agreement']:.3f} "
                    f"({time.time() - t0:.0f} s)",
                    flush=True,
                )
    print()
    print(summary_table(results, evals))
    if args.json:
        out = {"teacher": args.teacher, "seed": args.seed, "episodes": args.episodes,
               "test_episodes": args.test_episodes, "max_steps": args.max_steps,
               "steps": len(play.obs), "test_steps": len(held.obs), "batch": args.batch,
               "unroll": args.unroll, "updates": args.updates, "evals": evals,
               "lrs": args.lrs, "seeds": args.seeds, "results": results}  # fmt: skip
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


def summary_table(results: list[dict], evals: list[int]) -> str:
    """Per student and step size: the held-out KL at each evaluation, mean over the seeds, and the
    final agreement; each student's best step size (lowest final KL; a diverged one never) in
    bold."""
    groups: dict[tuple[str, float], list[dict]] = {}
    for r in results:
        groups.setdefault((r["student"], r["lr"]), []).append(r)
    final = {k: float(np.mean([r["curve"][-1]["kl"] for r in rs])) for k, rs in groups.items()}
    final = {k: (f if np.isfinite(f) else float("inf")) for k, f in final.items()}  # diverged
    best = {name: min((f, lr) for (n, lr), f in final.items() if n == name)[1] for name, _ in final}
    head = " | ".join(f"KL at {e}" for e in evals)
    lines = [
        f"| student | parameters | lr | seeds | {head} | agreement at {evals[-1]} |",
        "|---|---:|---:|---|" + "---:|" * len(evals) + "---:|",
    ]
    for (name, lr), rs in groups.items():
        kls = [float(np.mean([r["curve"][i]["kl"] for r in rs])) for i in range(len(evals))]
        cells = [f"{k:.3f}" for k in kls]
        if best[name] == lr:
            cells[-1] = f"**{cells[-1]}**"
        agree = float(np.mean([r["curve"][-1]["agreement"] for r in rs]))
        seeds = ",".join(str(r["seed"]) for r in rs)
        lines.append(
            f"| {name} | {rs[0]['parameters']:,} | {lr:g} | {seeds} | "
            + " | ".join(cells) + f" | {agree:.3f} |"
        )  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

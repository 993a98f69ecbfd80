"""Export a trained agent as data, not code: its weights, a JSON card and its run config.

    python -m rmc_agents.export --run results/viewport/rmc-seed0 --to pretrained/viewport-rmc

writes ``<to>/model.safetensors`` (the policy's weights, inference only: no optimizer or RLlib
state), ``<to>/policy.json`` (the card: everything needed to rebuild the module, its observation
and action spaces as JSON, the env, model, algorithm, frames trained, seed, the commit and library
versions it was exported with, and the score over ``--episodes`` evaluation episodes (sampled
actions, seeds 0, 1, ...) with its spread, beside a uniformly random policy on the same seeds),
``<to>/config.yaml`` (the run's settings) and ``<to>/README.md``. Nothing in it is a pickle:
:func:`rmc_agents.load_policy` and ``python -m rmc_agents.rollout --checkpoint <to>`` rebuild the
policy from JSON and safetensors alone (:mod:`rmc_agents.policy_file`).

Reading the run's RLlib checkpoint to export it unpickles it: export only runs you made or trust.
``--convert DIR`` rewrites an agent exported in the earlier format (``policy/``, RLlib's pickled
module directory, and ``card.json``) in place, keeping its card's scores.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path
from typing import Any

__all__ = ["convert", "evaluate", "export", "main", "random_scores"]


def _algorithm(settings: dict) -> str:
    """The algorithm a saved config ran (``auto`` resolved as it was at training time)."""
    from rmc_agents.rl.settings import default_algo

    algo = settings.get("algo", "impala")
    return default_algo(settings["env"]) if algo == "auto" else algo


def _score(result: Any) -> float:
    return float(result.score if result.score is not None else result.episode_return)


#: Steps of an episode before its memory is counted in the card's slot spread.
SPREAD_FROM_STEP = 10


class _SlotSpread:
    """Running mean of the RMC memory's slot spread (``rmc_agents.rl.diagnostics.slot_spread``:
    mean distance between two slots over the memory's rms; 0 when every slot holds the same
    vector) over the steps of every episode from :data:`SPREAD_FROM_STEP` on, and per episode."""

    def __init__(self) -> None:
        from rmc_agents.rl.diagnostics import slot_spread

        self.slot_spread = slot_spread  # imported once, not at every step
        self.episodes: dict[int, list[float]] = {}

    def __call__(self, index: int, steps: int, state: dict[str, Any]) -> None:
        if steps > SPREAD_FROM_STEP and len(state) == 1:
            memory = next(iter(state.values()))  # [1, slots, mem_size]
            self.episodes.setdefault(index, []).append(float(self.slot_spread(memory)[0]))

    def summary(self) -> dict[str, Any] | None:
        means = [statistics.fmean(v) for v in self.episodes.values() if v]
        if not means:
            return None
        every = [x for v in self.episodes.values() for x in v]
        return {
            "from_step": SPREAD_FROM_STEP,
            "mean": statistics.fmean(every),
            "lowest_episode_mean": min(means),
            "episodes": len(means),
        }


def evaluate(
    path: str | Path, episodes: int, seed: int = 0, spread: _SlotSpread | None = None
) -> list[float]:
    """Scores of the policy under ``path`` over ``episodes`` episodes (sampled actions);
    ``spread`` (an RMC policy) gathers its memory's slot spread on the way."""
    from rmc_agents.rollout import load_policy, make_rollout_env, play

    policy = load_policy(path)
    env = make_rollout_env(policy.env_spec, policy.env_kwargs, frames=False)
    try:
        return [_score(r) for r in play(policy, env, episodes, seed=seed, on_state=spread)]
    finally:
        env.close()


def random_scores(
    env_spec: str, env_kwargs: dict[str, Any], episodes: int, seed: int = 0
) -> list[float]:
    """Scores of a uniformly random policy on the same env and seeds."""
    from rmc_agents.rollout import make_rollout_env

    env = make_rollout_env(env_spec, env_kwargs, frames=False)
    env.action_space.seed(seed)
    scores = []
    try:
        obs, info = env.reset(seed=seed)
        while len(scores) < episodes:
            total, done = 0.0, False
            while not done:
                obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
                total += float(reward)
                done = terminated or truncated
            scores.append(float(info.get("score", total)))
            obs, info = env.reset()
    finally:
        env.close()
    return scores


def _stats(values: list[float]) -> dict[str, float]:
    return {
        "mean": statistics.mean(values),
        "std": statistics.pstdev(values),
        "min": min(values),
        "max": max(values),
    }


def _load_rllib_module(module_dir: Path) -> Any:
    """The RLModule in an RLlib module directory (its pickles: a run of one's own)."""
    from ray.rllib.core.rl_module.rl_module import RLModule

    from rmc_agents.rollout import RolloutError
    from rmc_agents.rollout.checkpoints import _one_line, _quiet_rllib

    try:
        with _quiet_rllib():
            return RLModule.from_checkpoint(str(module_dir.resolve()))
    except Exception as exc:  # noqa: BLE001 - any failure here means an unusable checkpoint
        raise RolloutError(
            f"cannot load the policy from '{module_dir}': {_one_line(exc)}"
        ) from None


def _spread_row(card: dict[str, Any]) -> str:
    spread = card.get("slot_spread")
    if not spread:
        return ""
    return (
        f"| memory slots (the same episodes, from step {spread['from_step']} on) | spread "
        f"{spread['mean']:.3f}, lowest episode {spread['lowest_episode_mean']:.3f} (mean distance "
        "between two slots over the memory's rms: 0 = every slot the same; unrelated random "
        "slots about 1.4) |\n"
    )


def _write_readme(to: Path, card: dict[str, Any]) -> None:
    m = card["model"]
    sizes = (
        f"{m['mem_slots']} memories x {m['num_heads']} heads x {m['head_size']}"
        if m["core"] == "rmc"
        else f"hidden {m['hidden_size']}"
    )
    s, b = card["score"], card["random_policy_score"]
    episodes = card["evaluation"]["episodes"]
    written = card.get("written_with") or {}
    commit = written.get("commit") or "unknown"
    if written.get("dirty"):
        commit += " (with uncommitted changes)"
    if card.get("exported_at_commit"):  # an agent converted from the earlier format
        commit = f"{card['exported_at_commit']} (written in this format at {commit})"
    (to / "README.md").write_text(
        f"# {to.name}\n\n"
        f"| | |\n|---|---|\n"
        f"| env | `{card['env']}` {card['env_kwargs'] or ''} |\n"
        f"| model | {m['core'].upper()} ({sizes}) |\n"
        f"| algorithm | {card['algo']} (settings in `config.yaml`) |\n"
        f"| frames trained | {card['frames']:,} (this policy: {card['policy']}, "
        f"at {card['policy_env_steps']:,}) |\n"
        f"| seed | {card['seed']} |\n"
        f"| exported at commit | {commit} |\n"
        f"| score, {episodes} episodes (sampled actions, env seeds 0..{episodes - 1}) "
        f"| **{s['mean']:.1f}** (std {s['std']:.1f}, min {s['min']:g}, max {s['max']:g}) |\n"
        f"| random policy, same seeds | {b['mean']:.1f} (std {b['std']:.1f}) |\n"
        f"{_spread_row(card)}"
        f"| policy size | {card['policy_bytes'] / 1e6:.2f} MB |\n\n"
        "Files: `model.safetensors` (the weights) and `policy.json` (this card, with what is "
        "needed to rebuild the policy): no pickles. Load it in Python with "
        f'`rmc_agents.load_policy("{to.as_posix()}")`.\n\n'
        f"Watch it: `python -m rmc_agents.rollout --checkpoint {to.as_posix()}"
        f"{' --attention' if m['core'] == 'rmc' else ''} --video {to.name}.gif`\n"
    )


def export(
    run: str | Path,
    to: str | Path,
    episodes: int = 100,
    overwrite: bool = False,
    which: str = "best",
) -> dict:
    """Write the policy of the run in ``run`` to ``to`` (safetensors and a JSON card), evaluate
    it, and put its score in the card; returns the card.

    ``which``: ``best`` (the run's ``best/`` policy, the iteration with the best mean return; the
    final one where the run has none) or ``final`` (the last checkpoint's).
    """
    from rmc_agents.policy_file import CARD, WEIGHTS, save_policy
    from rmc_agents.rollout import RolloutError, find_checkpoint

    run, to = Path(run), Path(to)
    if to.exists() and not overwrite:
        raise RolloutError(f"'{to}' exists; pass --overwrite to replace it")
    best = run / "best"
    use_best = which == "best" and (best / "policy").is_dir()
    module_dir, _ = find_checkpoint(best if use_best else run)
    config = run / "config.yaml"
    if not config.is_file():
        raise RolloutError(f"no config.yaml in '{run}' (export takes a run directory)")
    summary = (
        json.loads((run / "summary.json").read_text()) if (run / "summary.json").is_file() else {}
    )
    import yaml

    settings = yaml.safe_load(config.read_text())
    module = _load_rllib_module(module_dir)
    best_row = json.loads((best / "best.json").read_text()) if use_best else {}
    card: dict[str, Any] = {
        "policy": "best iteration" if use_best else "final checkpoint",
        "policy_env_steps": best_row.get("env_steps", summary.get("env_steps")),
        "env": settings["env"],
        "env_kwargs": settings.get("env_kwargs") or {},
        "algo": _algorithm(settings),
        "model": settings["model"],
        "seed": settings.get("seed"),
        "frames": summary.get("env_steps"),
        "training_best_return_mean": summary.get("best_episode_return_mean"),
    }
    if to.exists():
        shutil.rmtree(to)
    save_policy(module, to, **card)
    shutil.copy(config, to / "config.yaml")
    spread = _SlotSpread() if settings["model"].get("core") == "rmc" else None
    scores = evaluate(to, episodes, spread=spread)
    baseline = random_scores(card["env"], card["env_kwargs"], episodes)
    card = json.loads((to / CARD).read_text())
    card.update(
        evaluation={"episodes": episodes, "seeds": f"0..{episodes - 1} (sampled actions)"},
        score=_stats(scores),
        random_policy_score=_stats(baseline),
        policy_bytes=(to / WEIGHTS).stat().st_size,
    )
    if spread is not None and spread.summary() is not None:
        card["slot_spread"] = spread.summary()
    (to / CARD).write_text(json.dumps(card, indent=2) + "\n")
    _write_readme(to, card)
    return card


def convert(agent: str | Path) -> dict:
    """Rewrite an agent exported in the earlier format (``policy/``: RLlib's pickled module
    directory, ``card.json``) as ``model.safetensors`` and ``policy.json`` in place, keeping its
    card (scores included) and checking that the rebuilt policy computes what the pickled one
    did; returns the new card. Unpickles ``policy/`` once: convert only agents you trust."""
    from rmc_agents.policy_file import CARD, WEIGHTS, load_policy, save_policy
    from rmc_agents.rollout import RolloutError

    agent = Path(agent)
    old_card, old_policy = agent / "card.json", agent / "policy"
    if not old_card.is_file() or not old_policy.is_dir():
        raise RolloutError(f"'{agent}' holds no card.json and policy/ to convert")
    card = json.loads(old_card.read_text())
    module = _load_rllib_module(old_policy)
    card.pop("policy_bytes", None)
    commit = card.pop("commit", None)
    if commit is not None:
        card["exported_at_commit"] = commit
    save_policy(module, agent, **card)
    rebuilt = load_policy(agent)
    _check_same_outputs(module, rebuilt)
    new_card = json.loads((agent / CARD).read_text())
    new_card["policy_bytes"] = (agent / WEIGHTS).stat().st_size
    (agent / CARD).write_text(json.dumps(new_card, indent=2) + "\n")
    shutil.rmtree(old_policy)
    old_card.unlink()
    _write_readme(agent, new_card)
    return new_card


def _check_same_outputs(module: Any, rebuilt: Any, steps: int = 5) -> None:
    """The two modules give the same action-distribution inputs and values on the same inputs."""
    import numpy as np
    import torch
    import tree
    from ray.rllib.core.columns import Columns

    from rmc_agents.rollout import RolloutError

    module.eval()
    space = module.observation_space
    space.seed(0)
    stateful = bool(module.get_initial_state())
    states = []
    for m in (module, rebuilt):
        states.append(
            {k: torch.as_tensor(np.asarray(v))[None] for k, v in m.get_initial_state().items()}
        )
    lead = (1, 1) if stateful else (1,)
    for _ in range(steps):
        obs = space.sample()
        batch = {
            Columns.OBS: tree.map_structure(
                lambda x: torch.as_tensor(np.asarray(x)).reshape(*lead, *np.shape(x)), obs
            )
        }
        outs = []
        for i, m in enumerate((module, rebuilt)):
            b = dict(batch)
            if stateful:
                b[Columns.STATE_IN] = states[i]
            with torch.no_grad():
                out = m.forward_inference(b)
            if stateful:
                states[i] = out[Columns.STATE_OUT]
            outs.append(out[Columns.ACTION_DIST_INPUTS])
        if not torch.equal(outs[0], outs[1]):
            raise RolloutError("the converted policy does not compute what the original did")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m rmc_agents.export", description=__doc__.split("\n")[0]
    )
    p.add_argument("--run", help="a training run's output directory")
    p.add_argument("--to", help="the directory to write (e.g. pretrained/NAME)")
    p.add_argument(
        "--convert",
        metavar="DIR",
        help="rewrite an agent exported in the earlier format (policy/, card.json) in place",
    )
    p.add_argument("--episodes", type=int, default=100, help="evaluation episodes (default 100)")
    p.add_argument("--overwrite", action="store_true", help="replace --to if it exists")
    p.add_argument(
        "--which",
        choices=["best", "final"],
        default="best",
        help="the run's best-iteration policy (default; the final one if it has none) or its final",
    )
    args = p.parse_args(argv)
    from rmc_agents.rollout import RolloutError

    if args.convert:
        if args.run or args.to:
            p.error("--convert takes no --run or --to")
        try:
            convert(args.convert)
        except RolloutError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"{args.convert}: converted to model.safetensors and policy.json")
        return 0
    if not (args.run and args.to):
        p.error("--run and --to are required (or --convert DIR)")
    try:
        card = export(args.run, args.to, args.episodes, args.overwrite, args.which)
    except RolloutError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    s = card["score"]
    print(
        f"{args.to}: score {s['mean']:.1f} (std {s['std']:.1f}) over {args.episodes} episodes; "
        f"random policy {card['random_policy_score']['mean']:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

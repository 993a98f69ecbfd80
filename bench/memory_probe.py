"""What a trained RMC agent's memory does during an episode: slot spread, gates, attention.

Plays one episode (or ``--steps`` steps) of a policy with the RMC core from an env seed and prints,
at a few steps, how distinct the memory's slots are (``diag/slot_spread``'s measure: the mean
distance between two slots over the root mean square slot norm; about 1.4 for unrelated slots, 0
for identical ones), the mean input and forget gates, the share of the memory rows' attention that
goes to memory rows (the rest goes to the input rows), and the share of heads in which all slots
attend most to the same row; and the share of forget-gate entries at or above 0.9 (the part of the
memory a step keeps). ``--untrained`` probes a freshly initialised module of the same
settings instead of the trained weights.

    python bench/memory_probe.py --checkpoint runs/MiniPacman-Viewport-v0-rmc/best
    python bench/memory_probe.py --checkpoint pretrained/viewport-rmc --untrained
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REPORT_STEPS = (0, 1, 5, 10, 20, 40, 80)


def probe(module, env, seed: int, steps: int) -> list[dict]:
    """Per step: slot spread, gates and attention shares of ``module``'s RMC core."""
    import torch

    from rmc_agents.rl.diagnostics import slot_spread
    from rmc_agents.rollout.acting import PolicyStepper

    core = module.core
    slots = core.mem_slots
    stepper = PolicyStepper(module, attention=True)
    torch.manual_seed(seed)
    obs, _ = env.reset(seed=seed)
    rows = []
    for t in range(steps):
        core.record(True)
        action, weights = stepper.act(obs)  # weights [blocks, heads, N, N]
        recorded = core.record(False)
        last = torch.as_tensor(weights[-1])[:, :slots, :]  # heads, slot queries, all rows
        top = last.argmax(-1)
        row = {
            "step": t,
            "slot_spread": float(slot_spread(recorded["memory"][0, -1])),
            "attention_on_memory": float(last[..., :slots].sum(-1).mean()),
            "heads_with_one_top_row": float((top == top[:, :1]).all(-1).float().mean()),
        }
        if "forget_gate" in recorded:
            row["input_gate"] = float(recorded["input_gate"][0, -1])
            row["forget_gate"] = float(recorded["forget_gate"][0, -1])
            row["forget_kept"] = float(recorded["forget_kept"][0, -1])
        rows.append(row)
        obs, reward, terminated, truncated, _ = env.step(action)
        stepper.observe_reward(action, reward)
        if terminated or truncated:
            break
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True, help="a run, its best/ or a policy folder")
    p.add_argument("--env", help="the env (default: the one the policy was trained on)")
    p.add_argument("--seed", type=int, default=3, help="env and action seed")
    p.add_argument("--steps", type=int, default=200, help="steps at most (one episode)")
    p.add_argument("--untrained", action="store_true", help="probe fresh weights of this model")
    p.add_argument("--json", help="also write the per-step rows here")
    args = p.parse_args()

    from rmc_agents.rollout.checkpoints import load_policy
    from rmc_agents.rollout.environment import make_rollout_env

    policy = load_policy(args.checkpoint)
    module = policy.module
    if getattr(module, "core_name", None) != "rmc":
        raise SystemExit(f"error: {args.checkpoint} holds no RMC policy")
    if args.untrained:
        for layer in module.modules():
            if layer is not module and hasattr(layer, "reset_parameters"):
                layer.reset_parameters()
    env = make_rollout_env(args.env or policy.env_spec, policy.env_kwargs, frames=False)
    rows = probe(module, env, args.seed, args.steps)
    keys = [k for k in rows[0] if k != "step"]
    print("step  " + "  ".join(f"{k:>22}" for k in keys))
    for row in rows:
        if row["step"] in REPORT_STEPS or row is rows[-1]:
            print(f"{row['step']:>4}  " + "  ".join(f"{row[k]:>22.4f}" for k in keys))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()

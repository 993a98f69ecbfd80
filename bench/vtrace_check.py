"""RLlib 2.60's stock IMPALA V-trace beside this project's and the textbook's, on one small batch.

The batch is laid out as RLlib's IMPALA learner lays it: one episode fragment of 6 steps (cut by
the EnvRunner, not terminated) plus the bootstrap step RLlib appends (``loss_mask`` False), in one
row of ``max_seq_len = 8`` with one padding step. Rewards are 0.01 per step, gamma 0.99, on-policy
(rho = c = 1), and every value is already the true one, 0.01 / (1 - 0.99) = 1.0: the correct targets
are 1.0 everywhere. RLlib's loss gives the phantom bootstrap step a discount of 0 but keeps its
delta ``-rho_b * V_b``, and the recursion adds it to the last real step: the cut acts as a terminal
state, and the targets fall towards 0.01 at the end of the fragment.

    python bench/vtrace_check.py

The same numbers come out of ``IMPALATorchLearner.compute_loss_for_module``, which makes exactly the
call below (``discounts = gamma * (1 - terminated) * loss_mask``, ``bootstrap_values`` from the next
row); ``tests/rl/test_vtrace.py`` checks both against the paper on many layouts.
"""

from __future__ import annotations

import argparse

import numpy as np

GAMMA, REWARD, STEPS, MAX_SEQ_LEN = 0.99, 0.01, 6, 8


def textbook(rewards: np.ndarray, values: np.ndarray, bootstrap: float) -> np.ndarray:
    """IMPALA eq. 1 on-policy (rho = c = 1): v_s = V_s + sum_t gamma^(t-s) delta_t."""
    v = np.append(values, bootstrap)
    deltas = rewards + GAMMA * v[1:] - v[:-1]
    return np.array(
        [
            v[s] + sum(GAMMA ** (t - s) * deltas[t] for t in range(s, len(rewards)))
            for s in range(len(rewards))
        ]
    )


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n")[0]).parse_args()
    import torch  # (after the flags: --help answers without loading torch and RLlib)
    from ray.rllib.algorithms.impala.torch.vtrace_torch_v2 import vtrace_torch

    from rmc_agents.rl.vtrace import vtrace_rows

    true_value = REWARD / (1 - GAMMA)
    # One row: 6 real steps, the bootstrap step, one padding step.
    rewards = torch.tensor([[REWARD] * STEPS + [0.0, 0.0]], dtype=torch.float64)
    values = torch.tensor([[true_value] * (STEPS + 1) + [0.3]], dtype=torch.float64)
    mask = torch.tensor([[1.0] * STEPS + [0.0, 0.0]], dtype=torch.float64)
    terminated = torch.zeros_like(mask)
    log_rhos = torch.zeros_like(mask)  # on-policy; the bootstrap step's copied action too

    stock_vs, _ = vtrace_torch(  # RLlib's call, time-major [T, B]
        target_action_log_probs=log_rhos.T,
        behaviour_action_log_probs=torch.zeros_like(log_rhos.T),
        discounts=((1.0 - terminated) * GAMMA * mask).T,
        rewards=rewards.T,
        values=values.T,
        bootstrap_values=values.T[0][0:1],  # "the next row" (only one row here; unused)
        clip_rho_threshold=1.0,
        clip_pg_rho_threshold=1.0,
    )
    ours_vs, _ = vtrace_rows(
        log_rhos=log_rhos,
        values=values,
        rewards=rewards,
        discounts=GAMMA * (1.0 - terminated),
        mask=mask,
    )
    want = textbook(np.full(STEPS, REWARD), np.full(STEPS, true_value), true_value)
    print(f"fragment of {STEPS} steps, reward {REWARD}/step, gamma {GAMMA}, V = {true_value:.2f}")
    print(f"{'step':>4} {'textbook':>9} {'this project':>13} {'RLlib 2.60':>11}")
    for s in range(STEPS):
        print(
            f"{s:>4} {want[s]:>9.4f} {ours_vs[0, s].item():>13.4f} {stock_vs[s, 0].item():>11.4f}"
        )
    ok = np.allclose(ours_vs[0, :STEPS].numpy(), want)
    worst = float(np.abs(stock_vs[:STEPS, 0].numpy() - want).max())
    print(f"this project == textbook: {ok}; RLlib's largest error: {worst:.4f}")


if __name__ == "__main__":
    main()

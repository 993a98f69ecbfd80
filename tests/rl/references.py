"""References written from the papers' equations, and RLlib's learner batch layout, for the
value-target tests (``test_vtrace.py``, ``test_algos.py``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from ray.rllib.core.columns import Columns

GAMMA = 0.97


@dataclass
class Traj:
    """One episode fragment: ``n`` real steps and the value of the observation after them."""

    rewards: np.ndarray
    values: np.ndarray  # V(x_s) .. V(x_{s+n-1})
    bootstrap: float  # V(x_{s+n}): the phantom step's value
    log_rhos: np.ndarray
    terminated: bool = False


def make_traj(rng, n, terminated=False, rho_spread=0.5):
    return Traj(
        rewards=rng.normal(size=n),
        values=rng.normal(size=n) * 3,
        bootstrap=float(rng.normal() * 3 + 5),
        log_rhos=rng.normal(size=n) * rho_spread,
        terminated=terminated,
    )


def textbook(traj, gamma=GAMMA, rho_bar=1.0, c_bar=1.0, pg_bar=1.0):
    """``v_s`` and ``A_s`` of the IMPALA paper, summed term by term."""
    n = len(traj.rewards)
    v = np.append(traj.values, 0.0 if traj.terminated else traj.bootstrap)
    g = np.full(n, gamma)
    if traj.terminated:
        g[-1] = 0.0
    rhos = np.exp(traj.log_rhos)
    rho, c = np.minimum(rho_bar, rhos), np.minimum(c_bar, rhos)
    pg_rho = np.minimum(pg_bar, rhos)
    vs = np.empty(n + 1)
    vs[n] = v[n]
    for s in range(n):
        total, coef = 0.0, 1.0
        for t in range(s, n):
            total += coef * rho[t] * (traj.rewards[t] + g[t] * v[t + 1] - v[t])
            coef *= g[t] * c[t]
        vs[s] = v[s] + total
    adv = pg_rho * (traj.rewards + g * vs[1:] - v[:n])
    return vs[:n], adv


def rllib_layout(trajs, max_seq_len, rng):
    """``[B, T]`` rows as RLlib's learner connector builds them, and where each real step went.

    Every fragment gets a bootstrap step (reward 0, the next observation's value, a copy of the
    last action's log-prob, not terminated, ``loss_mask`` False), is cut into chunks of
    ``max_seq_len`` and zero-padded; chunks follow each other in fragment order. Padding gets
    arbitrary values and log-probs (the model's outputs on zero observations).
    """
    cols = {k: [] for k in ("rewards", "values", "log_rhos", "terminated", "mask")}
    where = []
    for traj in trajs:
        n = len(traj.rewards)
        seq = {
            "rewards": np.append(traj.rewards, 0.0),
            "values": np.append(traj.values, traj.bootstrap),
            "log_rhos": np.append(traj.log_rhos, rng.normal()),
            "terminated": np.append(np.arange(n) == n - 1, False) & traj.terminated,
            "mask": np.append(np.ones(n, bool), False),
        }
        steps = []
        for start in range(0, n + 1, max_seq_len):
            row = len(cols["mask"])
            chunk_len = min(max_seq_len, n + 1 - start)
            pad = max_seq_len - chunk_len
            for key, arr in seq.items():
                piece = arr[start : start + chunk_len]
                filler = (
                    rng.normal(size=pad) * 7 if key in ("values", "log_rhos") else np.zeros(pad)
                )
                cols[key].append(np.concatenate([piece, filler.astype(piece.dtype)]))
            steps += [(row, col) for col in range(chunk_len)]
        where.append(steps[:n])
    rows = {k: np.stack(v) for k, v in cols.items()}
    return rows, where


def flat_layout(trajs, rng):
    """A stateless module's batch: fragments (each with its bootstrap step) back to back, flat;
    and the flat index of each real step."""
    rows, where = rllib_layout(trajs, 10_000, rng)  # one row per fragment
    lengths = [len(t.rewards) + 1 for t in trajs]
    flat = {k: np.concatenate([v[i, :n] for i, n in enumerate(lengths)]) for k, v in rows.items()}
    starts = np.cumsum([0, *lengths])
    return flat, [[starts[i] + c for _, c in steps] for i, steps in enumerate(where)]


def gather(arr, where):
    return [np.array([arr[r, c] for r, c in steps]) for steps in where]


def gae_reference(traj, gamma, lam):
    """GAE value targets ``A_t + V(x_t)`` of one fragment (Schulman et al. 2016, eq. 16), summed
    term by term: ``A_t = sum_l (gamma lam)^l delta_{t+l}``, ``delta_t = r_t + gamma V(x_{t+1}) -
    V(x_t)`` with ``V(x_{s+n})`` the bootstrap value (0 after a termination)."""
    n = len(traj.rewards)
    v = np.append(traj.values, 0.0 if traj.terminated else traj.bootstrap)
    deltas = traj.rewards + gamma * v[1:] - v[:n]
    adv = np.array(
        [sum((gamma * lam) ** (t - s) * deltas[t] for t in range(s, n)) for s in range(n)]
    )
    return adv + v[:n]


def sample_learner_batch(run, samples=4, learner=False):
    """Episodes from a real EnvRunner (``run``'s algorithm and module), through the algorithm's
    learner connector: ``(batch, episodes, module)``; ``episodes`` as sampled (before the
    connector appends its bootstrap steps): ``(length, terminated, rewards)`` each.

    With ``learner``, through a built Learner's own connector pipeline (which for PPO ends with
    the GAE piece), with the runner's weights.
    """
    from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

    from rmc_agents.rl.algorithms import build_algo_config

    config = build_algo_config(run)
    runner = SingleAgentEnvRunner(config=config)
    try:
        episodes = []
        for _ in range(samples):
            episodes += runner.sample(random_actions=False)
        spec = config.get_rl_module_spec(
            env=runner.env.unwrapped, spaces=runner.get_spaces(), inference_only=False
        )
        module = spec.build()
        module.set_state(runner.module.get_state())
        info = [
            (len(e), bool(e.is_terminated), np.asarray(e.get_rewards(), np.float64))
            for e in episodes
        ]
        data = [e.to_numpy() for e in episodes]
        if learner:
            built = config.build_learner(
                spaces={"default_policy": runner.get_spaces()["__env_single__"]}
            )
            module = built.module["default_policy"]
            module.set_state(runner.module.get_state())
            batch = built._learner_connector(
                rl_module=built.module, batch={}, episodes=data, shared_data={}
            )["default_policy"]
        else:
            connector = config.build_learner_connector(
                runner.env.single_observation_space, runner.env.single_action_space
            )
            batch = connector(
                rl_module=module, batch={}, episodes=data, explore=False, shared_data={}
            )
    finally:
        runner.stop()
    return batch, info, module


def module_values(module, batch):
    """The module's values on a learner batch (``[B, T]`` or flat)."""
    with torch.no_grad():
        out = module.forward_train(batch)
        return module.compute_values(batch, out.get(Columns.EMBEDDINGS))


class StandInModule(torch.nn.Module):
    """A stand-in for a learner's module: fixed values (and target-policy logits, for APPO)."""

    def __init__(self, values, target_logits=None):
        super().__init__()
        self.values, self.target_logits = values, target_logits

    def unwrapped(self):
        return self

    def get_train_action_dist_cls(self):
        from ray.rllib.models.torch.torch_distributions import TorchCategorical

        return TorchCategorical

    def compute_values(self, batch, embeddings=None):
        return self.values

    def forward_target(self, batch):
        from ray.rllib.core.rl_module.apis.target_network_api import (
            TARGET_NETWORK_ACTION_DIST_INPUTS,
        )

        return {TARGET_NETWORK_ACTION_DIST_INPUTS: self.target_logits}


def loss_batch(rows, actions, behaviour_logp, stateful=True):
    """A learner batch ``[B, T]`` from :func:`rllib_layout` rows, with these actions and
    behaviour log-probs (``SEQ_LENS`` only for a stateful module)."""
    b, t = rows["mask"].shape
    batch = {
        Columns.LOSS_MASK: torch.as_tensor(rows["mask"]),
        Columns.ACTIONS: actions,
        Columns.ACTION_LOGP: behaviour_logp,
        Columns.REWARDS: torch.as_tensor(rows["rewards"], dtype=torch.float32),
        Columns.TERMINATEDS: torch.as_tensor(rows["terminated"]),
    }
    if stateful:
        batch[Columns.SEQ_LENS] = torch.full((b,), t)
    return batch

"""V-trace against the IMPALA paper's equations, on batches laid out as RLlib's learner lays them.

The reference (:func:`textbook`) is written per trajectory from the paper's sums (Espeholt et al.
2018, eq. 1 and the policy-gradient advantage of section 4.2), not from a recursion: a fragment of
``n`` real steps with the value ``V(x_{s+n})`` of the observation after it (0 after a termination).
:func:`rllib_layout` lays trajectories out as RLlib 2.60's IMPALA learner connector does (one
bootstrap step appended to every fragment with ``loss_mask`` False, chunks of ``max_seq_len`` rows,
zero padding); ``test_rllib_lays_batches_out_as_the_reference_does`` checks that claim against the
real connector. Every layout case also shows that RLlib's stock loss misses the reference.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from ray.rllib.algorithms.impala.torch.vtrace_torch_v2 import vtrace_torch
from ray.rllib.core.columns import Columns
from ray.rllib.models.torch.torch_distributions import TorchCategorical

from rmc_agents.rl.vtrace import BootstrapVTraceLearner, batch_rows, vtrace_rows

from .references import (
    GAMMA,
    StandInModule,
    Traj,
    flat_layout,
    gather,
    loss_batch,
    make_traj,
    rllib_layout,
    sample_learner_batch,
    textbook,
)


def ours(rows, gamma=GAMMA, **clips):
    t = {k: torch.as_tensor(v) for k, v in rows.items()}
    vs, adv = vtrace_rows(
        log_rhos=t["log_rhos"].double(),
        values=t["values"].double(),
        rewards=t["rewards"].double(),
        discounts=gamma * (1.0 - t["terminated"].double()),
        mask=t["mask"],
        **clips,
    )
    return vs.numpy(), adv.numpy()


def stock(rows, gamma=GAMMA):
    """RLlib 2.60's IMPALA loss's V-trace call, as ``IMPALATorchLearner`` makes it."""
    t = {k: torch.as_tensor(v).double().T for k, v in rows.items()}  # time-major
    values = t["values"]
    bootstrap_values = torch.cat([values[0][1:], values[0][0:1]])
    vs, adv = vtrace_torch(
        target_action_log_probs=t["log_rhos"],
        behaviour_action_log_probs=torch.zeros_like(t["log_rhos"]),
        discounts=(1.0 - t["terminated"]) * gamma * t["mask"],
        rewards=t["rewards"],
        values=values,
        bootstrap_values=bootstrap_values,
        clip_rho_threshold=1.0,
        clip_pg_rho_threshold=1.0,
    )
    return vs.T.numpy(), adv.T.numpy()


def max_error(result, trajs, where, **clips):
    vs, adv = result
    worst = 0.0
    for traj, v_got, a_got in zip(trajs, gather(vs, where), gather(adv, where), strict=True):
        v_want, a_want = textbook(traj, **clips)
        worst = max(worst, np.abs(v_got - v_want).max(), np.abs(a_got - a_want).max())
    return worst


# Fragments as IMPALA's EnvRunner cuts them (n real steps each) and the learner chunk length.
CASES = {
    # the default layout: max_seq_len = fragment + 2, the bootstrap step in the fragment's row
    "cut, bootstrap step in the same row": ([20, 20, 21], [False] * 3, 22),
    # fragments longer than a chunk: the recursion must go on across rows
    "chunked fragment, bootstrap step inside the last chunk": ([10, 6], [False] * 2, 4),
    # n a multiple of max_seq_len: the bootstrap step opens a row of its own
    "cut, bootstrap step alone in the next row": ([8, 4], [False] * 2, 4),
    # a batch of exactly two rows, one fragment over both
    "one fragment over a batch of two rows": ([7], [False], 5),
    # one fragment ends in a termination, the next episode's fragment is cut
    "termination mid-fragment": ([5, 15, 20], [True, False, False], 22),
    "termination at a chunk boundary": ([8, 7], [True, False], 4),
    # a Gymnasium truncation (time limit) bootstraps like a cut; short fragments leave padding
    "truncation and zero padding": ([7, 3, 12], [False, False, False], 22),
}


@pytest.mark.parametrize("case", list(CASES))
def test_matches_the_paper_where_the_stock_loss_does_not(case):
    lengths, terms, max_seq_len = CASES[case]
    rng = np.random.default_rng(len(case))
    trajs = [make_traj(rng, n, term) for n, term in zip(lengths, terms, strict=True)]
    rows, where = rllib_layout(trajs, max_seq_len, rng)
    assert max_error(ours(rows), trajs, where) < 1e-10
    # The same batch through RLlib's stock V-trace: its targets miss at the cuts.
    assert max_error(stock(rows), trajs, where) > 1e-2


def test_masked_steps_get_their_own_value_and_no_advantage():
    rng = np.random.default_rng(0)
    trajs = [make_traj(rng, 6), make_traj(rng, 3, terminated=True)]
    rows, _ = rllib_layout(trajs, 4, rng)
    vs, adv = ours(rows)
    masked = ~rows["mask"]
    np.testing.assert_array_equal(vs[masked], rows["values"][masked])
    np.testing.assert_array_equal(adv[masked], 0.0)


@pytest.mark.parametrize(
    "clips",
    [
        {"clip_rho_threshold": 1.0, "clip_c_threshold": 1.0, "clip_pg_rho_threshold": 1.0},
        {"clip_rho_threshold": 2.0, "clip_c_threshold": 0.9, "clip_pg_rho_threshold": 1.5},
        {"clip_rho_threshold": None, "clip_c_threshold": None, "clip_pg_rho_threshold": None},
    ],
    ids=["paper", "other_thresholds", "unclipped"],
)
def test_off_policy_rho_and_c_clipping(clips):
    """Strongly off-policy log-probs (rho from about 0.05 to 20): each clip where the paper puts it."""
    rng = np.random.default_rng(1)
    trajs = [make_traj(rng, n, rho_spread=1.5) for n in (9, 5, 12)]
    rhos = np.exp(np.concatenate([t.log_rhos for t in trajs]))
    assert (rhos > 2.5).any() and (rhos < 0.5).any()
    rows, where = rllib_layout(trajs, 5, rng)
    reference = {
        "rho_bar": clips["clip_rho_threshold"] or np.inf,
        "c_bar": clips["clip_c_threshold"] or np.inf,
        "pg_bar": clips["clip_pg_rho_threshold"] or np.inf,
    }
    assert max_error(ours(rows, **clips), trajs, where, **reference) < 1e-9
    # and the clips matter: the same batch unclipped (or clipped) gives other numbers
    other = {k: (None if v is not None else 1.0) for k, v in clips.items()}
    assert max_error(ours(rows, **other), trajs, where, **reference) > 1e-3


def test_stateless_layout_episodes_back_to_back():
    """A stateless module's batch is flat (episodes back to back, each with its bootstrap step):
    :func:`batch_rows` cuts it into rows of the fragment length, which need not match episodes."""
    rng = np.random.default_rng(2)
    trajs = [make_traj(rng, n, term) for n, term in ((20, False), (4, True), (14, False))]
    flat, where_flat = flat_layout(trajs, rng)
    rows = {k: batch_rows(torch.as_tensor(v), 20, stateful=False).numpy() for k, v in flat.items()}
    assert rows["mask"].shape == (3, 20)
    where = [[divmod(i, 20) for i in steps] for steps in where_flat]
    assert max_error(ours(rows), trajs, where) < 1e-10


def test_zero_discount_everywhere_is_one_step_and_gamma_one_sums_rewards():
    rng = np.random.default_rng(3)
    trajs = [make_traj(rng, 6, rho_spread=0.0)]  # on-policy: rho = c = 1
    rows, where = rllib_layout(trajs, 8, rng)
    vs, _ = ours(rows, gamma=0.0)
    np.testing.assert_allclose(gather(vs, where)[0], trajs[0].rewards)
    vs, _ = ours(rows, gamma=1.0)
    want = np.cumsum(trajs[0].rewards[::-1])[::-1] + trajs[0].bootstrap
    np.testing.assert_allclose(gather(vs, where)[0], want)


# --- the learner's loss -----------------------------------------------------------------------


def _fake_learner(values, entropy_coeff):
    logged = {}
    return SimpleNamespace(
        module={"p": StandInModule(values)},
        entropy_coeff_schedulers_per_module={
            "p": SimpleNamespace(get_current_value=lambda: entropy_coeff)
        },
        metrics=SimpleNamespace(
            log_dict=lambda d, key, window: logged.update(d, _key=key, _window=window)
        ),
        logged=logged,
    )


@pytest.mark.parametrize("stateful", [True, False], ids=["stateful", "stateless"])
def test_learner_loss_is_the_impala_loss_on_these_targets(stateful):
    """The loss terms of RLlib's IMPALA on the reference targets, for both batch shapes."""
    rng = np.random.default_rng(4)
    trajs = [make_traj(rng, n, term) for n, term in ((9, False), (3, True), (6, False))]
    if stateful:
        rows, where = rllib_layout(trajs, 5, rng)
    else:  # one row of the flat batch
        flat, where_flat = flat_layout(trajs, rng)
        rows, where = (
            {k: v[None] for k, v in flat.items()},
            [[(0, i) for i in w] for w in where_flat],
        )
    b, t = rows["mask"].shape
    logits = torch.as_tensor(rng.normal(size=(b, t, 3)), dtype=torch.float32)
    actions = torch.as_tensor(rng.integers(3, size=(b, t)))
    dist = TorchCategorical.from_logits(logits)
    # behaviour log-probs such that target - behaviour = the rows' log_rhos
    behaviour = dist.logp(actions) - torch.as_tensor(rows["log_rhos"], dtype=torch.float32)
    batch = loss_batch(rows, actions, behaviour, stateful)
    values = torch.as_tensor(rows["values"], dtype=torch.float32)
    fwd_out = {Columns.ACTION_DIST_INPUTS: logits}
    if not stateful:  # flat
        batch = {k: v[0] for k, v in batch.items()}
        values, fwd_out = values[0], {Columns.ACTION_DIST_INPUTS: logits[0]}
    config = SimpleNamespace(
        learner_config_dict={"vtrace": "bootstrap"},
        gamma=GAMMA,
        vtrace_clip_rho_threshold=1.0,
        vtrace_clip_pg_rho_threshold=1.0,
        vf_loss_coeff=0.25,
        get_rollout_fragment_length=lambda: 8,
    )
    fake = _fake_learner(values, entropy_coeff=0.01)
    loss = BootstrapVTraceLearner.compute_loss_for_module(
        fake, module_id="p", config=config, batch=batch, fwd_out=fwd_out
    )
    # The reference loss, step by step over the real steps.
    target_logp, entropy = dist.logp(actions).double(), dist.entropy().double()
    pi, vf, ent, n = 0.0, 0.0, 0.0, 0
    for traj, steps in zip(trajs, where, strict=True):
        vs, adv = textbook(traj)
        for (r, c), v_s, a_s, v in zip(steps, vs, adv, traj.values, strict=True):
            pi -= float(target_logp[r, c]) * a_s
            vf += 0.5 * (v - v_s) ** 2
            ent -= float(entropy[r, c])
            n += 1
    want = pi / n + 0.25 * vf / n + 0.01 * ent / n
    assert float(loss) == pytest.approx(want, rel=1e-5, abs=1e-5)
    assert (fake.logged.pop("_key"), fake.logged.pop("_window")) == ("p", 1)
    logged = {k: float(v) for k, v in fake.logged.items()}
    assert logged["mean_vf_loss"] == pytest.approx(vf / n, rel=1e-5)
    assert logged["vf_loss"] == pytest.approx(vf, rel=1e-5)
    assert logged["pi_loss"] == pytest.approx(pi, rel=1e-4, abs=1e-5)
    assert logged["mean_pi_loss"] == pytest.approx(pi / n, rel=1e-4, abs=1e-5)
    assert logged["entropy"] == pytest.approx(-ent / n, rel=1e-5)
    all_vs = np.concatenate([textbook(traj)[0] for traj in trajs])
    all_values = np.concatenate([traj.values for traj in trajs])
    assert logged["mean_vtrace_target"] == pytest.approx(all_vs.mean(), rel=1e-4, abs=1e-5)
    assert logged["mean_value"] == pytest.approx(all_values.mean(), rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("use_kl_loss", [True, False])
def test_appo_learner_loss_is_the_appo_loss_on_these_targets(use_kl_loss):
    """APPO's loss (RLlib's, IMPACT): V-trace of the target policy against the behaviour policy,
    a clipped surrogate of the current policy with the behaviour-to-target ratio clipped to
    [0, 2], the value loss, entropy and KL(target || current), written out step by step."""
    from rmc_agents.rl.vtrace import BootstrapVTraceAPPOLearner

    rng = np.random.default_rng(8)
    trajs = [make_traj(rng, n, term) for n, term in ((9, False), (3, True), (6, False))]
    rows, where = rllib_layout(trajs, 5, rng)
    b, t = rows["mask"].shape
    target_logits = torch.as_tensor(rng.normal(size=(b, t, 3)), dtype=torch.float32)
    logits = torch.as_tensor(rng.normal(size=(b, t, 3)), dtype=torch.float32)
    actions = torch.as_tensor(rng.integers(3, size=(b, t)))
    old = TorchCategorical.from_logits(target_logits)
    new = TorchCategorical.from_logits(logits)
    # behaviour log-probs such that target-policy - behaviour = the rows' log_rhos
    behaviour = old.logp(actions) - torch.as_tensor(rows["log_rhos"], dtype=torch.float32)
    batch = loss_batch(rows, actions, behaviour)
    values = torch.as_tensor(rows["values"], dtype=torch.float32)
    logged = {}
    fake = SimpleNamespace(
        module={"p": StandInModule(values, target_logits)},
        entropy_coeff_schedulers_per_module={"p": SimpleNamespace(get_current_value=lambda: 0.02)},
        curr_kl_coeffs_per_module={"p": torch.tensor(0.3)},
        metrics=SimpleNamespace(
            log_dict=lambda d, key, window: logged.update(d, _key=key, _window=window)
        ),
    )
    clip = 0.2
    config = SimpleNamespace(
        learner_config_dict={},
        gamma=GAMMA,
        vtrace_clip_rho_threshold=1.0,
        vtrace_clip_pg_rho_threshold=1.0,
        vf_loss_coeff=0.5,
        clip_param=clip,
        use_kl_loss=use_kl_loss,
        get_rollout_fragment_length=lambda: 8,
    )
    loss = BootstrapVTraceAPPOLearner.compute_loss_for_module(
        fake,
        module_id="p",
        config=config,
        batch=batch,
        fwd_out={Columns.ACTION_DIST_INPUTS: logits},
    )
    new_logp, old_logp = new.logp(actions).double(), old.logp(actions).double()
    entropy, kl = new.entropy().double(), old.kl(new).double()
    beh = behaviour.double()
    pi, vf, ent, kls, ratios, n = 0.0, 0.0, 0.0, 0.0, [], 0
    for traj, steps in zip(trajs, where, strict=True):
        vs, adv = textbook(traj)
        for (r, c), v_s, a_s, v in zip(steps, vs, adv, traj.values, strict=True):
            is_ratio = min(max(float(torch.exp(beh[r, c] - old_logp[r, c])), 0.0), 2.0)
            ratio = is_ratio * float(torch.exp(new_logp[r, c] - beh[r, c]))
            pi -= min(a_s * ratio, a_s * min(max(ratio, 1 - clip), 1 + clip))
            vf += 0.5 * (v - v_s) ** 2
            ent -= float(entropy[r, c])
            kls += float(kl[r, c])
            ratios.append(is_ratio)
            n += 1
    mean_kl = kls / n if use_kl_loss else 0.0
    want = pi / n + 0.5 * vf / n + 0.02 * ent / n + 0.3 * mean_kl
    assert float(loss) == pytest.approx(want, rel=1e-4, abs=1e-5)
    assert (logged.pop("_key"), logged.pop("_window")) == ("p", 1)
    got = {k: float(v) for k, v in logged.items()}
    assert got["mean_pi_loss"] == pytest.approx(pi / n, rel=1e-4, abs=1e-5)
    assert got["mean_vf_loss"] == pytest.approx(vf / n, rel=1e-5)
    assert got["entropy"] == pytest.approx(-ent / n, rel=1e-5)
    assert got["mean_kl_loss"] == pytest.approx(mean_kl, rel=1e-4, abs=1e-6)
    assert got["curr_kl_coeff"] == pytest.approx(0.3)
    assert got["mean_IS"] == pytest.approx(np.mean(ratios), rel=1e-5)
    assert got["var_IS"] == pytest.approx(np.var(ratios), rel=1e-4, abs=1e-7)
    all_vs = np.concatenate([textbook(traj)[0] for traj in trajs])
    assert got["mean_vtrace_target"] == pytest.approx(all_vs.mean(), rel=1e-4, abs=1e-5)
    assert got["mean_value"] == pytest.approx(
        np.concatenate([traj.values for traj in trajs]).mean(), rel=1e-4, abs=1e-5
    )


def test_unknown_vtrace_mode_is_refused():
    fake = _fake_learner(torch.zeros(2, 3), 0.0)
    config = SimpleNamespace(learner_config_dict={"vtrace": "tree"})
    with pytest.raises(ValueError, match="training.vtrace must be one of"):
        BootstrapVTraceLearner.compute_loss_for_module(
            fake, module_id="p", config=config, batch={}, fwd_out={}
        )


# --- RLlib's real learner connector lays batches out as rllib_layout says ----------------------


@pytest.mark.parametrize("core", ["lstm", "mlp"])
def test_rllib_lays_batches_out_as_the_reference_does(core):
    """Episodes sampled by a real EnvRunner (cuts, terminations, multi-chunk fragments) through
    IMPALA's learner connector: the batch's mask, rewards and terminations are exactly
    :func:`rllib_layout`'s, and V-trace on the batch equals the textbook per fragment, with the
    module's own values and log-probs."""
    from rmc_agents.rl.settings import ModelSettings, RunSettings

    model = ModelSettings(core=core, hidden_size=16, max_seq_len=4)
    run = RunSettings(env="CartPole-v1", algo="impala", model=model, seed=5)
    run.training.rollout_fragment_length = 10
    run.resources.num_env_runners = 0
    run.resources.envs_per_runner = 3
    batch, info, module = sample_learner_batch(run)
    lengths = [n for n, _, _ in info]
    terminated = [t for _, t, _ in info]
    rewards = [r for _, _, r in info]
    assert sum(terminated) >= 2
    assert sum(not t for t in terminated) >= 2  # fragments cut by the EnvRunner
    stateful = core != "mlp"
    frag = run.training.rollout_fragment_length

    def rows_of(key):
        return batch_rows(torch.as_tensor(batch[key]), frag, stateful)

    with torch.no_grad():
        out = module.forward_train(batch)
        values = batch_rows(
            module.compute_values(batch, out.get(Columns.EMBEDDINGS)), frag, stateful
        )
        logp = batch_rows(
            module.get_train_action_dist_cls()
            .from_logits(out[Columns.ACTION_DIST_INPUTS])
            .logp(torch.as_tensor(batch[Columns.ACTIONS])),
            frag,
            stateful,
        )
    # The layout: where each fragment's steps and bootstrap step landed.
    trajs = [
        Traj(rewards=r, values=np.zeros(n), bootstrap=0.0, log_rhos=np.zeros(n), terminated=t)
        for r, n, t in zip(rewards, lengths, terminated, strict=True)
    ]
    if stateful:
        layout, where = rllib_layout(trajs, model.max_seq_len, np.random.default_rng(0))
    else:
        flat, where_flat = flat_layout(trajs, np.random.default_rng(0))
        layout = {k: batch_rows(torch.as_tensor(v), frag, False).numpy() for k, v in flat.items()}
        where = [[divmod(i, frag) for i in steps] for steps in where_flat]
    np.testing.assert_array_equal(rows_of(Columns.LOSS_MASK).numpy(), layout["mask"])
    np.testing.assert_array_equal(rows_of(Columns.TERMINATEDS).numpy(), layout["terminated"])
    np.testing.assert_allclose(rows_of(Columns.REWARDS).numpy(), layout["rewards"])
    # V-trace on the real batch == the textbook per fragment (the bootstrap value is the
    # module's value of the step after each fragment).
    log_rhos = (logp - rows_of(Columns.ACTION_LOGP)).double()
    vs, adv = vtrace_rows(
        log_rhos=log_rhos,
        values=values.double(),
        rewards=rows_of(Columns.REWARDS).double(),
        discounts=0.99 * (1.0 - rows_of(Columns.TERMINATEDS).double()),
        mask=rows_of(Columns.LOSS_MASK),
    )
    v_np, lr_np = values.double().numpy(), log_rhos.numpy()
    for traj, steps in zip(trajs, where, strict=True):
        n = len(steps)
        r_b, c_b = steps[-1]
        b_row, b_col = (r_b, c_b + 1) if c_b + 1 < v_np.shape[1] else (r_b + 1, 0)
        traj.values = np.array([v_np[r, c] for r, c in steps])
        traj.log_rhos = np.array([lr_np[r, c] for r, c in steps])
        traj.bootstrap = float(v_np[b_row, b_col])
        want_vs, want_adv = textbook(traj, gamma=0.99)
        got_vs = np.array([vs[r, c].item() for r, c in steps])
        got_adv = np.array([adv[r, c].item() for r, c in steps])
        np.testing.assert_allclose(got_vs, want_vs, atol=1e-5)
        np.testing.assert_allclose(got_adv, want_adv, atol=1e-5)
        assert n == len(traj.rewards)


def test_reproduction_script_shows_the_stock_defect():
    """``bench/vtrace_check.py``, the one-command reproduction for an upstream report."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "bench" / "vtrace_check.py"
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=True
    ).stdout
    assert "this project == textbook: True" in out
    worst = float(out.rsplit("RLlib's largest error:", 1)[1])
    assert worst > 0.9


@pytest.mark.parametrize("learner", ["impala", "appo"])
def test_the_rllib_mode_hands_the_whole_loss_to_rllibs_own(monkeypatch, learner):
    """``training.vtrace: rllib`` (for comparisons): RLlib's stock loss, called with the same
    arguments, its result returned as it is."""
    from ray.rllib.algorithms.appo.torch.appo_torch_learner import APPOTorchLearner
    from ray.rllib.algorithms.impala.torch.impala_torch_learner import IMPALATorchLearner

    from rmc_agents.rl.vtrace import BootstrapVTraceAPPOLearner

    ours, stock = {
        "impala": (BootstrapVTraceLearner, IMPALATorchLearner),
        "appo": (BootstrapVTraceAPPOLearner, APPOTorchLearner),
    }[learner]
    calls = []
    sentinel = torch.tensor(12.5)

    def stock_loss(self, *, module_id, config, batch, fwd_out):
        calls.append((self, module_id, config, batch, fwd_out))
        return sentinel

    monkeypatch.setattr(stock, "compute_loss_for_module", stock_loss)
    config = SimpleNamespace(learner_config_dict={"vtrace": "rllib"})
    batch, fwd_out, me = {Columns.LOSS_MASK: torch.ones(2, 3)}, {"x": 1}, object.__new__(ours)
    got = ours.compute_loss_for_module(
        me, module_id="p", config=config, batch=batch, fwd_out=fwd_out
    )
    assert got is sentinel
    assert len(calls) == 1 and calls[0][0] is me and calls[0][1] == "p"
    assert calls[0][2] is config and calls[0][3] is batch and calls[0][4] is fwd_out


def test_rewards_are_scaled_in_the_targets():
    """``reward_scale`` multiplies every reward before V-trace: the targets are the paper's on the
    scaled rewards (the values are the module's, already on that scale)."""
    import dataclasses

    rng = np.random.default_rng(11)
    trajs = [make_traj(rng, n, term) for n, term in ((7, False), (4, True))]
    rows, where = rllib_layout(trajs, 5, rng)
    b, t = rows["mask"].shape
    logits = torch.as_tensor(rng.normal(size=(b, t, 3)), dtype=torch.float32)
    actions = torch.as_tensor(rng.integers(3, size=(b, t)))
    dist = TorchCategorical.from_logits(logits)
    behaviour = dist.logp(actions) - torch.as_tensor(rows["log_rhos"], dtype=torch.float32)
    batch = loss_batch(rows, actions, behaviour, True)
    values = torch.as_tensor(rows["values"], dtype=torch.float32)
    config = SimpleNamespace(
        learner_config_dict={"vtrace": "bootstrap", "reward_scale": 0.25},
        gamma=GAMMA,
        vtrace_clip_rho_threshold=1.0,
        vtrace_clip_pg_rho_threshold=1.0,
        vf_loss_coeff=0.5,
        get_rollout_fragment_length=lambda: 8,
    )
    fake = _fake_learner(values, entropy_coeff=0.0)
    BootstrapVTraceLearner.compute_loss_for_module(
        fake,
        module_id="p",
        config=config,
        batch=batch,
        fwd_out={Columns.ACTION_DIST_INPUTS: logits},
    )
    scaled = [dataclasses.replace(tr, rewards=tr.rewards * 0.25) for tr in trajs]
    want = np.concatenate([textbook(tr)[0] for tr in scaled]).mean()
    assert float(fake.logged["mean_vtrace_target"]) == pytest.approx(want, rel=1e-4, abs=1e-5)
    unscaled = np.concatenate([textbook(tr)[0] for tr in trajs]).mean()
    assert abs(want - unscaled) > 1e-2  # (the scale shows in the targets)

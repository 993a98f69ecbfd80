"""Bad input to ``train_agent.py``: one ``error:`` line, a non-zero exit, no file touched.

One test per row of the README's bad-input table. Each runs the CLI as a user would (a
subprocess), in a folder that holds an earlier run and some other files, and checks that the
folder is byte-for-byte and mtime-for-mtime as it was, and that nothing new appeared. Errors that
need no cluster are caught before Ray starts (the tests assert the run took well under the ~10 s
that starting Ray costs here, on a loaded 2-core machine: a generous bound).
"""

from __future__ import annotations

import json
import os
import pickle
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from rmc_agents.rl.checkpoints import MODULE_STATE

REPO = Path(__file__).resolve().parents[2]
#: Upper bound (s) for a failure that must come before Ray starts: Python + torch imports only.
BEFORE_RAY_S = 30.0

RUN_CONFIG = """\
env: CartPole-v1
model: {core: gru, hidden_size: 16}
resources: {num_env_runners: 1, envs_per_runner: 2, num_cpus: 2}
"""


def make_run_dir(path: Path, checkpoint: bool = True) -> Path:
    """A run directory as the trainer leaves it (small fake checkpoint, real layout)."""
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(RUN_CONFIG)
    (path / "progress.csv").write_text("iteration,env_steps\n1,100\n")
    (path / "summary.json").write_text(json.dumps({"env_steps": 100}))
    if checkpoint:
        ckpt = path / "checkpoint"
        (ckpt / MODULE_STATE).parent.mkdir(parents=True)
        (ckpt / "rllib_checkpoint.json").write_text(json.dumps({"checkpoint_version": "2.1"}))
        (ckpt / "algorithm_state.pkl").write_bytes(pickle.dumps({"training_iteration": 1}))
        (ckpt / "trainer_progress.json").write_text(json.dumps({"env_steps": 100}))
        (ckpt / MODULE_STATE).write_bytes(pickle.dumps({"w": np.zeros(3)}))
    return path


def snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every file and folder under ``root``: modification time and contents."""
    state = {}
    for p in sorted(root.rglob("*")):
        st = p.stat()
        state[str(p.relative_to(root))] = (st.st_mtime_ns, p.read_bytes() if p.is_file() else b"")
    return state


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Each case: (id, setup(tmp) -> (args, extra env), pattern of the error line).
Setup = Callable[[Path], tuple[list[str], dict[str, str]]]


def _config(text: str) -> Setup:
    def setup(tmp: Path) -> tuple[list[str], dict[str, str]]:
        (tmp / "bad.yaml").write_text(text)
        return ["--config", str(tmp / "bad.yaml"), "--output", str(tmp / "new")], {}

    return setup


def _env(spec: str, **env: str) -> Setup:
    return lambda tmp: (["--env", spec, "--output", str(tmp / "new")], dict(env))


def _broken_module(tmp: Path) -> tuple[list[str], dict[str, str]]:
    (tmp / "lib").mkdir()
    (tmp / "lib" / "broken_envs.py").write_text("raise RuntimeError('boom while importing')\n")
    return ["--env", "broken_envs:Env", "--output", str(tmp / "new")], {
        "PYTHONPATH": str(tmp / "lib")
    }


def _resume(damage: Callable[[Path], None] | None = None, checkpoint: bool = True) -> Setup:
    def setup(tmp: Path) -> tuple[list[str], dict[str, str]]:
        run = tmp / "victim"
        if damage is not None:
            damage(run)
        return ["--resume", "--output", str(run)], {}

    setup.checkpoint = checkpoint  # type: ignore[attr-defined]
    return setup


def _truncate_weights(run: Path) -> None:
    path = run / "checkpoint" / MODULE_STATE
    path.write_bytes(path.read_bytes()[:20])


def _drop_algorithm_state(run: Path) -> None:
    (run / "checkpoint" / "algorithm_state.pkl").unlink()


def _break_run_config(run: Path) -> None:
    (run / "config.yaml").write_text("model: [unclosed\n")


CASES: list[tuple[str, Setup, str]] = [
    # id, setup, pattern of the error line
    ("unknown_env_id", _env("NoSuchGame-v9"), r"unknown environment 'NoSuchGame-v9'"),
    (
        "env_id_typo",
        _env("CartPole-v9"),
        r"unknown environment 'CartPole-v9'.*did you mean .*CartPole-v1",
    ),
    (
        "module_not_found",
        _env("no_such_pkg.envs:Thing"),
        r"cannot import module 'no_such_pkg.envs'",
    ),
    (
        "module_raises_on_import",
        _broken_module,
        r"cannot import module 'broken_envs'.*boom while importing",
    ),
    ("not_an_env_class", _env("json:JSONDecoder"), r"not a gymnasium.Env subclass"),
    (
        "unsupported_observation_space",
        _env("rmc_agents.rl.fault_envs:TextObservation"),
        r"cannot encode its observation space.*Text",
    ),
    (
        "unsupported_action_space",
        _env("rmc_agents.rl.fault_envs:MatrixAction"),
        r"action space Box.*\(2, 2\).* not supported",
    ),
    (
        "env_kwargs_rejected",
        _config("env: CartPole-v1\nenv_kwargs: {no_such_arg: 1}\n"),
        r"cannot build env 'CartPole-v1' with env_kwargs .*no_such_arg",
    ),
    (
        "config_unknown_key",
        _config("model: {mem_slot: 4}\n"),
        r"unknown config key 'model.mem_slot'",
    ),
    (
        "config_wrong_type",
        _config("model: {mem_slots: four}\n"),
        r"'model.mem_slots' must be an integer, got 'four'",
    ),
    ("config_impossible_value", _config("training: {gamma: 1.5}\n"), r"gamma must be in \[0, 1\]"),
    (
        "config_lr_factors_not_from_frame_0",
        _config("training: {lr_factors: [[1000, 1.0], [2000, 2.0]]}\n"),
        r"training.lr_factors must start at frame 0, got 1000",
    ),
    ("config_not_a_mapping", _config("- just\n- a list\n"), r"top level must be a mapping"),
    ("config_not_yaml", _config("model: [unclosed\n"), r"not valid YAML"),
    (
        "flag_impossible_value",
        lambda tmp: (
            ["--env", "CartPole-v1", "--num-env-runners", "-1", "--output", str(tmp / "new")],
            {},
        ),
        r"num_env_runners must be >= 0, got -1",
    ),
    (
        "output_holds_another_run",
        lambda tmp: (["--env", "CartPole-v1", "--output", str(tmp / "victim")], {}),
        r"holds another run; use --resume to continue it or --overwrite to replace it",
    ),
    (
        "output_holds_other_files",
        lambda tmp: (["--env", "CartPole-v1", "--output", str(tmp)], {}),
        r"is not empty and holds no run",
    ),
    (
        "resume_and_overwrite",
        lambda tmp: (["--resume", "--overwrite", "--output", str(tmp / "victim")], {}),
        r"--resume and --overwrite exclude each other",
    ),
    (
        "resume_without_a_run",
        lambda tmp: (["--resume", "--output", str(tmp / "notes")], {}),
        r"--resume: no run in",
    ),
    (
        "resume_without_checkpoint",
        _resume(checkpoint=False),
        r"--resume: no checkpoint found in",
    ),
    (
        "resume_truncated_checkpoint",
        _resume(_truncate_weights),
        r"checkpoint .* is damaged: .*module_state.pkl cannot be read",
    ),
    (
        "resume_incomplete_checkpoint",
        _resume(_drop_algorithm_state),
        r"checkpoint .* is incomplete: algorithm_state.pkl is missing",
    ),
    ("resume_corrupt_run_config", _resume(_break_run_config), r"config.yaml: not valid YAML"),
    (
        "ray_address_not_answering",
        lambda tmp: (
            ["--env", "CartPole-v1", "--address", f"127.0.0.1:{free_port()}"]
            + ["--output", str(tmp / "new")],
            {},
        ),
        r"no Ray cluster answers at 127.0.0.1:\d+ \(.*\)",
    ),
    (
        "ray_address_malformed",
        lambda tmp: (
            ["--env", "CartPole-v1", "--address", "headnode", "--output", str(tmp / "new")],
            {},
        ),
        r"--address 'headnode' is not HOST:PORT",
    ),
    (
        "ray_address_from_environment",
        lambda tmp: (
            ["--env", "CartPole-v1", "--output", str(tmp / "new")],
            {"RAY_ADDRESS": f"127.0.0.1:{free_port()}"},
        ),
        r"no Ray cluster answers at 127.0.0.1:\d+",
    ),
]


@pytest.mark.parametrize("setup, pattern", [pytest.param(s, p, id=i) for i, s, p in CASES])
def test_bad_input_gives_one_clear_error_and_touches_nothing(tmp_path, setup, pattern):
    import re

    make_run_dir(tmp_path / "victim", checkpoint=getattr(setup, "checkpoint", True))
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("not a run\n")
    args, extra_env = setup(tmp_path)
    before = snapshot(tmp_path)
    time.sleep(0.01)  # so that any rewrite would show in the mtimes

    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(SDL_AUDIODRIVER="dummy", RAY_USAGE_STATS_ENABLED="0", **extra_env)
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(REPO / "train_agent.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=env,
    )
    took = time.monotonic() - start

    assert proc.returncode == 2, proc.stdout[-1000:] + proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr[-3000:]
    assert re.search(pattern, errors[0]), errors[0]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "Started a local Ray instance" not in proc.stderr
    assert took < BEFORE_RAY_S, f"took {took:.1f} s: it should fail before starting Ray"
    assert snapshot(tmp_path) == before  # nothing written, changed or created

"""The README's and docs' commands use flags and files that exist.

Every shell block (and every inline ``python ...`` span) of ``README.md`` and ``docs/*.md`` is read;
each command of this project's programs (``train_agent.py``, ``python -m rmc_agents.rollout``,
``python -m rmc_agents.supervised TASK``, ``python -m minipacman.play``, ``bench/*.py``)
must name only flags that the program's ``--help`` lists, and every repository path it names
(``configs/...``, ``bench/...``, ``pretrained/...``) must exist. Outputs (``runs/``, ``results/``,
``--output``/``--out``/``--video`` values) are what the commands make, so they are not checked.
"""

from __future__ import annotations

import functools
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
OUTPUT_FLAGS = {"--output", "--out", "--video"}
REPO_DIRS = ("configs/", "bench/", "pretrained/", "docs/", "tests/", "envs/", "rmc_agents/")


def _commands() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        text = page.read_text()
        chunks = re.findall(r"```(?:bash|sh|console)?\n(.*?)```", text, re.S)
        chunks += [span for span in re.findall(r"`([^`\n]+)`", text) if span.startswith("python")]
        for chunk in chunks:
            for line in chunk.replace("\\\n", " ").splitlines():
                for part in line.split("#")[0].split("&&"):
                    part = part.strip()
                    if part.startswith(("python ", "python3 ")):
                        found.append((page.name, part))
    return found


def _program(argv: list[str]) -> tuple[list[str], list[str]] | None:
    """(the argv that runs the program, its arguments) for this project's programs, else None."""
    if len(argv) > 2 and argv[1] == "-m":
        module = argv[2]
        if module == "rmc_agents.supervised" and len(argv) > 3 and not argv[3].startswith("-"):
            return ["-m", module, argv[3]], argv[4:]
        if module in (
            "rmc_agents.rollout",
            "rmc_agents.tune",
            "minipacman.play",
            "rmc_agents.supervised",
        ):
            return ["-m", module], argv[3:]
        return None
    if len(argv) > 1 and (argv[1] == "train_agent.py" or argv[1].startswith("bench/")):
        return [argv[1]], argv[2:]
    return None


@functools.cache
def _known_flags(program: tuple[str, ...]) -> frozenset[str]:
    out = subprocess.run(
        [sys.executable, *program, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert out.returncode == 0, f"{' '.join(program)} --help failed: {out.stderr[-2000:]}"
    return frozenset(re.findall(r"(--[a-z][a-z0-9-]*)", out.stdout))


COMMANDS = _commands()


def test_the_pages_have_commands():
    assert len(COMMANDS) > 30
    assert any("train_agent.py" in c for _, c in COMMANDS)


@pytest.mark.parametrize("page, command", COMMANDS, ids=[f"{p}:{c[:60]}" for p, c in COMMANDS])
def test_command_uses_existing_flags_and_files(page, command):
    argv = shlex.split(command)
    program = _program(argv)
    if program is None:
        return  # another tool's command (pip, pytest, ray): not this project's to check
    run, args = program
    script = run[-1] if run[0] != "-m" else None
    if script is not None:
        assert (REPO / script).is_file(), f"{page}: {script} does not exist"
    known = _known_flags(tuple(run))
    previous = ""
    for arg in args:
        if arg.startswith("--"):
            flag = arg.split("=", 1)[0]
            assert flag in known, f"{page}: `{command}` uses {flag}, not a flag of {' '.join(run)}"
        elif previous not in OUTPUT_FLAGS and arg.startswith(REPO_DIRS):
            for path in arg.split(":")[:1]:
                assert (REPO / path).exists(), f"{page}: `{command}` names {path}, which is missing"
        previous = arg


def _plain_torch_snippet() -> str:
    text = (REPO / "docs" / "training.md").read_text()
    section = text.split("## A trained policy in plain torch (without starting Ray)", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_plain_torch_inference_snippet_runs(monkeypatch, capsys):
    """docs/training.md's "A trained policy in plain torch" block, run as written (it loads a
    shipped agent)."""
    code = _plain_torch_snippet()
    assert 'load_policy("pretrained/viewport-rmc")' in code
    monkeypatch.chdir(REPO)
    exec(compile(code, "docs/training.md", "exec"), {})
    score = float(capsys.readouterr().out.strip().splitlines()[-1])
    assert score >= 0


def test_plain_torch_snippet_acts_on_a_stateless_policy(monkeypatch, tmp_path, capsys):
    """The same block with an ``mlp`` policy (no state, no time dimension) takes the action its
    logits favour, not action 0 whatever they say."""
    import gymnasium as gym
    import torch
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from rmc_agents.policy_file import save_policy
    from rmc_agents.rl.spec import policy_spec

    spec = policy_spec("mlp", hidden_size=8)
    env = gym.make("MiniPacman-Viewport-v0")
    module = RLModuleSpec(
        module_class=spec.module_class,
        observation_space=env.observation_space,
        action_space=env.action_space,
        model_config=spec.model_config,
    ).build()
    with torch.no_grad():
        module.pi.bias.copy_(torch.tensor([0.0, 0.0, 0.0, 50.0, 0.0]))  # action 3, always
    save_policy(module, tmp_path / "mlp", env="MiniPacman-Viewport-v0")
    taken = []
    make = gym.make

    def recording_make(*args, **kwargs):
        made = make(*args, **kwargs)
        step = made.step
        made.step = lambda action: (taken.append(action), step(action))[1]
        return made

    monkeypatch.setattr(gym, "make", recording_make)
    code = _plain_torch_snippet().replace("pretrained/viewport-rmc", str(tmp_path / "mlp"))
    exec(compile(code, "docs/training.md", "exec"), {})
    assert taken and set(taken) == {3}, taken[:10]


# --- choices in --help and in the docs ---------------------------------------------------------

CHOICE_LIST = re.compile(r"(--(?:model|algo))[ =]((?:[a-z][a-z0-9-]*\\?\|)+[a-z][a-z0-9-]*)")


@functools.cache
def _choices(program: tuple[str, ...], flag: str) -> frozenset[str]:
    out = subprocess.run(
        [sys.executable, *program, "--help"], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    text = " ".join(out.stdout.split())  # help lines unwrapped
    found = re.search(re.escape(flag) + r" \{([^}]+)\}", text)  # argparse's choices
    if found:
        return frozenset(found.group(1).split(","))
    found = re.search(re.escape(flag) + r" [A-Z_]+ one of ([a-z0-9, -]+?) \(", text)  # in words
    assert found, f"{' '.join(program)} --help lists no choices for {flag}"
    return frozenset(found.group(1).replace(" ", "").split(","))


def _choice_lists() -> list[tuple[str, str, str, list[str], bool]]:
    """(page, program, flag, values, complete) of every ``--model a|b|c`` / ``--algo a|b|c`` list in
    the README and docs (the changelog aside: it records what was). ``complete``: a list that
    stands for all the choices (a table row naming the flag, a usage line's ``[--flag ...]``, a
    comment ``# --flag ...``); others (a few examples) need only name existing choices."""
    found = []
    for page in PAGES:
        if page.name == "changes.md":
            continue
        for line in page.read_text().splitlines():
            for match in CHOICE_LIST.finditer(line):
                flag, values = match.group(1), match.group(2).replace("\\", "").split("|")
                before = line[: match.start()]
                complete = before.endswith(("| `", "[", "# "))
                supervised = page.name == "supervised.md" or "rmc_agents.supervised" in line
                program = "rmc_agents.supervised" if supervised else "train_agent.py"
                found.append((page.name, program, flag, values, complete))
    return found


CHOICE_LISTS = _choice_lists()


def test_the_docs_list_choices():
    programs = {(program, flag) for _, program, flag, _, complete in CHOICE_LISTS if complete}
    assert {("train_agent.py", "--model"), ("train_agent.py", "--algo")} <= programs
    assert ("rmc_agents.supervised", "--model") in programs


@pytest.mark.parametrize(
    "page, program, flag, values, complete",
    CHOICE_LISTS,
    ids=[f"{p}:{f}={'|'.join(v)}" for p, _, f, v, _ in CHOICE_LISTS],
)
def test_docs_choices_match_help(page, program, flag, values, complete):
    """The choices a page lists for ``--model`` / ``--algo`` are those ``--help`` offers: all of
    them where the page stands for the whole list."""
    run = ("-m", program) if program == "rmc_agents.supervised" else (program,)
    choices = _choices(run, flag)
    assert set(values) <= choices, f"{page}: {flag} lists {values}; --help offers {sorted(choices)}"
    if complete:
        assert set(values) == choices, f"{page}: {flag} lists {values}, --help {sorted(choices)}"

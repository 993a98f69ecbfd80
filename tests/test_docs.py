"""The README's and docs' commands use flags and files that exist.

Every shell block (and every inline ``python ...`` span) of ``README.md`` and ``docs/*.md`` is read;
each command of this project's programs (``train_agent.py``, ``python -m rmc_agents.rollout``,
``python -m rmc_agents.supervised TASK``, ``python -m envs.minipacman.play``, ``bench/*.py``)
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
            "envs.minipacman.play",
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


def test_plain_torch_inference_snippet_runs(monkeypatch, capsys):
    """docs/training.md's "A trained policy in plain torch (no Ray)" block, run as written, on a
    shipped agent in place of the run directory it names."""
    text = (REPO / "docs" / "training.md").read_text()
    section = text.split("## A trained policy in plain torch (no Ray)", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    run_module = (
        "runs/MiniPacman-Viewport-v0-rmc/checkpoint/learner_group/learner/rl_module/default_policy"
    )
    assert run_module in code
    code = code.replace(run_module, str(REPO / "pretrained" / "viewport-rmc" / "policy"))
    monkeypatch.chdir(REPO)
    exec(compile(code, "docs/training.md", "exec"), {})
    score = float(capsys.readouterr().out.strip().splitlines()[-1])
    assert score >= 0

"""Mutation testing: how many one-line changes to the modules where a silent error costs most do
the tests catch? (mutmut; not part of CI: minutes to an hour per module on 2 CPUs.)

For each target module, the repository's tracked files are copied to a scratch folder, mutmut is
configured there to mutate only that module and to run only the tests that guard it, and the
outcome of every mutant is read back: killed (a test failed), survived (every test passed),
timeout, or other (mutmut could not run it, e.g. a mutant that hangs at import). The kill rate is
(killed + timeout) / (killed + timeout + survived + no tests: a mutant no
selected test runs counts as missed); survivors are listed with their diffs in
``<out>/<target>.survivors.txt`` to be killed by a new test or explained as equivalent.

    pip install mutmut==3.8.1
    python bench/mutation.py                          # every target, results/mutation/
    python bench/mutation.py --targets game_core,encode --max-children 2
    python bench/mutation.py --list                   # the targets and their tests

The working tree is never touched: mutants live in the scratch copy, removed afterwards unless
``--keep``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# name: (package copied into mutmut's tree, module mutated, tests that guard it)
# Each mutant runs in a process forked from one that has imported the tests (fast), except for the
# modules in FRESH_PROCESS: their caches (the map tables) or torch's threads must not be inherited.
TARGETS: dict[str, tuple[str, str, list[str]]] = {
    "game_core": (
        "minipacman",
        "minipacman/core.py",
        [
            "tests/envs/test_rules.py",
            "tests/envs/test_golden.py",
            # lanes that start levels at different steps (kills "all lanes" for a lane selection)
            "tests/envs/test_envs.py::test_vector_lanes_equal_single_envs",
        ],
    ),
    "encode": (
        "minipacman",
        "minipacman/encode.py",
        ["tests/envs/test_envs.py", "tests/envs/test_rules.py", "tests/envs/test_golden.py"],
    ),
    "maps": (
        "minipacman",
        "minipacman/maps.py",
        ["tests/envs/test_rules.py", "tests/envs/test_golden.py"],
    ),
    "relational_memory": (
        "rmc_agents",
        "rmc_agents/core/relational_memory.py",
        ["tests/core/test_relational_memory.py", "tests/core/test_core_api.py"],
    ),
    "rnn_cores": (
        "rmc_agents",
        "rmc_agents/core/rnn_cores.py",
        ["tests/core/test_rnn_cores.py", "tests/core/test_core_api.py"],
    ),
    "dnc": ("rmc_agents", "rmc_agents/core/dnc.py", ["tests/core/test_dnc.py"]),
    "vtrace": ("rmc_agents", "rmc_agents/rl/vtrace.py", ["tests/rl/test_vtrace.py"]),
    "learner_connector": (
        "rmc_agents",
        "rmc_agents/rl/learner_connector.py",
        ["tests/rl/test_learner_connector.py"],
    ),
    "learning_to_execute": (
        "rmc_agents",
        "rmc_agents/supervised/learning_to_execute.py",
        ["tests/supervised/test_learning_to_execute.py", "tests/supervised/test_cli.py"],
    ),
    "language_model": (
        "rmc_agents",
        "rmc_agents/supervised/language_model.py",
        ["tests/supervised/test_language_model.py", "tests/supervised/test_cli.py"],
    ),
}


FRESH_PROCESS = {"maps": "none", "encode": "none"}  # forkserver warm-up per target
TORCH = {
    "relational_memory",
    "rnn_cores",
    "dnc",
    "vtrace",
    "learner_connector",
    "learning_to_execute",
    "language_model",
}


def tracked_files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    return [f for f in out.split("\0") if f]


def scratch_copy(dest: Path) -> None:
    """The tracked files, with the game's package (envs/minipacman) moved to the top level, where
    mutmut finds it under its import name."""
    for rel in tracked_files():
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    (dest / "envs" / "minipacman").rename(dest / "minipacman")


FRESH_CACHES = """

# (bench/mutation.py, scratch copy only) Empty the mutated module's caches before each test, so a
# test runs the cached builders itself: mutmut runs a mutant with the tests it saw calling the
# mutated function, and a table built once per process is seen by the first test only.
@pytest.fixture(autouse=True)
def _mutation_fresh_caches():
    import importlib

    for value in vars(importlib.import_module({module!r})).values():
        if callable(getattr(value, "cache_clear", None)):
            value.cache_clear()
    yield
"""


def configure(
    tree: Path, name: str, package: str, module: str, tests: list[str], children: int
) -> None:
    """Append a [tool.mutmut] section to the scratch copy's pyproject.toml."""
    conftest = tree / "tests" / "conftest.py"
    text = conftest.read_text()
    if "import pytest" not in text:
        text = "import pytest\n" + text
    dotted = module.removesuffix(".py").replace("/", ".")
    conftest.write_text(text + FRESH_CACHES.format(module=dotted))
    section = (
        "\n[tool.mutmut]\n"
        f'source_paths = ["{package}"]\n'
        f'only_mutate = ["{module}"]\n'
        f"pytest_add_cli_args_test_selection = {json.dumps(tests)}\n"
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-x", "-q"]\n'
        f"max_children = {children}\n"
        # (mutmut copies only the mutated package and the tests; some tests run bench scripts,
        # read configs or make the Mini-Pacman envs)
        f"also_copy = {json.dumps(['bench', 'configs'] + (['minipacman'] if package != 'minipacman' else []))}\n"
    )
    if name in FRESH_PROCESS:
        # A fresh interpreter per mutant: forked from a warmed process, a worker would inherit
        # caches filled by the unmutated code (the map tables are built once per process).
        section += (
            f'process_isolation = "forkserver"\nforkserver_warmup = "{FRESH_PROCESS[name]}"\n'
        )
    elif name in TORCH:
        # torch's thread pools do not survive a fork from a process that has used them.
        section += 'process_isolation = "forkserver"\n'

    with (tree / "pyproject.toml").open("a") as f:
        f.write(section)


def read_outcomes(tree: Path, module: str) -> dict[str, str]:
    """mutant name -> mutmut's status (killed, survived, no tests, timeout, ...)."""
    from mutmut.stats import status_by_exit_code

    data = json.loads((tree / "mutants" / (module + ".meta")).read_text())
    return {name: status_by_exit_code[code] for name, code in data["exit_code_by_key"].items()}


def run_target(name: str, out: Path, children: int, keep: bool) -> dict:
    package, module, tests = TARGETS[name]
    tree = Path(tempfile.mkdtemp(prefix=f"mutation-{name}-"))
    t0 = time.monotonic()
    try:
        scratch_copy(tree)
        configure(tree, name, package, module, tests, children)
        print(f"== {name}: mutating {module}; tests {' '.join(tests)}", flush=True)
        proc = subprocess.run(
            [sys.executable, "-m", "mutmut", "run"], cwd=tree, capture_output=True, text=True
        )
        (out / f"{name}.log").write_text(proc.stdout[-20000:] + proc.stderr[-20000:])
        if not (tree / "mutants" / (module + ".meta")).is_file():
            raise RuntimeError(
                f"mutmut produced no results for {module} (exit {proc.returncode}); "
                f"see {out / (name + '.log')}"
            )
        outcomes = read_outcomes(tree, module)
        survivors = sorted(n for n, s in outcomes.items() if s in ("survived", "no tests"))
        diffs = []
        for mutant in survivors:
            diff = subprocess.run(
                [sys.executable, "-m", "mutmut", "show", mutant],
                cwd=tree,
                capture_output=True,
                text=True,
            ).stdout
            diffs.append(f"### {mutant}\n{diff}")
        (out / f"{name}.survivors.txt").write_text("\n".join(diffs))
    finally:
        if keep:
            print(f"   scratch tree kept: {tree}")
        else:
            shutil.rmtree(tree, ignore_errors=True)
    counts: dict[str, int] = {}
    for status in outcomes.values():
        counts[status] = counts.get(status, 0) + 1
    caught = counts.get("killed", 0) + counts.get("timeout", 0)
    missed = counts.get("survived", 0) + counts.get("no tests", 0)
    rate = caught / (caught + missed) if caught + missed else float("nan")
    by_function: dict[str, dict[str, int]] = {}
    for mutant, status in outcomes.items():
        function = mutant.split("__mutmut_")[0].rsplit(".", 1)[-1].replace("\u01c1", ".").strip(".")
        function = function.removeprefix("x_").removeprefix("x.")
        tally = by_function.setdefault(function, {})
        tally[status] = tally.get(status, 0) + 1
    row = {
        "target": name,
        "by_function": by_function,
        "module": module,
        "mutants": len(outcomes),
        **counts,
        "kill_rate": rate,
        "seconds": round(time.monotonic() - t0),
        "survivors": survivors,
    }
    print(
        f"   {len(outcomes)} mutants: {counts}; killed {rate:.1%} ({row['seconds']} s)", flush=True
    )
    return row


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--targets", default=",".join(TARGETS), help="comma-separated target names")
    p.add_argument("--out", default="results/mutation")
    p.add_argument("--max-children", type=int, default=2, help="mutants tested in parallel")
    p.add_argument("--keep", action="store_true", help="keep the scratch trees")
    p.add_argument("--list", action="store_true", help="print the targets and exit")
    args = p.parse_args()
    if args.list:
        for name, (_, module, tests) in TARGETS.items():
            print(f"{name:>20}: {module}  <-  {' '.join(tests)}")
        return 0
    names = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        p.error(f"unknown target(s) {unknown}; known: {', '.join(TARGETS)}")
    try:
        import mutmut  # noqa: F401
    except ImportError:
        p.error("mutmut is not installed: pip install mutmut==3.8.1")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    merged = {}
    if results_path.is_file():
        merged = {r["target"]: r for r in json.loads(results_path.read_text())}
    for name in names:  # results.json after every target: a long queue cut short keeps its part
        merged[name] = run_target(name, out, args.max_children, args.keep)
        results_path.write_text(json.dumps(list(merged.values()), indent=2))
    lines = [
        "| module | mutants | killed | timeout | survived | no tests | other | kill rate |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    main_keys = ("killed", "timeout", "survived", "no tests")
    for r in merged.values():
        other = r["mutants"] - sum(r.get(k, 0) for k in main_keys)
        cells = " | ".join(str(r.get(k, 0)) for k in main_keys)
        lines.append(
            f"| `{r['module']}` | {r['mutants']} | {cells} | {other} | {r['kill_rate']:.0%} |"
        )
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

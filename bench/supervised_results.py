"""Reproduce the supervised-task comparisons of RMC and LSTM (the README's tables).

Every run is a plain ``python -m rmc_agents.supervised`` command (printed before it runs) with
the same *training-time* budget for both cores (``train.time_budget_s``; evaluation excluded),
one CPU thread each, run one after another. The language-model corpus is synthetic, made here
from a small probabilistic grammar (nothing is downloaded), and the LSTM's hidden size is chosen
so that its model has the RMC model's parameter count (within a few percent).

    python bench/supervised_results.py                 # all three, about 12 minutes on 2 cores
    python bench/supervised_results.py --only lm --scale 0.5

Results go to ``results/supervised/`` (one run directory per line of the tables) and a markdown
summary is printed at the end.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable


def run(task: str, out: Path, args: list[str]) -> dict:
    cmd = [PY, "-m", "rmc_agents.supervised", task, "--output", str(out), "--overwrite"]
    cmd += ["--threads", "1", "--no-progress", *args]
    shown = ["python"] + cmd[1:]
    print("$", " ".join(shlex.quote(c) for c in shown), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO)
    return json.loads((out / "results.json").read_text())


# --- synthetic corpus ------------------------------------------------------------------------

TOPICS = {
    "farm": (["cow", "horse", "goat", "farmer", "barn", "field"], ["grazes", "sleeps", "waits"]),
    "sea": (["ship", "sailor", "fish", "whale", "harbour", "wave"], ["sails", "dives", "drifts"]),
    "city": (["bus", "driver", "shop", "street", "tower", "market"], ["stops", "opens", "shines"]),
    "wood": (["fox", "owl", "tree", "hunter", "river", "path"], ["hides", "hunts", "flows"]),
}
ADJECTIVES = ["old", "small", "quiet", "red", "tall", "busy", "cold", "bright"]
PREPOSITIONS = ["near", "behind", "under", "beside"]
TRANSITIVE = ["sees", "follows", "finds", "watches"]


def _plural_noun(noun: str) -> str:
    return noun + "es" if noun.endswith(("s", "x", "ch", "sh")) else noun + "s"


def _plural_verb(verb: str) -> str:  # "watches" -> "watch", "sees" -> "see"
    return verb[:-2] if verb.endswith(("ches", "shes", "xes")) else verb[:-1]


def _noun_phrase(rng: random.Random, nouns: list[str], plural: bool) -> list[str]:
    words = ["the" if not plural else rng.choice(["the", "some", "many"])]
    words += rng.sample(ADJECTIVES, rng.choice([0, 0, 1, 2]))
    noun = rng.choice(nouns)
    words.append(_plural_noun(noun) if plural else noun)
    return words


def _sentence(rng: random.Random, topic: str) -> list[str]:
    nouns, verbs = TOPICS[topic]
    plural = rng.random() < 0.4
    words = _noun_phrase(rng, nouns, plural)
    if rng.random() < 0.3:
        words += [rng.choice(PREPOSITIONS)] + _noun_phrase(rng, nouns, rng.random() < 0.4)
    if rng.random() < 0.5:  # agreement with the subject, possibly across the phrase above
        verb = rng.choice(TRANSITIVE)
        words += [_plural_verb(verb) if plural else verb] + _noun_phrase(
            rng, nouns, rng.random() < 0.4
        )
    else:
        verb = rng.choice(verbs)
        words.append(_plural_verb(verb) if plural else verb)
    return words + ["."]


def write_synthetic_corpus(root: Path, train_words: int = 60_000, seed: int = 0) -> Path:
    """Paragraphs of 3-8 sentences about one topic (named in its first line), in WikiText layout."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for split, size in (
        ("train", train_words),
        ("valid", train_words // 10),
        ("test", train_words // 10),
    ):
        lines, count = [], 0
        while count < size:
            topic = rng.choice(sorted(TOPICS))
            lines.append(f" = {topic} = ")
            for _ in range(rng.randint(3, 8)):
                words = _sentence(rng, topic)
                lines.append(" ".join(words))
                count += len(words) + 1
        (root / f"wiki.{split}.tokens").write_text("\n".join(lines) + "\n")
    return root


def lstm_hidden_matching(rmc_args: list[str], data: Path) -> tuple[int, int]:
    """The LSTM hidden size whose language model has as many parameters as the RMC's."""
    from rmc_agents.config import load_config
    from rmc_agents.supervised.__main__ import _overrides, build_parser
    from rmc_agents.supervised.language_model import LanguageModel, LMConfig, load_corpus

    args = build_parser().parse_args(["language-model", *rmc_args, "--data", str(data)])
    cfg = load_config(LMConfig, args.config, _overrides(args), skip_none=False)
    vocab = len(load_corpus(data, cfg.task.max_vocab).vocab)

    def count(core: str, hidden: int | None = None) -> int:
        model_cfg = cfg.model
        model_cfg.core.name = core
        if hidden is not None:
            model_cfg.core.lstm.hidden_size = hidden
        return sum(p.numel() for p in LanguageModel(model_cfg, vocab).parameters())

    target = count("rmc")
    best = min(range(8, 1025), key=lambda h: abs(count("lstm", h) - target))
    return best, target


# --- the three comparisons -------------------------------------------------------------------


# (vectors, dims, batch): configs/nth_farthest_small.yaml's size, where the RMC (with its
# one-hidden-layer head) leaves the trivial plateau (1/k + (1 - 1/k) / (k - 1) = 0.667 for 3
# vectors) after about 6k steps; at 4 x 4 both cores stayed at it for 35 minutes.
NTH_SIZES = ((3, 2, 128),)


def nth_farthest(out: Path, scale: float) -> list[str]:
    from rmc_agents.supervised.nth_farthest import trivial_plateau

    budget = 450 * scale
    table = [
        "| vectors x dims | core | steps in budget | params | eval accuracy | trivial plateau |",
        "|---|---|---|---|---|---|",
    ]
    for (k, dims, batch), core in itertools.product(NTH_SIZES, ("rmc", "lstm")):
        r = run(
            "nth-farthest",
            out / f"nth_farthest_{k}x{dims}-{core}",
            [
                "--set",
                f"task.num_vectors={k}",
                "--set",
                f"task.vector_dim={dims}",
                "--set",
                f"train.batch_size={batch}",
                "--config",
                "configs/nth_farthest_small.yaml",
                "--model",
                core,
                "--steps",
                "100000",
                "--set",
                f"train.time_budget_s={budget}",
            ],
        )
        table.append(
            f"| {k} x {dims} | {core} | {r['steps']} | {r['parameters']:,} | "
            f"{r['final_eval']['accuracy']:.3f} | {trivial_plateau(k):.3f} |"
        )
    return table


def learning_to_execute(out: Path, scale: float) -> list[str]:
    budget = 75 * scale
    table = [
        "| family | core | steps in budget | params | per-char accuracy | sequence accuracy |",
        "|---|---|---|---|---|---|",
    ]
    for family, extra in (("addition", []), ("copy", ["--set", "task.max_length=5"])):
        for core in ("rmc", "lstm"):
            r = run(
                "learning-to-execute",
                out / f"lte_{family}-{core}",
                [
                    "--config",
                    "configs/learning_to_execute_small.yaml",
                    "--model",
                    core,
                    "--set",
                    f"task.family={family}",
                    *extra,
                    "--steps",
                    "100000",
                    "--set",
                    f"train.time_budget_s={budget}",
                ],
            )
            e = r["final_eval"]
            table.append(
                f"| {family} | {core} | {r['steps']} | {r['parameters']:,} | "
                f"{e['char_accuracy']:.3f} | {e['sequence_accuracy']:.3f} |"
            )
    return table


def language_model(out: Path, scale: float) -> list[str]:
    budget = 120 * scale
    data = write_synthetic_corpus(out / "synthetic_corpus")
    common = [
        "--config",
        "configs/language_model_small.yaml",
        "--data",
        str(data),
        "--steps",
        "100000",
        "--set",
        f"train.time_budget_s={budget}",
    ]
    hidden, target = lstm_hidden_matching(common[:2], data)
    print(f"RMC language model: {target:,} parameters; matching LSTM hidden size {hidden}")
    table = [
        "| core | steps in budget | params | valid ppl | test ppl |",
        "|---|---|---|---|---|",
    ]
    for core, extra in (("rmc", []), ("lstm", ["--set", f"model.core.lstm.hidden_size={hidden}"])):
        r = run("language-model", out / f"lm-{core}", [*common, "--model", core, *extra])
        e = r["final_eval"]
        table.append(
            f"| {core} | {r['steps']} | {r['parameters']:,} | {e['perplexity']:.2f} | "
            f"{e['test_perplexity']:.2f} |"
        )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["nth", "lte", "lm"], action="append")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every time budget")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "supervised")
    args = parser.parse_args()
    chosen = args.only or ["nth", "lte", "lm"]
    sections = {
        "nth": ("Nth Farthest (small)", nth_farthest),
        "lte": ("Learning to Execute (small)", learning_to_execute),
        "lm": ("Language model (synthetic corpus, equal parameters)", language_model),
    }
    report = []
    for key in chosen:
        title, fn = sections[key]
        report += [f"### {title}", "", *fn(args.out, args.scale), ""]
    print("\n".join(report))


if __name__ == "__main__":
    main()

"""A supervised probe of a core's recall: name the symbol seen ``--lag`` steps ago.

The task is POPGym's RepeatPrevious without reinforcement learning: a stream of random symbols
(one-hot), and at every step from ``lag`` on the target is the symbol of ``lag`` steps before.
Each core sits in the agent's layout (a 64-unit ReLU torso, the core, a linear head reading the
core's output beside the torso's features, as ``model.skip`` does), built as the agent builds it
with the size-matched POPGym settings (RMC 4 x 4 x 32 with slot vectors and a bounded memory,
LSTM 124, GRU 146: 94-97k parameters each with the torso and head), and trains with
Adam on the cross-entropy of the scored steps. It prints the accuracy on each batch every
``--every`` steps: how fast a core learns the recall when the gradient says exactly what to
keep, apart from how fast RL finds it.

``--task count`` is POPGym's CountRecall the same way: a deck of ``--deck`` cards of ``--symbols``
kinds dealt in a random order, beside a second deck's card as the query; at every step the target
is how many cards of the query's kind have been dealt so far, the present one included (CountRecallEasy:
52 cards of 2 colours, 51 steps, 27 answers). ``--files`` picks the sweep file each core's
settings are read from (``popgym_sized_<core>.yaml`` by default). ``--chunk N`` backpropagates
through pieces of N steps only, the state carried across with its gradient stopped, as the RL
learner trains on chunks of 20 steps of a rollout.

    python bench/recall_probe.py --cores rmc,gru,lstm --lag 4 --steps 1500
    python bench/recall_probe.py --task count --symbols 2 --length 51 --cores rmc,gru,lstm \
        --files rmc=popgym_sized_rmc_unitgates_read
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rmc_agents.core import as_tuple, make_core  # noqa: E402
from rmc_agents.rl.settings import ModelSettings  # noqa: E402

TORSO = 64


def make_batch(gen: torch.Generator, batch: int, length: int, symbols: int, lag: int):
    """``(inputs [B, T, symbols] one-hot, targets [B, T - lag])``: target ``t`` is the symbol
    at ``t`` (from step ``lag`` on) of ``lag`` steps before."""
    seq = torch.randint(0, symbols, (batch, length), generator=gen)
    return nn.functional.one_hot(seq, symbols).float(), seq[:, : length - lag]


def make_count_batch(gen: torch.Generator, batch: int, length: int, symbols: int, deck: int):
    """``(inputs [B, T, 2 * symbols]: the dealt card's kind and the query's kind, one-hot;
    targets [B, T])``: target ``t`` counts the cards of the query's kind among those dealt at
    steps ``0..t``. Both decks hold ``deck // symbols`` cards of each kind, dealt without
    replacement."""
    kinds = torch.arange(deck) % symbols
    dealt = kinds[torch.rand(batch, deck, generator=gen).argsort(dim=1)[:, :length]]
    query = kinds[torch.rand(batch, deck, generator=gen).argsort(dim=1)[:, :length]]
    seen = nn.functional.one_hot(dealt, symbols).cumsum(dim=1)  # [B, T, symbols]
    target = seen.gather(2, query[..., None]).squeeze(-1)
    onehot = nn.functional.one_hot(torch.stack([dealt, query], dim=2), symbols).float()
    return onehot.flatten(2), target


CORES = ("rmc", "lstm", "gru")
SWEEPS = Path(__file__).resolve().parents[1] / "configs" / "sweeps"


def sweep_model_settings(core: str, name: str | None = None) -> dict:
    """The ``model.*`` settings (but ``core``) that ``configs/sweeps/<name>.yaml`` sets
    (``popgym_sized_<core>`` by default): the size-matched POPGym core, read from the file the RL
    runs used."""
    import yaml

    path = SWEEPS / f"{name or f'popgym_sized_{core}'}.yaml"
    if not path.is_file():
        raise ValueError(f"no sweep file {path.name} in {SWEEPS}")
    data = yaml.safe_load(path.read_text())
    if (data.get("set") or {}).get("model.core", core) != core:
        raise ValueError(f"{path.name} sets model.core {data['set']['model.core']!r}, not {core!r}")
    return {
        key.removeprefix("model."): value
        for key, value in (data.get("set") or {}).items()
        if key.startswith("model.") and key != "model.core"
    }


class Probe(nn.Module):
    """Torso, core and a linear head over ``[core output * output_scale, torso features]``; the
    core built as the agent builds it (``ModelSettings.core_kwargs``, ``make_core``)."""

    def __init__(
        self,
        core: str,
        symbols: int,
        output_scale: float = 1.0,
        classes: int | None = None,
        sweep: str | None = None,
    ):
        super().__init__()
        if core not in CORES:
            raise ValueError(f"unknown core {core!r}: choose from {', '.join(CORES)}")
        self.output_scale = output_scale
        self.torso = nn.Sequential(nn.Linear(symbols, TORSO), nn.ReLU())
        kwargs = ModelSettings(core=core, **sweep_model_settings(core, sweep)).core_kwargs()
        self.core = make_core(core, TORSO, **kwargs)
        self.head = nn.Linear(self.core.output_size + TORSO, classes or symbols)

    def forward(self, x: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
        """Logits ``[B, T, classes]``. With ``chunk``, the sequence is unrolled in pieces of that
        many steps, each starting from the state the previous one ended in with its gradient
        stopped (truncated backpropagation, as the RL learner trains on chunks of a rollout)."""
        h = self.torso(x)
        state = self.core.initial_state(x.shape[0])
        outs = []
        for piece in h.split(chunk or h.shape[1], dim=1):
            out, state = self.core.unroll(piece, state)
            outs.append(out)
            state = self.core.from_tuple(tuple(t.detach() for t in as_tuple(state)))
        out = torch.cat(outs, dim=1)
        return self.head(torch.cat([out * self.output_scale, h], dim=-1))


def train(core: str, args: argparse.Namespace) -> dict:
    """Train one core; its accuracy curve, the first step at ``--target`` and the time taken."""
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed + 1)
    count = args.task == "count"
    inputs, classes = (2 * args.symbols, args.deck // args.symbols + 1) if count else (None, None)
    model = Probe(core, inputs or args.symbols, args.output_scale, classes, args.files.get(core))
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    curve, first, start = [], None, time.time()
    for step in range(1, args.steps + 1):
        if count:
            x, y = make_count_batch(gen, args.batch, args.length, args.symbols, args.deck)
            logits = model(x, args.chunk)
        else:
            x, y = make_batch(gen, args.batch, args.length, args.symbols, args.lag)
            logits = model(x, args.chunk)[:, args.lag :]
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % args.every == 0:
            acc = float((logits.argmax(-1) == y).float().mean())
            curve.append([step, acc])
            if first is None and acc >= args.target:
                first = step
            print(f"{core} step {step} accuracy {acc:.3f}", flush=True)
    params = sum(p.numel() for p in model.parameters())
    return {"core": core, "params": params, "curve": curve, "first_at_target": first,
            "seconds": round(time.time() - start, 1)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--task", choices=("recall", "count"), default="recall",
                   help="recall: the symbol --lag steps back (RepeatPrevious); count: how many of "
                   "the query's kind dealt so far (CountRecall)")  # fmt: skip
    p.add_argument("--cores", default="rmc,gru,lstm", help=f"comma-separated, of {CORES}")
    p.add_argument("--files", default="", metavar="CORE=NAME[,...]",
                   help="the sweep file (configs/sweeps/NAME.yaml) a core's settings come from; "
                   "default popgym_sized_<core>")  # fmt: skip
    p.add_argument("--deck", type=int, default=52, help="count: cards per deck (52)")
    p.add_argument("--chunk", type=int, default=None,
                   help="backpropagate through pieces of this many steps only, the state carried "
                   "between them without its gradient (the RL learner's chunks: 20 steps); "
                   "default: the whole sequence")  # fmt: skip
    p.add_argument("--lag", type=int, default=4, help="how many steps back (RepeatPreviousEasy: 4)")
    p.add_argument("--symbols", type=int, default=4,
                   help="how many symbols (cards' suits: 4; count: kinds of card, colours: 2)")  # fmt: skip
    p.add_argument("--length", type=int, default=40, help="steps per sequence")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=1500, help="optimizer steps per core")
    p.add_argument("--lr", type=float, default=3e-4, help="Adam's step (configs/popgym.yaml's)")
    p.add_argument("--output-scale", type=float, default=1.0, help="the core's output times this")
    p.add_argument("--every", type=int, default=250, help="print the accuracy every N steps")
    p.add_argument("--target", type=float, default=0.99, help="accuracy for first_at_target")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = p.parse_args(argv)
    cores = [c.strip() for c in args.cores.split(",") if c.strip()]
    bad = [c for c in cores if c not in CORES]
    if bad or not cores:
        p.error(
            f"--cores: unknown {', '.join(bad) or '(none given)'}; choose from {', '.join(CORES)}"
        )
    files = {}
    for item in filter(None, (part.strip() for part in args.files.split(","))):
        core, _, name = item.partition("=")
        if core not in CORES or not name:
            p.error(
                f"--files: expected CORE=NAME with CORE one of {', '.join(CORES)}, got {item!r}"
            )
        try:
            sweep_model_settings(core, name)
        except ValueError as err:
            p.error(f"--files: {err}")
        files[core] = name
    args.files = files
    if args.chunk is not None and args.chunk < 1:
        p.error(f"--chunk must be at least 1, got {args.chunk}")
    if args.task == "count":
        if args.symbols < 2 or args.deck % args.symbols:
            p.error(f"--deck ({args.deck}) must hold the same number of each of --symbols "
                    f"({args.symbols}) kinds")  # fmt: skip
        if not 1 <= args.length <= args.deck:
            p.error(f"--length must be 1 to --deck ({args.deck}), got {args.length}")
    elif not 1 <= args.lag < args.length:
        p.error(f"--lag must be at least 1 and below --length ({args.length}), got {args.lag}")
    for name, least in (("symbols", 2), ("batch", 1), ("steps", 1), ("every", 1)):
        if getattr(args, name) < least:
            p.error(f"--{name} must be at least {least}, got {getattr(args, name)}")
    if args.every > args.steps:
        p.error(f"--every ({args.every}) must not exceed --steps ({args.steps})")
    torch.set_num_threads(args.threads)
    results = [train(core, args) for core in cores]
    for r in results:
        print(f"{r['core']}: {r['params']:,} parameters, accuracy {r['curve'][-1][1]:.3f} at "
              f"{r['curve'][-1][0]} steps, first >= {args.target} at {r['first_at_target']}, "
              f"{r['seconds']} s")  # fmt: skip
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"settings": vars(args) | {"out": str(args.out)},
                                        "results": results}, indent=1))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

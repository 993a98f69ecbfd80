"""Nth Farthest sanity checks: is the plateau in the data, in our cores, or in the task's form?

Two baselines on the same seeded generator as ``python -m rmc_agents.supervised nth-farthest``:

- ``mlp``: a feed-forward MLP (3 x 256, ReLU) that sees the whole set at once (the ``k`` input rows
  flattened into one vector). If it learns, the data and targets are right.
- ``torch-lstm``: ``torch.nn.LSTM`` (256) written directly, reading one vector per step, with the same
  4 x 256 MLP head as our models. If it behaves like our LSTM core, the plateau is not our code.

    python bench/nth_farthest_checks.py --model mlp --vectors 3 --dims 2 --steps 5000
    python bench/nth_farthest_checks.py --model torch-lstm --vectors 3 --dims 2 --steps 5000
    python bench/nth_farthest_checks.py --model torch-lstm --vectors 3 --dims 1 --ordered-labels

``--ordered-labels``: vector i carries label i (no binding of labels to vectors to learn);
``--head-layers``: hidden layers of the LSTM's MLP head (4 as in the paper);
``--one-step``: the LSTM reads the whole set flattened in one step (an MLP behind one LSTM cell).

Prints the evaluation accuracy (2,000 fixed samples) every ``--eval-every`` steps with the time.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rmc_agents.supervised.common import make_mlp
from rmc_agents.supervised.nth_farthest import sample_nth_farthest, trivial_plateau


class TorchLSTMModel(nn.Module):
    """``torch.nn.LSTM`` over the vectors, 4 x 256 MLP head on the last output. With
    ``one_step`` the LSTM reads the whole set flattened as a single step (no memory needed)."""

    def __init__(
        self,
        input_size: int,
        num_classes: int,
        hidden: int = 256,
        head_layers: int = 4,
        one_step: bool = False,
        num_vectors: int = 1,
    ) -> None:
        super().__init__()
        self.one_step = one_step
        width = input_size * num_vectors if one_step else input_size
        self.lstm = nn.LSTM(width, hidden, batch_first=True)
        self.head = make_mlp(hidden, head_layers, 256, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.one_step:
            x = x.flatten(1).unsqueeze(1)  # [B, 1, N * F]
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


class FlatMLP(nn.Module):
    """3 x 256 MLP on the flattened set."""

    def __init__(self, input_size: int, num_classes: int) -> None:
        super().__init__()
        self.net = make_mlp(input_size, 3, 256, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=["mlp", "torch-lstm"], default="mlp")
    p.add_argument("--vectors", type=int, default=3)
    p.add_argument("--dims", type=int, default=2)
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ordered-labels", action="store_true", help="vector i has label i")
    p.add_argument("--head-layers", type=int, default=4, help="torch-lstm: MLP head depth")
    p.add_argument("--one-step", action="store_true", help="torch-lstm: the set as one step")
    p.add_argument("--seconds", type=float, default=None, help="stop after this much time")
    args = p.parse_args()
    shuffle = not args.ordered_labels
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    k, d = args.vectors, args.dims
    rng = np.random.default_rng([args.seed, 0])
    evaluation = sample_nth_farthest(np.random.default_rng([args.seed, 1]), 2000, k, d, shuffle)
    eval_x = torch.from_numpy(evaluation.inputs)
    if args.model == "mlp":
        model: nn.Module = FlatMLP(k * (d + 3 * k), k)
    else:
        model = TorchLSTMModel(
            d + 3 * k, k, head_layers=args.head_layers, one_step=args.one_step, num_vectors=k
        )
    opt = torch.optim.Adam(model.parameters(), args.lr)
    plateau = trivial_plateau(k)
    labels = "ordered" if args.ordered_labels else "shuffled"
    extra = f", head {args.head_layers} layers" + (", one step" if args.one_step else "")
    extra = extra if args.model == "torch-lstm" else ""
    print(f"{args.model}{extra}, {k} vectors x {d} dims, {labels} labels, plateau {plateau:.3f}")
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        batch = sample_nth_farthest(rng, args.batch_size, k, d, shuffle)
        logits = model(torch.from_numpy(batch.inputs))
        loss = F.cross_entropy(logits, torch.from_numpy(batch.targets))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % args.eval_every == 0 or step == args.steps:
            with torch.no_grad():
                accuracy = (model(eval_x).argmax(-1).numpy() == evaluation.targets).mean()
            print(
                f"step {step:>7,}  {time.perf_counter() - start:7.1f} s  eval accuracy {accuracy:.3f}",
                flush=True,
            )
            if args.seconds is not None and time.perf_counter() - start > args.seconds:
                break


if __name__ == "__main__":
    main()

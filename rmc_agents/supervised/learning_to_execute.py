"""Learning to Execute (Zaremba & Sutskever 2014) with the RMC paper's encoder-decoder.

**Programs.** A small grammar of Python-like programs that print one integer::

    e=9145
    for x in range(4):e+=6418
    print((e-(80 if 6157<3461 else 4011)))

Families choose the operations a program may use: ``addition`` (``+``), ``control`` (``if``-
``else`` expressions and ``for`` loops), ``program`` (``+ - *``, ``if``, ``for``). A program of
nesting ``k`` applies ``k`` operations, each wrapping the previous result, with literals of
``length`` digits (multipliers and loop counts are small, as in the original). The memorisation
families read a ``length``-digit number and answer it back: ``copy``, ``reverse``, ``double``
(two copies). The target is what the program prints, computed by :func:`evaluate` walking the
generator's own syntax tree; no program text is ever executed.

**Curriculum.** ``mix``: each sample draws its length and nesting uniformly from 1 up to the
maximum; ``baseline``: always the maximum. Evaluation always uses the maximum.

**Model.** The encoder core reads the program one character at a time (one-hot); its final state
starts the decoder core, which is fed its own previous prediction (no teacher forcing), starting
from a GO symbol; an MLP (4 x 256, ReLU) maps each decoder output to character logits. Inputs are
padded on the left and the encoder's state is reset at each program's first character, so
padding never changes the encoding. The loss covers each target character and the end symbol;
``char_accuracy`` counts the target characters predicted right, ``sequence_accuracy`` the
samples whose whole answer (and end symbol) is right.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rmc_agents.supervised.common import (
    CoreConfig,
    CoreWithHeadConfig,
    RMCConfig,
    RNNConfig,
    TrainConfig,
    build_core,
    make_mlp,
)
from rmc_agents.supervised.trainer import Task

__all__ = [
    "FAMILIES",
    "VOCAB",
    "Assign",
    "BinOp",
    "ForAdd",
    "IfElse",
    "LTEConfig",
    "LearningToExecuteTask",
    "Num",
    "Program",
    "Seq2SeqModel",
    "Var",
    "decode",
    "encode",
    "evaluate",
    "generate_program",
    "generate_sample",
    "render",
]

PAD, GO, EOS = 0, 1, 2
_CHARS = "0123456789abcdefghijklmnopqrstuvwxyz+-*<>=():, \n"
VOCAB: tuple[str, ...] = ("<pad>", "<go>", "<eos>", *_CHARS)
_INDEX = {ch: i for i, ch in enumerate(VOCAB)}
FAMILIES = ("addition", "control", "program", "copy", "reverse", "double")
MEMORY_FAMILIES = ("copy", "reverse", "double")
_FAMILY_OPS = {
    "addition": ("+",),
    "control": ("if", "for"),
    "program": ("+", "-", "*", "if", "for"),
}
_VARIABLES = "abcdefghijklmnopqrstuvwyz"  # every letter but x, the loop counter


# --- the grammar: a syntax tree, its text and its value --------------------------------------


@dataclass(frozen=True)
class Num:
    """An integer literal."""

    value: int


@dataclass(frozen=True)
class Var:
    """A variable read."""

    name: str


@dataclass(frozen=True)
class BinOp:
    """``(left op right)`` with op in ``+ - *``."""

    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True)
class IfElse:
    """``(then if left cmp right else orelse)`` with cmp in ``< >``."""

    then: Expr
    left: Expr
    cmp: str
    right: Expr
    orelse: Expr


Expr = Union[Num, Var, BinOp, IfElse]  # noqa: UP007 - used at runtime in isinstance checks


@dataclass(frozen=True)
class Assign:
    """``name=value``."""

    name: str
    value: Expr


@dataclass(frozen=True)
class ForAdd:
    """``for x in range(count):name+=value``."""

    name: str
    count: int
    value: Expr


@dataclass(frozen=True)
class Program:
    """Statements, then ``print(result)``."""

    body: tuple[Assign | ForAdd, ...]
    result: Expr


def render(node: Program | Expr | Assign | ForAdd) -> str:
    """The program text of a syntax tree (valid Python)."""
    if isinstance(node, Program):
        lines = [render(s) for s in node.body] + [f"print({render(node.result)})"]
        return "\n".join(lines)
    if isinstance(node, Num):
        return str(node.value)
    if isinstance(node, Var):
        return node.name
    if isinstance(node, BinOp):
        return f"({render(node.left)}{node.op}{render(node.right)})"
    if isinstance(node, IfElse):
        return (
            f"({render(node.then)} if {render(node.left)}{node.cmp}{render(node.right)} "
            f"else {render(node.orelse)})"
        )
    if isinstance(node, Assign):
        return f"{node.name}={render(node.value)}"
    if isinstance(node, ForAdd):
        return f"for x in range({node.count}):{node.name}+={render(node.value)}"
    raise TypeError(f"not a node of the program grammar: {node!r}")


def evaluate(program: Program) -> str:
    """What ``program`` prints (without the newline), by walking its syntax tree."""
    env: dict[str, int] = {}

    def value(e: Expr) -> int:
        if isinstance(e, Num):
            return e.value
        if isinstance(e, Var):
            if e.name not in env:
                raise ValueError(f"variable {e.name!r} is read before it is assigned")
            return env[e.name]
        if isinstance(e, BinOp):
            a, b = value(e.left), value(e.right)
            if e.op == "+":
                return a + b
            if e.op == "-":
                return a - b
            if e.op == "*":
                return a * b
            raise ValueError(f"unknown operator {e.op!r}")
        if isinstance(e, IfElse):
            a, b = value(e.left), value(e.right)
            if e.cmp not in ("<", ">"):
                raise ValueError(f"unknown comparison {e.cmp!r}")
            taken = a < b if e.cmp == "<" else a > b
            return value(e.then) if taken else value(e.orelse)
        raise TypeError(f"not an expression of the program grammar: {e!r}")

    for statement in program.body:
        if isinstance(statement, Assign):
            env[statement.name] = value(statement.value)
        elif isinstance(statement, ForAdd):
            if statement.name not in env:
                raise ValueError(f"variable {statement.name!r} is read before it is assigned")
            for _ in range(statement.count):
                env[statement.name] += value(statement.value)
        else:
            raise TypeError(f"not a statement of the program grammar: {statement!r}")
    return str(value(program.result))


# --- the generator ---------------------------------------------------------------------------


def _literal(rng: np.random.Generator, length: int) -> Num:
    return Num(int(rng.integers(10 ** (length - 1), 10**length)))


def generate_program(rng: np.random.Generator, family: str, length: int, nesting: int) -> Program:
    """A random program of ``family`` (addition/control/program) with ``nesting`` operations."""
    if family not in _FAMILY_OPS:
        raise ValueError(f"family must be one of {', '.join(_FAMILY_OPS)}, got {family!r}")
    ops = _FAMILY_OPS[family]
    names = list(rng.permutation(list(_VARIABLES)))
    body: list[Assign | ForAdd] = []
    current: Expr | None = None
    for _ in range(nesting):
        op = ops[int(rng.integers(len(ops)))]
        inner = current if current is not None else _literal(rng, length)
        if op in ("+", "-"):
            other = _literal(rng, length)
            left, right = (inner, other) if rng.random() < 0.5 else (other, inner)
            current = BinOp(op, left, right)
        elif op == "*":
            small = Num(int(rng.integers(1, 4 * length + 1)))
            left, right = (inner, small) if rng.random() < 0.5 else (small, inner)
            current = BinOp("*", left, right)
        elif op == "if":
            slots: list[Expr] = [_literal(rng, length) for _ in range(4)]
            slots[int(rng.integers(4))] = inner
            cmp = "<" if rng.random() < 0.5 else ">"
            current = IfElse(slots[0], slots[1], cmp, slots[2], slots[3])
        else:  # for
            name = str(names.pop())
            body.append(Assign(name, inner))
            body.append(ForAdd(name, int(rng.integers(1, 10)), _literal(rng, length)))
            current = Var(name)
    assert current is not None
    return Program(tuple(body), current)


def generate_sample(
    rng: np.random.Generator, family: str, length: int, nesting: int
) -> tuple[str, str]:
    """``(program text, printed output)`` for one sample of ``family``."""
    if family in MEMORY_FAMILIES:
        digits = str(_literal(rng, length).value)
        target = {"copy": digits, "reverse": digits[::-1], "double": digits + digits}[family]
        return digits, target
    program = generate_program(rng, family, length, nesting)
    return render(program), evaluate(program)


def encode(text: str) -> list[int]:
    """Character ids of ``text``."""
    try:
        return [_INDEX[ch] for ch in text]
    except KeyError as exc:
        raise ValueError(f"character {exc.args[0]!r} is not in the vocabulary") from None


def decode(ids: list[int] | np.ndarray) -> str:
    """Text of character ids, stopping at the end symbol and skipping padding/GO."""
    out = []
    for i in ids:
        if int(i) == EOS:
            break
        if int(i) > EOS:
            out.append(VOCAB[int(i)])
    return "".join(out)


@dataclass
class EncodedBatch:
    """Left-padded sources with reset flags, right-padded targets ending in EOS."""

    source: np.ndarray  # [B, Ts] int64
    resets: np.ndarray  # [B, Ts] bool, True at each program's first character
    target: np.ndarray  # [B, To] int64 (chars, EOS, then PAD)


def encode_batch(samples: list[tuple[str, str]]) -> EncodedBatch:
    """Pack ``(text, target)`` pairs into arrays (see :class:`EncodedBatch`)."""
    sources = [encode(text) for text, _ in samples]
    targets = [encode(target) + [EOS] for _, target in samples]
    ts, to = max(map(len, sources)), max(map(len, targets))
    source = np.full((len(samples), ts), PAD, dtype=np.int64)
    resets = np.zeros((len(samples), ts), dtype=bool)
    target = np.full((len(samples), to), PAD, dtype=np.int64)
    for i, (s, t) in enumerate(zip(sources, targets, strict=True)):
        source[i, ts - len(s) :] = s
        resets[i, ts - len(s)] = True
        target[i, : len(t)] = t
    return EncodedBatch(source, resets, target)


# --- config ----------------------------------------------------------------------------------


@dataclass
class LTETaskConfig:
    """Which programs, how big, and the evaluation set size (paper: 12,800 samples)."""

    family: Literal["addition", "control", "program", "copy", "reverse", "double"] = "program"
    max_length: int = 5
    max_nesting: int = 2
    curriculum: Literal["mix", "baseline"] = "mix"
    eval_samples: int = 12800

    def validate(self) -> None:
        if not 1 <= self.max_length <= 12:
            raise ValueError(f"max_length must be in 1..12, got {self.max_length}")
        if not 1 <= self.max_nesting <= 12:
            raise ValueError(f"max_nesting must be in 1..12, got {self.max_nesting}")
        if self.eval_samples < 1:
            raise ValueError(f"eval_samples must be >= 1, got {self.eval_samples}")


@dataclass
class LTEModelConfig(CoreWithHeadConfig):
    """Encoder and decoder cores (same settings) and the MLP head. Paper: RMC with 4 memories,
    4 heads, memory gating; MLP 4 x 256. The head size is not stated (ours: 128)."""

    core: CoreConfig = field(
        default_factory=lambda: CoreConfig(
            name="rmc",
            rmc=RMCConfig(mem_slots=4, head_size=128, num_heads=4, gate_style="memory"),
            lstm=RNNConfig(hidden_size=512),
            gru=RNNConfig(hidden_size=512),
        )
    )


@dataclass
class LTEConfig:
    """Full config of a Learning to Execute run (defaults: the paper's settings)."""

    task: LTETaskConfig = field(default_factory=LTETaskConfig)
    model: LTEModelConfig = field(default_factory=LTEModelConfig)
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            steps=200_000,
            batch_size=128,
            learning_rate=1e-3,
            log_every=100,
            eval_every=5000,
            checkpoint_every=5000,
        )
    )


# --- model and task --------------------------------------------------------------------------


class Seq2SeqModel(nn.Module):
    """Encoder core -> its final state starts the decoder core -> MLP head per output step."""

    def __init__(self, cfg: LTEModelConfig) -> None:
        super().__init__()
        self.vocab_size = len(VOCAB)
        self.encoder = build_core(cfg.core, self.vocab_size)
        self.decoder = build_core(cfg.core, self.vocab_size)
        self.head = make_mlp(
            self.decoder.output_size, cfg.mlp_layers, cfg.mlp_units, self.vocab_size
        )

    def forward(self, source: torch.Tensor, resets: torch.Tensor, out_steps: int) -> torch.Tensor:
        """``source``/``resets`` [B, Ts] -> logits [B, out_steps, vocab], decoding greedily."""
        batch = source.shape[0]
        state = self.encoder.initial_state(batch, device=source.device)
        _, state = self.encoder.unroll(
            F.one_hot(source, self.vocab_size).float(), state, resets=resets
        )
        token = torch.full((batch,), GO, dtype=torch.long, device=source.device)
        logits = []
        for _ in range(out_steps):
            output, state = self.decoder(F.one_hot(token, self.vocab_size).float(), state)
            step_logits = self.head(output)
            logits.append(step_logits)
            token = step_logits.argmax(-1)  # fed its own prediction: no teacher forcing
        return torch.stack(logits, dim=1)


def _seq_metrics(logits: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Summed loss and counts over a batch (see the module docstring)."""
    counted = target != PAD
    chars = counted & (target != EOS)
    loss_sum = F.cross_entropy(logits.transpose(1, 2), target, reduction="none")[counted].sum()
    right = logits.argmax(-1) == target
    return {
        "loss_sum": loss_sum,
        "tokens": counted.sum(),
        "chars_right": (right & chars).sum(),
        "chars": chars.sum(),
        "seqs_right": (right | ~counted).all(dim=1).sum(),
    }


class LearningToExecuteTask(Task):
    """Learning to Execute: seeded program batches, fixed max-difficulty evaluation set."""

    name = "learning-to-execute"
    config_class = LTEConfig
    progress_keys = ("loss", "char_accuracy")

    def __init__(self, cfg: LTEConfig, device: torch.device) -> None:
        super().__init__(cfg, device)
        self.rng = np.random.default_rng([cfg.train.seed, 0])
        self._eval: list[tuple[str, str]] | None = None

    def build_model(self) -> nn.Module:
        return Seq2SeqModel(self.cfg.model)

    def sample(self, rng: np.random.Generator, size: int, hardest: bool) -> list[tuple[str, str]]:
        """``size`` samples; mix curriculum unless ``hardest`` (or the baseline curriculum)."""
        t = self.cfg.task
        samples = []
        for _ in range(size):
            if hardest or t.curriculum == "baseline":
                length, nesting = t.max_length, t.max_nesting
            else:
                length = int(rng.integers(1, t.max_length + 1))
                nesting = int(rng.integers(1, t.max_nesting + 1))
            samples.append(generate_sample(rng, t.family, length, nesting))
        return samples

    def _run(self, model: nn.Module, batch: EncodedBatch) -> dict[str, torch.Tensor]:
        source = torch.from_numpy(batch.source).to(self.device)
        resets = torch.from_numpy(batch.resets).to(self.device)
        target = torch.from_numpy(batch.target).to(self.device)
        logits = model(source, resets, target.shape[1])
        return _seq_metrics(logits, target)

    def training_loss(self, model: nn.Module, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        batch = encode_batch(self.sample(self.rng, self.cfg.train.batch_size, hardest=False))
        m = self._run(model, batch)
        loss = m["loss_sum"] / m["tokens"]
        return loss, {
            "loss": loss.item(),
            "char_accuracy": (m["chars_right"] / m["chars"]).item(),
            "sequence_accuracy": m["seqs_right"].item() / len(batch.source),
        }

    @torch.no_grad()
    def evaluate(self, model: nn.Module, final: bool) -> dict[str, float]:
        if self._eval is None:
            rng = np.random.default_rng([self.cfg.train.seed, 1])
            self._eval = self.sample(rng, self.cfg.task.eval_samples, hardest=True)
        size = self.cfg.train.batch_size
        totals: dict[str, float] = {}
        for start in range(0, len(self._eval), size):
            batch = encode_batch(self._eval[start : start + size])
            for key, value in self._run(model, batch).items():
                totals[key] = totals.get(key, 0.0) + float(value)
        return {
            "loss": totals["loss_sum"] / totals["tokens"],
            "char_accuracy": totals["chars_right"] / totals["chars"],
            "sequence_accuracy": totals["seqs_right"] / len(self._eval),
        }

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: Any) -> None:
        self.rng.bit_generator.state = state["rng"]

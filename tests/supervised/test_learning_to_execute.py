"""Learning to Execute: the evaluator on hand-written programs, the generator, the model."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch

from rmc_agents.supervised.learning_to_execute import (
    EOS,
    FAMILIES,
    GO,
    PAD,
    Assign,
    BinOp,
    ForAdd,
    IfElse,
    LearningToExecuteTask,
    Num,
    Program,
    Var,
    decode,
    encode,
    encode_batch,
    evaluate,
    generate_program,
    generate_sample,
    render,
)

from .conftest import tiny_config

HAND_WRITTEN = [
    (Program((), BinOp("+", Num(12345), Num(67890))), "print((12345+67890))", "80235"),
    (Program((), BinOp("-", Num(17), Num(93))), "print((17-93))", "-76"),
    (
        Program((), BinOp("*", BinOp("+", Num(5), Num(6)), Num(7))),
        "print(((5+6)*7))",
        "77",
    ),
    (
        Program((), IfElse(Num(1), Num(5), "<", Num(3), Num(2))),
        "print((1 if 5<3 else 2))",
        "2",
    ),
    (
        Program((), IfElse(Num(1), Num(5), ">", Num(3), Num(2))),
        "print((1 if 5>3 else 2))",
        "1",
    ),
    (
        Program((Assign("b", Num(10)), ForAdd("b", 3, Num(7))), Var("b")),
        "b=10\nfor x in range(3):b+=7\nprint(b)",
        "31",
    ),
    (
        Program(
            (Assign("e", BinOp("-", Num(4), Num(9))), ForAdd("e", 4, Num(2))),
            IfElse(Var("e"), Var("e"), "<", Num(0), BinOp("*", Var("e"), Num(3))),
        ),
        "e=(4-9)\nfor x in range(4):e+=2\nprint((e if e<0 else (e*3)))",
        "9",
    ),
]


@pytest.mark.parametrize(("program", "text", "printed"), HAND_WRITTEN)
def test_evaluator_on_hand_written_programs(program: Program, text: str, printed: str) -> None:
    assert render(program) == text
    assert evaluate(program) == printed


def test_evaluator_rejects_bad_trees() -> None:
    with pytest.raises(ValueError, match="read before it is assigned"):
        evaluate(Program((), Var("q")))
    with pytest.raises(ValueError, match="unknown operator"):
        evaluate(Program((), BinOp("/", Num(1), Num(2))))


def python_prints(text: str) -> str:
    """Reference only: what CPython prints for a generated program (never used by the package)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(text, {"__builtins__": {"print": print, "range": range}})  # noqa: S102
    return out.getvalue().rstrip("\n")


@pytest.mark.parametrize("family", ["addition", "control", "program"])
def test_generated_programs_print_what_the_evaluator_says(family: str) -> None:
    rng = np.random.default_rng(5)
    for _ in range(150):
        length, nesting = int(rng.integers(1, 6)), int(rng.integers(1, 4))
        text, target = generate_sample(rng, family, length, nesting)
        assert python_prints(text) == target
        encode(text)  # every character is in the vocabulary


def test_families_use_their_operations() -> None:
    rng = np.random.default_rng(1)
    texts = {f: "".join(generate_sample(rng, f, 4, 2)[0] for _ in range(100)) for f in FAMILIES}
    assert set(texts["addition"]) <= set("0123456789+()print")
    assert "if" in texts["control"] and "for" in texts["control"] and "+(" not in texts["control"]
    for token in ("+", "-", "*", " if ", "for x"):
        assert token in texts["program"]


def test_literals_have_the_requested_length() -> None:
    rng = np.random.default_rng(2)
    program = generate_program(rng, "addition", length=4, nesting=3)
    assert render(program).count("+") == 3
    literals = render(program).replace("print", "").replace("(", " ").replace(")", " ")
    assert all(len(n) == 4 for n in literals.replace("+", " ").split())


@pytest.mark.parametrize(
    ("family", "check"),
    [
        ("copy", lambda s: s),
        ("reverse", lambda s: s[::-1]),
        ("double", lambda s: s + s),
    ],
)
def test_memorisation_families(family, check) -> None:
    rng = np.random.default_rng(4)
    for _ in range(50):
        text, target = generate_sample(rng, family, 5, 2)
        assert text.isdigit() and len(text) == 5 and text[0] != "0"
        assert target == check(text)


def test_mix_curriculum_draws_up_to_the_maximum_and_eval_uses_the_maximum() -> None:
    cfg = tiny_config("learning-to-execute", **{"task.family": "copy", "task.max_length": 4})
    task = LearningToExecuteTask(cfg, torch.device("cpu"))
    train = task.sample(np.random.default_rng(0), 400, hardest=False)
    assert {len(text) for text, _ in train} == {1, 2, 3, 4}
    hardest = task.sample(np.random.default_rng(0), 50, hardest=True)
    assert {len(text) for text, _ in hardest} == {4}


def test_encode_batch_pads_sources_left_and_targets_right() -> None:
    batch = encode_batch([("12", "3"), ("4567", "89")])
    assert decode(batch.source[0]) == "12" and decode(batch.target[1]) == "89"
    assert batch.source[0, :2].tolist() == [PAD, PAD]
    assert batch.resets[0].tolist() == [False, False, True, False]
    assert batch.resets[1].tolist() == [True, False, False, False]
    assert batch.target[0].tolist()[1:] == [EOS, PAD]
    assert batch.target[1].tolist()[2] == EOS


@pytest.mark.parametrize("core", ["rmc", "lstm"])
def test_left_padding_does_not_change_the_answer(core: str) -> None:
    cfg = tiny_config("learning-to-execute", **{"model.core.name": core})
    model = LearningToExecuteTask(cfg, torch.device("cpu")).build_model().eval()
    alone = encode_batch([("print((12+34))", "46")])
    padded = encode_batch(
        [("print((12+34))", "46"), ("b=10\nfor x in range(3):b+=7\nprint(b)", "31")]
    )
    with torch.no_grad():
        a = model(torch.from_numpy(alone.source), torch.from_numpy(alone.resets), 4)
        b = model(torch.from_numpy(padded.source), torch.from_numpy(padded.resets), 4)
    assert padded.source.shape[1] > alone.source.shape[1]
    torch.testing.assert_close(a[0], b[0])


def test_decoder_is_fed_its_own_predictions() -> None:
    cfg = tiny_config("learning-to-execute")
    model = LearningToExecuteTask(cfg, torch.device("cpu")).build_model().eval()
    batch = encode_batch([("print((12+34))", "46")])
    source, resets = torch.from_numpy(batch.source), torch.from_numpy(batch.resets)
    fed: list[int] = []
    original = model.decoder.forward

    def spy(x, state):
        fed.append(int(x.argmax(-1)[0]))
        return original(x, state)

    model.decoder.forward = spy
    with torch.no_grad():
        logits = model(source, resets, 5)
    assert fed[0] == GO
    assert fed[1:] == logits[0, :-1].argmax(-1).tolist()


def test_training_metrics_and_evaluation() -> None:
    cfg = tiny_config("learning-to-execute")
    task = LearningToExecuteTask(cfg, torch.device("cpu"))
    model = task.build_model()
    loss, metrics = task.training_loss(model, 0)
    assert loss.requires_grad and set(metrics) == {"loss", "char_accuracy", "sequence_accuracy"}
    result = task.evaluate(model, final=True)
    assert 0 <= result["char_accuracy"] <= 1 and 0 <= result["sequence_accuracy"] <= 1


def test_char_accuracy_counts_characters_only_not_the_end_mark() -> None:
    """Hand-worked: per-character accuracy counts the answer's characters (not EOS, not padding);
    a sequence is right only if every character and its EOS are."""
    import torch

    from rmc_agents.supervised.learning_to_execute import EOS, PAD, VOCAB, _seq_metrics

    a, b, c = (VOCAB.index(ch) for ch in "123")
    target = torch.tensor([[a, b, EOS, PAD], [c, EOS, PAD, PAD], [a, EOS, PAD, PAD]])
    predicted = torch.tensor([[a, c, EOS, a], [c, a, b, b], [a, EOS, c, c]])
    logits = torch.nn.functional.one_hot(predicted, len(VOCAB)).float() * 5.0
    m = _seq_metrics(logits, target)
    assert int(m["chars"]) == 4  # 1, 2 | 3 | 1: the EOS marks and padding are not characters
    assert int(m["chars_right"]) == 3  # the "2" of the first answer is wrong
    assert int(m["tokens"]) == 7  # the loss counts characters and EOS
    assert int(m["seqs_right"]) == 1  # row 1 misses its EOS, row 0 a character; row 2 is right
    want = torch.nn.functional.cross_entropy(
        logits[target != PAD], target[target != PAD], reduction="sum"
    )
    assert float(m["loss_sum"]) == pytest.approx(float(want))


def _programs(family: str, length: int, nesting: int, n: int, seed: int = 0) -> list[Program]:
    rng = np.random.default_rng(seed)
    return [generate_program(rng, family, length, nesting) for _ in range(n)]


def test_the_generator_draws_every_choice_of_the_grammar_and_no_other() -> None:
    """Over many draws each random choice of the generator takes every value it may, and only
    those: literals of exactly ``length`` digits (10..99 for 2), the small factor of ``*`` in
    1..4*length, loop counts 1..9, the nested expression on either side of a binary operation and
    in any of the four places of a conditional, both comparisons."""
    length = 2
    literals, smalls, counts, cmps = set(), set(), set(), set()
    sides = {"+": set(), "-": set(), "*": set()}
    places = set()
    for program in _programs("program", length, nesting=2, n=3000):
        result = program.result
        if isinstance(result, BinOp):  # inner expression: the one that is not a literal
            inner_left = not isinstance(result.left, Num)
            inner_right = not isinstance(result.right, Num)
            if inner_left != inner_right:
                sides[result.op].add("left" if inner_left else "right")
            if result.op == "*":
                smalls.add((result.right if inner_left else result.left).value)
        elif isinstance(result, IfElse):
            fields = [result.left, result.right, result.then, result.orelse]
            nested = [i for i, f in enumerate(fields) if not isinstance(f, Num)]
            literal_values = [f.value for f in fields if isinstance(f, Num)]
            literals.update(literal_values)
            if len(nested) == 1:
                places.add(("left", "right", "then", "orelse")[nested[0]])
            cmps.add(result.cmp)
        for statement in program.body:
            if isinstance(statement, ForAdd):
                counts.add(statement.count)
                literals.add(statement.value.value)
    assert literals == set(range(10, 100))
    assert smalls == set(range(1, 4 * length + 1))
    assert counts == set(range(1, 10))
    assert cmps == {"<", ">"}
    assert places == {"left", "right", "then", "orelse"}
    assert all(s == {"left", "right"} for s in sides.values()), sides


def test_a_conditional_holds_the_nested_expression_once_and_three_fresh_literals() -> None:
    for program in _programs("control", 3, nesting=2, n=400, seed=1):
        if not isinstance(program.result, IfElse):
            continue
        r = program.result
        fields = [r.left, r.right, r.then, r.orelse]
        assert len({id(f) for f in fields}) == 4  # four distinct nodes, none repeated
        assert sum(not isinstance(f, Num) for f in fields) <= 1


def test_a_loop_adds_to_a_fresh_variable_that_the_result_reads() -> None:
    for program in _programs("control", 2, nesting=3, n=300, seed=2):
        names = [s.name for s in program.body if isinstance(s, Assign)]
        assert len(names) == len(set(names))  # one new variable per loop
        assert "x" not in names  # the loop counter's name is never a variable
        for assign, loop in zip(program.body[::2], program.body[1::2], strict=True):
            assert isinstance(assign, Assign) and isinstance(loop, ForAdd)
            assert loop.name == assign.name
        if program.body and isinstance(program.body[-1], ForAdd):
            last = program.body[-1].name
            assert last in render(program.result)


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="family must be one of addition, control, program"):
        generate_program(np.random.default_rng(0), "nope", 2, 1)
    with pytest.raises(ValueError, match="character '~' is not in the vocabulary"):
        encode("1~2")
    with pytest.raises(ValueError, match="unknown comparison '=='"):
        evaluate(Program((), IfElse(Num(1), Num(2), "==", Num(3), Num(4))))
    with pytest.raises(TypeError, match="not an expression of the program grammar"):
        evaluate(Program((), "1"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="variable 'q' is read before it is assigned"):
        evaluate(Program((ForAdd("q", 2, Num(1)),), Num(0)))
    with pytest.raises(TypeError, match="not a statement of the program grammar"):
        evaluate(Program(("q=1",), Num(0)))  # type: ignore[arg-type]


def test_decode_keeps_every_character_after_the_specials() -> None:
    text = "print((12+3))"
    assert decode([GO, *encode(text), EOS, *encode("99")]) == text
    assert decode([PAD, *encode(text)]) == text
    first = min(i for i in range(len(encode(text)) + 10) if i > EOS)
    assert decode([first]) != ""  # the first id after the end mark is a character


@pytest.mark.parametrize(
    "key, lowest, highest, outside",
    [
        ("max_length", 1, 12, (0, 13)),
        ("max_nesting", 1, 12, (0, 13)),
        ("eval_samples", 1, None, (0,)),
    ],
)
def test_config_bounds_are_where_the_messages_say(key, lowest, highest, outside) -> None:
    from rmc_agents.supervised.learning_to_execute import LTETaskConfig

    for ok in (lowest, highest):
        if ok is not None:
            LTETaskConfig(**{key: ok}).validate()
    for bad in outside:
        with pytest.raises(ValueError, match=f"^{key} must be"):
            LTETaskConfig(**{key: bad}).validate()


def test_curricula_draw_the_sizes_they_promise() -> None:
    """mix: lengths and nestings 1..max each drawn; baseline: always the maximum (as the
    evaluation set). ``addition`` programs show their nesting as their count of ``+``."""
    base = {"task.family": "addition", "task.max_length": 3, "task.max_nesting": 3}
    mix = LearningToExecuteTask(tiny_config("learning-to-execute", **base), torch.device("cpu"))
    drawn = mix.sample(np.random.default_rng(0), 300, hardest=False)
    assert {text.count("+") for text, _ in drawn} == {1, 2, 3}
    digits = {
        len(n)
        for text, _ in drawn
        for n in text[6:-1].replace("(", " ").replace(")", " ").replace("+", " ").split()
    }
    assert digits == {1, 2, 3}
    baseline = LearningToExecuteTask(
        tiny_config("learning-to-execute", **base, **{"task.curriculum": "baseline"}),
        torch.device("cpu"),
    )
    drawn = baseline.sample(np.random.default_rng(0), 50, hardest=False)
    assert {text.count("+") for text, _ in drawn} == {3}


def test_a_batch_scores_as_its_samples_alone_and_the_loss_is_the_mean_over_tokens() -> None:
    """Left padding with reset flags: each program in a batch is read from the initial state, so
    the batch's summed loss is the sum of its samples' alone; the training loss is that sum over
    the counted tokens (characters and the end mark)."""
    cfg = tiny_config("learning-to-execute", **{"task.family": "addition", "task.max_length": 3})
    task = LearningToExecuteTask(cfg, torch.device("cpu"))
    torch.manual_seed(0)
    model = task.build_model().eval()
    samples = [("print((1+2))", "3"), ("print((123+(45+6)))", "174"), ("print((9+9))", "18")]
    with torch.no_grad():
        together = task._run(model, encode_batch(samples))
        alone = [task._run(model, encode_batch([s])) for s in samples]
    assert float(together["loss_sum"]) == pytest.approx(
        sum(float(m["loss_sum"]) for m in alone), rel=1e-5
    )
    assert int(together["tokens"]) == sum(len(t) + 1 for _, t in samples)
    task.rng = np.random.default_rng(3)
    loss, metrics = task.training_loss(model, step=0)
    task.rng = np.random.default_rng(3)
    batch = encode_batch(task.sample(task.rng, cfg.train.batch_size, hardest=False))
    with torch.no_grad():
        logits = model(
            torch.from_numpy(batch.source), torch.from_numpy(batch.resets), batch.target.shape[1]
        )
    target = torch.from_numpy(batch.target)
    counted = target != PAD
    nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target, reduction="none")
    assert float(loss) == pytest.approx(float(nll[counted].mean()), rel=1e-5)
    assert metrics["loss"] == pytest.approx(float(nll[counted].mean()), rel=1e-5)

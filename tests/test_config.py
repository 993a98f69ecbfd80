"""The strict YAML config loader: unknown keys, wrong types and impossible values name the key."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from rmc_agents.config import (
    ConfigError,
    apply_overrides,
    config_to_dict,
    load_config,
    parse_set_items,
    read_config_mapping,
    save_config,
)


@dataclass
class Optim:
    lr: float = 1e-3
    kind: Literal["adam", "rmsprop"] = "adam"

    def validate(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")


@dataclass
class Run:
    steps: int = 100
    name: str = "run"
    layers: list[int] = field(default_factory=lambda: [64, 64])
    seed: int | None = None
    verbose: bool = False
    optim: Optim = field(default_factory=Optim)


def write(tmp_path, text: str):
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


def test_defaults_file_and_overrides_layer_in_order(tmp_path):
    path = write(tmp_path, "steps: 5\noptim:\n  lr: 1e-2\n  kind: rmsprop\nlayers: [8]\n")
    cfg = load_config(Run, path, overrides={"optim.lr": 0.5, "seed": None, "name": "x"})
    assert cfg.steps == 5
    assert cfg.optim.lr == 0.5  # override wins over the file
    assert cfg.optim.kind == "rmsprop"
    assert cfg.layers == [8]
    assert cfg.seed is None  # None override means "flag not given"
    assert cfg.name == "x"
    assert load_config(Run) == Run()


def test_yaml_scientific_notation_without_dot_is_a_float(tmp_path):
    assert load_config(Run, write(tmp_path, "optim:\n  lr: 1e-3\n")).optim.lr == pytest.approx(1e-3)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("stepz: 5\n", "'stepz'"),
        ("optim:\n  lrr: 1\n", "'optim.lrr'"),
        ("steps: five\n", "'steps' must be an integer"),
        ("verbose: 1\n", "'verbose' must be true or false"),
        ("optim:\n  kind: sgd\n", "'optim.kind' must be one of"),
        ("layers: [1, a]\n", "'layers[1]'"),
        ("optim:\n  lr: -1\n", "lr must be > 0"),
        ("optim: 3\n", "'optim' must be a mapping"),
        ("- 1\n- 2\n", "top level must be a mapping"),
        ("steps: [\n", "not valid YAML"),
    ],
)
def test_bad_files_name_the_key_and_the_file(tmp_path, text, needle):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(Run, path)
    assert needle in str(err.value)
    assert str(path) in str(err.value)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="not found: .*nope.yaml"):
        load_config(Run, tmp_path / "nope.yaml")


def test_unknown_override_key_is_named():
    with pytest.raises(ConfigError, match="'optim.beta'"):
        apply_overrides(Run(), {"optim.beta": 1})
    with pytest.raises(ConfigError, match="'steps' must be an integer"):
        apply_overrides(Run(), {"steps": "many"})


def test_keys_of_a_free_form_mapping_can_be_set_and_added():
    """``--set env_kwargs.mode=rush``: a plain-dict field (the env's keyword arguments) has no
    fixed keys, so a dotted override adds or replaces one; a dataclass field's keys stay checked."""

    @dataclass
    class WithKwargs:
        env_kwargs: dict = field(default_factory=dict)
        optim: Optim = field(default_factory=Optim)

    cfg = apply_overrides(WithKwargs(), {"env_kwargs.mode": "rush", "env_kwargs.size": 7})
    assert cfg.env_kwargs == {"mode": "rush", "size": 7}
    cfg = apply_overrides(cfg, {"env_kwargs.mode": "hunt", "env_kwargs.sub.depth": 2})
    assert cfg.env_kwargs == {"mode": "hunt", "size": 7, "sub": {"depth": 2}}
    with pytest.raises(ConfigError, match="env_kwargs.mode is not a mapping"):
        apply_overrides(cfg, {"env_kwargs.mode.x": 1})
    with pytest.raises(ConfigError, match="'optim.beta'"):
        apply_overrides(cfg, {"optim.beta": 1})


def test_the_run_settings_take_env_kwargs_on_the_command_line():
    from rmc_agents.rl.settings import RunSettings

    cfg = apply_overrides(RunSettings(), parse_set_items(["env_kwargs.mode=rush"]))
    assert cfg.env_kwargs == {"mode": "rush"}


def test_saved_config_loads_back_equal(tmp_path):
    cfg = Run(steps=7, layers=[3], seed=2, optim=Optim(lr=0.1, kind="rmsprop"))
    save_config(cfg, tmp_path / "out.yaml")
    assert load_config(Run, tmp_path / "out.yaml") == cfg
    assert config_to_dict(cfg)["optim"] == {"lr": 0.1, "kind": "rmsprop"}


def test_set_items_are_read_as_yaml_and_bad_ones_are_named():
    assert parse_set_items(["a.b=0.5", "c=true", "d=[12, 24]", "e=null", "f=x=y"]) == {
        "a.b": 0.5,
        "c": True,
        "d": [12, 24],
        "e": None,
        "f": "x=y",
    }
    for bad in ("novalue", "=3"):
        with pytest.raises(ConfigError, match="KEY=VALUE, got"):
            parse_set_items([bad])
    with pytest.raises(ConfigError, match="cannot read value"):
        parse_set_items(["k=[1, 2"])


def test_none_overrides_set_null_when_not_skipped(tmp_path):
    """``--set KEY=null`` reaches the config (the callers leave out the flags not given)."""
    path = write(tmp_path, "seed: 3\n")
    assert load_config(Run, path, overrides={"seed": None}).seed == 3  # an unset flag
    assert load_config(Run, path, overrides={"seed": None}, skip_none=False).seed is None


@pytest.mark.parametrize(
    "key, value, kind",
    [
        ("steps", True, "integer"),  # a YAML bool is not an int (though Python's bool is one)
        ("steps", 5.5, "integer"),
        ("steps", "5", "integer"),
        ("seed", False, "int"),
        ("layers", [8, 2.5], "integer"),
        ("optim.lr", True, "number"),
        ("optim.lr", "fast", "number"),
        ("verbose", 1, "true or false|bool"),
        ("name", 3, "string|str"),
        ("optim.kind", "sgd", "adam|rmsprop"),
    ],
)
def test_values_of_the_wrong_type_are_refused(key, value, kind):
    with pytest.raises(ConfigError, match=kind):
        load_config(Run, overrides={key: value})


def test_whole_floats_are_taken_for_integers_and_ints_for_floats():
    cfg = load_config(Run, overrides={"steps": 5.0, "optim.lr": 1})
    assert cfg.steps == 5 and isinstance(cfg.steps, int)
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    # YAML reads 1e-3 (no dot) as a string: numeric strings are numbers for float keys
    assert load_config(Run, overrides={"optim.lr": "1e-3"}).optim.lr == 0.001


def test_unknown_keys_get_a_suggestion_and_the_known_keys(tmp_path):
    with pytest.raises(
        ConfigError,
        match=r"'optim.kinds' \(did you mean 'optim.kind'\?; known keys under optim: lr, kind\)",
    ):
        load_config(Run, overrides={"optim.kinds": "adam"})
    with pytest.raises(ConfigError, match=r"did you mean 'optim.kind'\?"):
        load_config(Run, write(tmp_path, "optim:\n  kinds: adam\n"))
    with pytest.raises(ConfigError, match=r"unknown config key 'zzz' \(known keys: steps"):
        load_config(Run, overrides={"zzz": 1})


def test_a_base_file_gives_every_key_the_file_does_not_set(tmp_path):
    """``base:``: the base's keys, then the file's; mappings merged key by key, lists replaced;
    bases chain, looked up beside the file."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.yaml").write_text(
        "steps: 7\nlayers: [1, 2, 3]\noptim: {lr: 0.5, kind: rmsprop}\n"
    )
    (tmp_path / "sub" / "b.yaml").write_text("base: ../a.yaml\nname: b\noptim: {lr: 0.25}\n")
    (tmp_path / "c.yaml").write_text("base: sub/b.yaml\nlayers: [4]\n")
    cfg = load_config(Run, tmp_path / "c.yaml", overrides={"steps": 9})
    assert cfg == Run(steps=9, name="b", layers=[4], optim=Optim(lr=0.25, kind="rmsprop"))
    assert read_config_mapping(tmp_path / "sub" / "b.yaml") == {
        "steps": 7,
        "layers": [1, 2, 3],
        "optim": {"lr": 0.25, "kind": "rmsprop"},
        "name": "b",
    }


@pytest.mark.parametrize(
    "files, needle",
    [
        ({"c.yaml": "base: nope.yaml\n"}, "c.yaml: base: config file not found: nope.yaml"),
        ({"c.yaml": "base: 3\n"}, "c.yaml: base: must be the path of a config file, got 3"),
        (
            {"c.yaml": "base: d.yaml\n", "d.yaml": "base: c.yaml\n"},
            "base: files name each other in a loop",
        ),
        (
            {"c.yaml": "base: d.yaml\n", "d.yaml": "optim: {lrr: 1}\n"},
            "(with base",
        ),
        (
            {"c.yaml": "base: d.yaml\n", "d.yaml": "- 1\n"},
            "d.yaml: the top level must be a mapping",
        ),
    ],
)
def test_a_bad_base_is_named(tmp_path, files, needle):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError, match=None) as err:
        load_config(Run, tmp_path / "c.yaml")
    assert needle in str(err.value)
    assert str(err.value).count("\n") == 0

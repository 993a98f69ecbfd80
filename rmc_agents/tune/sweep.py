"""The sweep file: what to search, read and checked in full before Ray starts.

A sweep file is YAML (see ``configs/sweeps/``)::

    base: configs/minipacman_viewport_rmc.yaml   # a train_agent.py config file (optional)
    set: {stop.timesteps: 300000}                # dotted keys, as train_agent.py --set
    search:                                      # dotted key -> one distribution
      training.lr: {loguniform: [1.0e-5, 1.0e-3]}
      model.num_heads: {choice: [2, 4]}
    num_samples: 8
    scheduler: {type: asha, grace_frames: 100000, reduction_factor: 3}
    metric: return_last20
    max_concurrent: 1
    seed: 0

A trial's settings are built as ``train_agent.py --config BASE --set ...`` builds a run's: the
built-in defaults, then the base file (:func:`~rmc_agents.config.load_config`), then ``set`` and
then the trial's sampled values (:func:`~rmc_agents.config.apply_overrides`, as ``--set``).
:func:`load_sweep` tries every key with the values the search can give (both ends of a range,
every choice) through those same functions, so an unknown key or a value that
:class:`~rmc_agents.rl.settings.RunSettings` refuses is one :class:`ConfigError` naming the key
before any trial starts.
"""

from __future__ import annotations

import difflib
import itertools
import json
import math
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rmc_agents.config import (
    ConfigError,
    apply_overrides,
    config_from_dict,
    find_base,
    load_config,
    read_config_mapping,
    read_mapping,
)
from rmc_agents.rl.settings import RunSettings

__all__ = [
    "DISTRIBUTIONS",
    "METRICS",
    "Distribution",
    "SchedulerSettings",
    "Sweep",
    "SweepFile",
    "load_sweep",
    "trial_settings",
]

#: Metrics a sweep can optimize (always the higher the better). ``return_last20``: the mean of the
#: logged episode returns over the last 20% of the trial's frames so far (bench/learning.py's
#: measure); ``episode_return_mean``: RLlib's running mean at the last iteration.
METRICS = ("return_last20", "episode_return_mean")

#: Distribution names, and whether each takes a range ``[low, high]`` (else a list of values).
DISTRIBUTIONS = {
    "loguniform": True,  # floats, log-uniform in [low, high]; low > 0
    "uniform": True,  # floats, uniform in [low, high]
    "randint": True,  # integers low..high, both included
    "choice": False,  # one of the values, drawn at random
    "grid": False,  # every value, each with num_samples trials (Tune's grid_search)
}

#: Above this many combinations of the searched values, each key is checked on its own only.
_MAX_COMBINATIONS = 1024


@dataclass
class SchedulerSettings:
    """Early stopping of the worse trials: ``asha`` (Async Successive Halving, time in env frames:
    at ``grace_frames`` x ``reduction_factor``^k frames only the best 1/``reduction_factor`` of
    the trials that got there go on) or ``none`` (every trial runs to its stop criterion)."""

    type: Literal["asha", "none"] = "none"
    grace_frames: int = 100_000
    reduction_factor: float = 3.0

    def validate(self) -> None:
        if self.grace_frames <= 0:
            raise ValueError(f"grace_frames must be > 0, got {self.grace_frames}")
        if self.reduction_factor <= 1:
            raise ValueError(f"reduction_factor must be > 1, got {self.reduction_factor}")


@dataclass
class SweepFile:
    """The keys of a sweep file (see the module's docstring)."""

    base: str | None = None
    set: dict[str, Any] = field(default_factory=dict)
    search: dict[str, Any] = field(default_factory=dict)
    num_samples: int = 1
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)
    metric: Literal["return_last20", "episode_return_mean"] = "return_last20"
    max_concurrent: int = 1  # trials at once (0: as many as the cluster's CPUs hold)
    seed: int | None = 0  # the search's random draws (null: different each time)

    def validate(self) -> None:
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {self.num_samples}")
        if self.max_concurrent < 0:
            raise ValueError(f"max_concurrent must be >= 0, got {self.max_concurrent}")
        if not self.search:
            raise ValueError("search must name at least one setting to search")


@dataclass(frozen=True)
class Distribution:
    """One searched setting: ``kind`` (a key of :data:`DISTRIBUTIONS`) over ``values`` (the
    range's two ends, or the values)."""

    kind: str
    values: tuple[Any, ...]

    def candidates(self) -> list[Any]:
        """The values checked before the sweep starts: every value, or a range's ends and, for a
        range of floats, a value between them that is not a whole number (so that an integer
        setting searched over floats is refused before the sweep, not in a trial)."""
        if self.kind == "uniform":
            low, high = self.values
            return [low, low + (high - low) / math.pi, high]
        if self.kind == "loguniform":
            low, high = self.values
            return [low, math.exp(math.log(low) + math.log(high / low) / math.pi), high]
        return list(self.values)

    def to_tune(self) -> Any:
        """The Ray Tune search-space object."""
        from ray import tune

        if self.kind == "loguniform":
            return tune.loguniform(*self.values)
        if self.kind == "uniform":
            return tune.uniform(*self.values)
        if self.kind == "randint":
            return tune.randint(self.values[0], self.values[1] + 1)  # Tune's upper end is open
        if self.kind == "choice":
            return tune.choice(list(self.values))
        return tune.grid_search(list(self.values))


@dataclass
class Sweep:
    """A checked sweep: its file, the trials' shared settings and the searched distributions."""

    path: Path
    file: SweepFile
    base_path: Path | None
    settings: RunSettings  # defaults + base + set, before a trial's sampled values
    search: dict[str, Distribution]
    data: dict[str, Any] = field(default_factory=dict)  # the sweep file as read
    base_data: Any = None  # the base file as read
    command_line: str = ""  # the --set and --only items applied to the file, as typed
    whole_data: dict[str, Any] | None = None  # ``data`` without the --only narrowing (None: same)

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def num_trials(self) -> int:
        """Trials in all: ``num_samples`` times the size of each grid."""
        grids = [len(d.values) for d in self.search.values() if d.kind == "grid"]
        return self.file.num_samples * math.prod(grids)

    def identity(self) -> dict[str, Any]:
        """What makes two sweep files the same sweep (what a resume compares): the keys of the
        sweep file, and the contents of its base file under ``"base file"`` (not its path; nor
        comments, nor the settings' built-in defaults, which a newer version of this project may
        extend)."""
        return self._identity_of(self.data)

    def whole_identity(self) -> dict[str, Any]:
        """:meth:`identity` of the sweep with every grid whole (before ``--only`` narrowed it):
        what each part of a sweep run in parts (``--only``) into one output has in common."""
        return self._identity_of(self.data if self.whole_data is None else self.whole_data)

    def _identity_of(self, data: dict[str, Any]) -> dict[str, Any]:
        keys = {k: v for k, v in data.items() if k != "base"}
        return json.loads(
            json.dumps({**keys, "base file": self.base_data}, sort_keys=True, default=str)
        )

    def identity_json(self) -> str:
        return json.dumps(self.identity(), indent=2, sort_keys=True)


def trial_settings(
    settings: RunSettings | Mapping[str, Any], sampled: Mapping[str, Any], source: str = "search"
) -> RunSettings:
    """A trial's :class:`RunSettings`: the sweep's shared ``settings`` (or their dict) with the
    trial's ``sampled`` values applied as ``train_agent.py --set`` applies its items."""
    if not isinstance(settings, RunSettings):
        settings = config_from_dict(RunSettings, settings, source="sweep settings")
    plain = {k: v.item() if type(v).__module__ == "numpy" else v for k, v in sampled.items()}
    return apply_overrides(settings, plain, source=source, skip_none=False)


def load_sweep(
    path: str | Path,
    set_items: Mapping[str, Any] | None = None,
    only: Mapping[str, list[Any]] | None = None,
    command_line: str | None = None,
) -> Sweep:
    """Read and check a sweep file.

    ``set_items`` (``python -m rmc_agents.tune --set``) are added to the file's ``set`` (replacing
    its value of a key, or the search of a key the file searches); ``only`` (``--only``) keeps of a
    grid-searched key the values given, each of which must be in the file's grid. Both become part
    of the sweep as read (its :meth:`Sweep.identity`), so a resume compares them too;
    ``command_line`` is how they were typed (for the copy of the sweep file in its output).

    Raises:
        ConfigError: the file is missing or not YAML, a key of it is unknown or of the wrong type,
            a distribution is malformed, a ``set`` or ``search`` key is not a setting, or a value
            the search can give is refused by the settings; the message names the key.
    """
    path = Path(path)
    raw = read_mapping(path, "sweep file")
    data = _with_command_line(raw, set_items or {}, only or {}, path)
    whole = _with_command_line(raw, set_items or {}, {}, path) if only else None
    file = config_from_dict(SweepFile, data, source=str(path))
    base_path = _find_base(file.base, path)
    settings = load_config(RunSettings, base_path)
    base_data = read_config_mapping(base_path) if base_path is not None else None
    for key in file.set:
        _check_key_text(key, f"{path}: set")
    settings = apply_overrides(settings, file.set, source=f"{path}: set", skip_none=False)
    search = {key: _distribution(key, spec, f"{path}: search") for key, spec in file.search.items()}
    _check_values(settings, search, path)
    if file.scheduler.type == "asha":
        if "stop.timesteps" in search or settings.stop.timesteps is None:
            raise ConfigError(
                f"{path}: scheduler: asha measures trials in env frames and needs one fixed "
                "stop.timesteps (set it in the base file or under set:, not under search:)"
            )
        if file.scheduler.grace_frames >= settings.stop.timesteps:
            raise ConfigError(
                f"{path}: scheduler: grace_frames ({file.scheduler.grace_frames:,}) must be below "
                f"stop.timesteps ({settings.stop.timesteps:,})"
            )
    return Sweep(
        path=path,
        file=file,
        base_path=base_path,
        settings=settings,
        search=search,
        data=data,
        base_data=base_data,
        whole_data=whole,
        command_line=(
            command_line
            if command_line is not None
            else _command_line_text(set_items or {}, only or {})
        ),
    )


def _command_line_text(set_items: Mapping[str, Any], only: Mapping[str, list[Any]]) -> str:
    parts = [
        f"--set {shlex.quote(k + '=' + json.dumps(v, separators=(',', ':')))}"
        for k, v in set_items.items()
    ]
    parts += [f"--only {shlex.quote(k + '=' + ','.join(map(str, v)))}" for k, v in only.items()]
    return " ".join(parts)


#: A number in exponent form without a dot (``1e-3``), which YAML reads as text.
_EXPONENT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")


def _plain(value: Any) -> Any:
    """A value from the command line as the settings read it: ``1e-3`` as the number 0.001."""
    if isinstance(value, str) and _EXPONENT.match(value.strip()):
        return float(value)
    return value


def _same(a: Any, b: Any) -> bool:
    """Whether a grid value and a value given on the command line are the same setting: numbers
    compare by value (``1.0e-3`` and ``0.001``; ``3`` and ``3.0``), a bool only with a bool."""
    a, b = _plain(a), _plain(b)
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    return type(a) is type(b) and a == b


def _with_command_line(
    data: dict[str, Any], set_items: Mapping[str, Any], only: Mapping[str, list[Any]], path: Path
) -> dict[str, Any]:
    """The sweep file's ``data`` with ``--set`` items and ``--only`` grids applied (a ``set`` or
    ``search`` that is not a mapping is left as it is, for the file's own check to name)."""
    fixed, search = data.get("set", {}), data.get("search")
    if not (set_items or only) or not isinstance(search, Mapping):
        return data
    if fixed is not None and not isinstance(fixed, Mapping):
        return data
    data, fixed, search = dict(data), dict(fixed or {}), dict(search)
    for key, value in set_items.items():
        _check_key_text(key, "--set")
        if key in only:
            raise ConfigError(f"--set {key} and --only {key}: give one of them")
        fixed[key] = _plain(value)
        if key in search:
            del search[key]
            if not search:
                raise ConfigError(
                    f"--set {key}: {key} is the only key {path} searches, and a sweep searches "
                    f"at least one (to run some values of its grid: --only {key}=VALUE)"
                )
    if set_items:
        data["set"] = fixed
    for key, values in only.items():
        spec = search.get(key)
        grid = spec.get("grid") if isinstance(spec, Mapping) else None
        if not isinstance(grid, list):
            searched = ", ".join(
                k for k, v in search.items() if isinstance(v, Mapping) and "grid" in v
            )
            raise ConfigError(
                f"--only {key}: {path} does not search {key} by grid (its grid keys: "
                f"{searched or 'none'})"
            )
        missing = [v for v in values if not any(_same(v, g) for g in grid)]
        if missing:
            raise ConfigError(
                f"--only {key}: {', '.join(map(repr, missing))} not in the sweep's grid {grid!r}"
            )
        search[key] = {"grid": [g for g in grid if any(_same(v, g) for v in values)]}
    data["search"] = search
    return data


def _find_base(base: str | None, sweep_path: Path) -> Path | None:
    """The base config file: relative to the working directory, else to the sweep file."""
    return None if base is None else find_base(base, sweep_path)


def _check_key_text(key: Any, source: str) -> None:
    if not isinstance(key, str) or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"{source}: {key!r} is not a dotted settings key (e.g. training.lr)")


def _number(value: Any, key: str, source: str) -> float:
    """A range end: a number (YAML reads 1e-5 without a dot as text: accepted)."""
    if isinstance(value, bool):
        raise ConfigError(f"{source}: '{key}': the range must hold numbers, got {value!r}")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(
                f"{source}: '{key}': the range must hold numbers, got {value!r}"
            ) from None
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{source}: '{key}': the range must hold numbers, got {value!r}")
    return value


def _distribution(key: Any, spec: Any, source: str) -> Distribution:
    """One ``search`` entry as a :class:`Distribution`."""
    _check_key_text(key, source)
    names = ", ".join(DISTRIBUTIONS)
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise ConfigError(
            f"{source}: '{key}' must be one distribution, e.g. {{loguniform: [1.0e-5, 1.0e-3]}} "
            f"or {{choice: [2, 4]}} (one of {names}), got {spec!r}"
        )
    kind, values = next(iter(spec.items()))
    if kind not in DISTRIBUTIONS:
        close = difflib.get_close_matches(str(kind), DISTRIBUTIONS, n=1)
        hint = f"did you mean '{close[0]}'?; " if close else ""
        raise ConfigError(
            f"{source}: '{key}': unknown distribution '{kind}' ({hint}known: {names})"
        )
    if not isinstance(values, list) or not values:
        what = "[low, high]" if DISTRIBUTIONS[kind] else "a non-empty list of values"
        raise ConfigError(f"{source}: '{key}': {kind} takes {what}, got {values!r}")
    if not DISTRIBUTIONS[kind]:
        return Distribution(kind, tuple(values))
    if len(values) != 2:
        raise ConfigError(f"{source}: '{key}': {kind} takes [low, high], got {values!r}")
    low, high = (_number(v, key, source) for v in values)
    if kind == "randint":
        if any(isinstance(v, float) and not v.is_integer() for v in (low, high)):
            raise ConfigError(f"{source}: '{key}': randint takes integers, got {values!r}")
        low, high = int(low), int(high)
    if not low < high:
        raise ConfigError(f"{source}: '{key}': {kind} needs low < high, got {values!r}")
    if kind == "loguniform" and low <= 0:
        raise ConfigError(f"{source}: '{key}': loguniform needs low > 0, got {values!r}")
    return Distribution(kind, (low, high))


def _check_values(settings: RunSettings, search: dict[str, Distribution], path: Path) -> None:
    """Try every searched key with each of its candidate values, then (when few enough) every
    combination of them: each through :func:`trial_settings`, as a trial will be built."""
    source = f"{path}: search"
    for key, dist in search.items():
        for value in dist.candidates():
            trial_settings(settings, {key: value}, source=f"{source} {key}={value!r}")
    keys = list(search)
    sizes = [len(search[k].candidates()) for k in keys]
    if math.prod(sizes) > _MAX_COMBINATIONS:
        return
    for combo in itertools.product(*(search[k].candidates() for k in keys)):
        values = dict(zip(keys, combo, strict=True))
        shown = ", ".join(f"{k}={v!r}" for k, v in values.items())
        trial_settings(settings, values, source=f"{source} ({shown})")

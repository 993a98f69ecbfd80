"""Typed configs loaded from YAML, with strict validation.

Configs are plain dataclasses. :func:`load_config` reads a YAML file into one, checking every key
against the dataclass fields: an unknown key, a value of the wrong type or an impossible value raises
one :class:`ConfigError` that names the key and the file. CLI flags are applied on top with
:func:`apply_overrides` using dotted keys (``{"model.mem_slots": 8}``), through the same checks.

A config file may start from another: ``base: other.yaml`` (looked up in the working directory,
else beside the file) takes every key of that file, and the file's own keys replace the base's
one by one, mappings merged key by key (:func:`read_config_mapping`). Bases may chain; a loop is
refused.

A dataclass states its impossible values in a ``validate(self)`` method that raises ``ValueError``
with a message naming the field; the loader adds the file name.

Example::

    @dataclass
    class Optim:
        lr: float = 1e-3

        def validate(self) -> None:
            if self.lr <= 0:
                raise ValueError(f"lr must be > 0, got {self.lr}")

    @dataclass
    class Run:
        steps: int = 100
        optim: Optim = field(default_factory=Optim)

    cfg = load_config(Run, "configs/run.yaml", overrides={"optim.lr": 3e-4})
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

T = TypeVar("T")

__all__ = [
    "ConfigError",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "find_base",
    "load_config",
    "read_config_mapping",
    "save_config",
]


class ConfigError(ValueError):
    """A config file or override is malformed: unknown key, wrong type or impossible value."""


def read_mapping(path: Path, kind: str) -> dict[str, Any]:
    """The YAML mapping in ``path`` (an empty file: ``{}``).

    Raises:
        ConfigError: the file is missing (``"<kind> not found: <path>"``), is not YAML, or its top
            level is not a mapping.
    """
    if not path.is_file():
        raise ConfigError(f"{kind} not found: {path}")
    try:
        loaded = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(
            f"{path}: the top level must be a mapping of keys, got {type(loaded).__name__}"
        )
    return loaded


def find_base(base: Any, path: Path) -> Path:
    """The file a ``base:`` key in ``path`` names: relative to the working directory, else to
    ``path``'s folder. Raises ``ConfigError`` naming both places when it is in neither."""
    if not isinstance(base, str) or not base:
        raise ConfigError(f"{path}: base: must be the path of a config file, got {base!r}")
    for candidate in (Path(base), path.parent / base):
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"{path}: base: config file not found: {base} (looked in the working directory and in "
        f"{path.parent})"
    )


def read_config_mapping(path: str | Path, kind: str = "config file") -> dict[str, Any]:
    """The mapping of a config file with its ``base:`` chain resolved: the base's keys, then the
    file's, mappings merged key by key, lists and values replaced.

    Raises:
        ConfigError: a file is missing or not a mapping, a ``base:`` is not found, or the bases
            loop (the message lists the chain).
    """
    return _resolved(_base_chain(Path(path), kind))


def _resolved(chain: list[tuple[Path, dict[str, Any]]]) -> dict[str, Any]:
    """One mapping from a :func:`_base_chain`: the last base first, each file's keys over it."""
    merged: dict[str, Any] = {}
    for _, data in reversed(chain):
        merged = _merged(merged, {k: v for k, v in data.items() if k != "base"})
    return merged


def _base_chain(path: Path, kind: str) -> list[tuple[Path, dict[str, Any]]]:
    """``[(file, its mapping), (its base, ...), ...]``."""
    chain: list[tuple[Path, dict[str, Any]]] = []
    while True:
        if any(path.resolve() == p.resolve() for p, _ in chain):
            loop = " -> ".join(str(p) for p in [*(p for p, _ in chain), path])
            raise ConfigError(f"{chain[0][0]}: base: files name each other in a loop: {loop}")
        data = read_mapping(path, kind if not chain else f"base of {chain[-1][0]}")
        chain.append((path, data))
        if "base" not in data:
            return chain
        path = find_base(data["base"], path)


def _merged(base: Mapping[str, Any], own: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in own.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def load_config(
    cls: type[T],
    path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    skip_none: bool = True,
) -> T:
    """Build a ``cls`` instance from defaults, then a YAML file, then dotted-key overrides.

    Args:
        cls: a dataclass type (fields may be nested dataclasses).
        path: YAML file holding a mapping; ``None`` means defaults only. Its ``base:`` chain is
            resolved first (:func:`read_config_mapping`).
        overrides: ``{"dotted.key": value}`` applied after the file (e.g. from CLI flags);
            ``None`` values are skipped so that unset flags keep the file's value...
        skip_none: ...unless this is False: then ``None`` sets the key to null (``--set
            KEY=null``; the caller leaves out the flags that were not given).

    Raises:
        ConfigError: the file is missing or not a mapping, or a key is unknown, of the wrong
            type or impossible; the message names the key and the source.
    """
    data: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        path = Path(path)
        source = str(path)
        chain = _base_chain(path, "config file")
        if len(chain) > 1:  # a key's error may come from a base: name them all
            source += " (with base " + " <- ".join(str(p) for p, _ in chain[1:]) + ")"
        data = _resolved(chain)
    cfg = config_from_dict(cls, data, source=source)
    if overrides:
        cfg = apply_overrides(cfg, overrides, skip_none=skip_none)
    return cfg


def parse_set_items(items: Iterable[str]) -> dict[str, Any]:
    """``--set KEY=VALUE`` strings as overrides; each value is read as YAML (``0.5``, ``true``,
    ``[12, 24]``, ``null``). Raises ``ConfigError`` naming the item that is not ``KEY=VALUE``."""
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            overrides[key.strip()] = yaml.safe_load(text)
        except yaml.YAMLError:
            raise ConfigError(f"--set {key}: cannot read value {text!r}") from None
    return overrides


def config_from_dict(cls: type[T], data: Mapping[str, Any], source: str = "<dict>") -> T:
    """Build a ``cls`` instance from a (nested) mapping, strictly. See :func:`load_config`."""
    return _build(cls, data, prefix="", source=source)


def apply_overrides(
    cfg: T, overrides: Mapping[str, Any], source: str = "command line", skip_none: bool = True
) -> T:
    """Return a copy of ``cfg`` with dotted-key overrides applied and re-validated.

    ``None`` values are skipped (an unset flag) unless ``skip_none`` is False (``--set KEY=null``).
    """
    data = config_to_dict(cfg)
    for key, value in overrides.items():
        if value is None and skip_none:
            continue
        parts = key.split(".")
        node, field_type, free = data, type(cfg), False
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if free:  # within a free-form mapping (``env_kwargs``): its keys are the user's
                if not last:
                    node = node.setdefault(part, {})
                    if not isinstance(node, dict):
                        raise ConfigError(
                            f"{source}: {'.'.join(parts[: i + 1])} is not a mapping, "
                            f"cannot set {key}"
                        )
                continue
            if part not in node or (not last and not isinstance(node[part], dict)):
                raise ConfigError(_unknown_key(source, parts[: i + 1], node))
            field_type = _field_type(field_type, part)
            free = get_origin(field_type) is dict or field_type is dict
            if not last:
                node = node[part]
        node[parts[-1]] = value
    return _build(type(cfg), data, prefix="", source=source)


def _field_type(cls: Any, name: str) -> Any:
    """The type of field ``name`` of dataclass ``cls`` (``X`` for ``X | None``); ``None`` when
    ``cls`` is not a dataclass."""
    if not (dataclasses.is_dataclass(cls) and isinstance(cls, type)):
        return None
    tp = get_type_hints(cls).get(name)
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        tp = args[0] if len(args) == 1 else tp
    return tp


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A plain, YAML-safe dict of a config dataclass (tuples become lists)."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(cfg)


def save_config(cfg: Any, path: str | Path) -> None:
    """Write ``cfg`` as YAML (the resolved config of a run)."""
    Path(path).write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))


# --- internals -------------------------------------------------------------------------------


def _unknown_key(source: str, path: list[str], known: Iterable[str]) -> str:
    """``unknown config key 'model.mem_slot' (did you mean 'model.mem_slots'?; known keys under
    model: ...)``."""
    known = list(known)
    parent = ".".join(path[:-1])
    close = difflib.get_close_matches(path[-1], known, n=1)
    hint = f"did you mean '{'.'.join([*path[:-1], close[0]])}'?; " if close else ""
    where = f" under {parent}" if parent else ""
    return f"{source}: unknown config key '{'.'.join(path)}' ({hint}known keys{where}: {', '.join(known)})"


def _build(cls: type[T], data: Mapping[str, Any], prefix: str, source: str) -> T:
    if not isinstance(data, Mapping):
        where = prefix.rstrip(".") or "top level"
        raise ConfigError(f"{source}: '{where}' must be a mapping, got {type(data).__name__}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        path = [p for p in prefix.split(".") if p] + [unknown[0]]
        raise ConfigError(_unknown_key(source, path, fields))
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, f"{prefix}{name}", source)
    try:
        obj = cls(**kwargs)
        if hasattr(obj, "validate"):
            obj.validate()
    except ConfigError:
        raise
    except (ValueError, TypeError) as exc:
        where = f" under '{prefix.rstrip('.')}'" if prefix else ""
        raise ConfigError(f"{source}: invalid value{where}: {exc}") from None
    return obj


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(tp: Any, value: Any, key: str, source: str) -> Any:
    """Check ``value`` against annotation ``tp``; return it converted where lossless."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, key, source)
            except ConfigError as exc:
                errors.append(exc)
        raise ConfigError(f"{source}: '{key}' must be {_type_name(tp)}, got {value!r}") from None
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ConfigError(
                f"{source}: '{key}' must be one of {', '.join(map(repr, choices))}, got {value!r}"
            )
        return value
    if dataclasses.is_dataclass(tp):
        if dataclasses.is_dataclass(value):
            value = config_to_dict(value)
        return _build(tp, value if value is not None else {}, prefix=f"{key}.", source=source)
    if origin in (list, tuple, typing.Sequence):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: '{key}' must be a list, got {value!r}")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{source}: '{key}' must have {len(args)} items, got {value!r}")
            return tuple(
                _coerce(a, v, f"{key}[{i}]", source)
                for i, (a, v) in enumerate(zip(args, value, strict=True))
            )
        item = args[0] if args else Any
        items = [_coerce(item, v, f"{key}[{i}]", source) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{source}: '{key}' must be a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: '{key}' must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{source}: '{key}' must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            # YAML reads "1e-3" (no dot) as a string; accept numeric strings.
            if isinstance(value, str):
                try:
                    return float(value)
                except ValueError:
                    pass
            raise ConfigError(f"{source}: '{key}' must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: '{key}' must be a string, got {value!r}")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{source}: '{key}' must be {_type_name(tp)}, got {value!r}")
    return value

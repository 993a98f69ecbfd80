"""A trained policy as plain data: ``model.safetensors`` (the weights) and ``policy.json`` (the card).

RLlib's checkpoints are pickles: loading one runs whatever code the file names, so a checkpoint
from someone else is a program from someone else. A policy written here holds no code:

- ``model.safetensors``: the module's tensors (safetensors: a JSON header and raw numbers);
- ``policy.json``: everything needed to rebuild the module around them: the format and its
  version, the module's settings (``model_config``, and the ``model:`` block of the run config
  where known), its observation and action spaces as JSON (:func:`space_to_json`), the env it
  was trained on, the versions of the libraries and the commit it was written with, and its score
  where measured.

:func:`load_policy` rebuilds this project's :class:`~rmc_agents.rl.module.RecurrentAgentModule`
from them in this process with plain torch: it reads JSON and safetensors only (no ``pickle``, no
``torch.load``) and does not start Ray (it imports RLlib's module base class, which starts
nothing). ``python -m rmc_agents.rollout --checkpoint DIR`` and :mod:`rmc_agents.export` use it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

__all__ = [
    "CARD",
    "FORMAT",
    "FORMAT_VERSION",
    "WEIGHTS",
    "PolicyFileError",
    "is_policy_dir",
    "load_policy",
    "read_card",
    "save_policy",
    "space_from_json",
    "space_to_json",
]

CARD = "policy.json"
WEIGHTS = "model.safetensors"
FORMAT = "rmc-agents policy"
FORMAT_VERSION = 1
_MODULE = "rmc_agents.rl.module.RecurrentAgentModule"  # the one module class this format holds


class PolicyFileError(ValueError):
    """A policy directory that is missing files or holds ones that do not fit together."""


# --- spaces as JSON -----------------------------------------------------------------------------


def _number(x: float) -> float | str:
    """A float for JSON: finite as is, infinities and NaN as strings (JSON has none)."""
    x = float(x)
    if math.isfinite(x):
        return x
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def _bounds(values: Any) -> Any:
    """Box bounds: one number where all are equal, else the nested list."""
    import numpy as np

    flat = np.asarray(values, dtype=np.float64).ravel()
    if flat.size and np.all(flat == flat[0]):
        return _number(flat[0])
    return [_number(v) for v in flat]


def space_to_json(space: Any) -> dict[str, Any]:
    """A Gymnasium space as JSON-ready data (Box, Discrete, MultiDiscrete, MultiBinary, Text,
    and Dict / Tuple of them).

    Raises:
        PolicyFileError: a space of another kind.
    """
    import gymnasium as gym
    import numpy as np

    if isinstance(space, gym.spaces.Box):
        return {
            "type": "Box",
            "shape": list(space.shape),
            "dtype": np.dtype(space.dtype).name,
            "low": _bounds(space.low),
            "high": _bounds(space.high),
        }
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, gym.spaces.MultiDiscrete):
        return {
            "type": "MultiDiscrete",
            "nvec": np.asarray(space.nvec).tolist(),
            "start": np.asarray(space.start).tolist(),
            "dtype": np.dtype(space.dtype).name,
        }
    if isinstance(space, gym.spaces.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    if isinstance(space, gym.spaces.Text):
        return {
            "type": "Text",
            "min_length": int(space.min_length),
            "max_length": int(space.max_length),
            "charset": "".join(sorted(space.character_set)),
        }
    if isinstance(space, gym.spaces.Dict):
        return {"type": "Dict", "spaces": [[k, space_to_json(s)] for k, s in space.spaces.items()]}
    if isinstance(space, gym.spaces.Tuple):
        return {"type": "Tuple", "spaces": [space_to_json(s) for s in space.spaces]}
    raise PolicyFileError(f"cannot write a {type(space).__name__} space to a policy file")


def _array(value: Any, shape: list[int], dtype: Any) -> Any:
    import numpy as np

    def one(x: Any) -> float:
        return float(x) if not isinstance(x, str) else float(x)  # "inf", "-inf", "nan"

    if isinstance(value, list):
        return np.asarray([one(v) for v in value], dtype=np.float64).reshape(shape).astype(dtype)
    return np.full(shape, one(value), dtype=np.float64).astype(dtype)


def space_from_json(data: Any) -> Any:
    """The Gymnasium space :func:`space_to_json` wrote.

    Raises:
        PolicyFileError: data that describes no space.
    """
    import gymnasium as gym
    import numpy as np

    try:
        kind = data["type"]
        if kind == "Box":
            dtype = np.dtype(data["dtype"])
            shape = [int(n) for n in data["shape"]]
            low, high = _array(data["low"], shape, dtype), _array(data["high"], shape, dtype)
            return gym.spaces.Box(low, high, shape, dtype)
        if kind == "Discrete":
            return gym.spaces.Discrete(int(data["n"]), start=int(data.get("start", 0)))
        if kind == "MultiDiscrete":
            return gym.spaces.MultiDiscrete(
                np.asarray(data["nvec"]),
                dtype=np.dtype(data.get("dtype", "int64")),
                start=np.asarray(data["start"]) if "start" in data else None,
            )
        if kind == "MultiBinary":
            return gym.spaces.MultiBinary(data["n"])
        if kind == "Text":
            return gym.spaces.Text(
                int(data["max_length"]),
                min_length=int(data["min_length"]),
                charset=data["charset"],
            )
        if kind == "Dict":
            return gym.spaces.Dict({k: space_from_json(s) for k, s in data["spaces"]})
        if kind == "Tuple":
            return gym.spaces.Tuple([space_from_json(s) for s in data["spaces"]])
    except PolicyFileError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise PolicyFileError(
            f"a space in the policy card cannot be read: {type(exc).__name__}: {exc}"
        ) from None
    raise PolicyFileError(f"a space in the policy card has an unknown type: {data!r:.80}")


# --- writing and reading ------------------------------------------------------------------------


def is_policy_dir(path: str | Path) -> bool:
    """Whether ``path`` holds a policy written by :func:`save_policy`."""
    path = Path(path)
    return (path / CARD).is_file() and (path / WEIGHTS).is_file()


def _fresh_module(card: dict[str, Any]) -> Any:
    """This project's module as ``card`` describes it, with new weights (inference only)."""
    from rmc_agents.rl.module import RecurrentAgentModule

    if card.get("module") != _MODULE:
        raise PolicyFileError(
            f"the policy card names the module {card.get('module')!r}; this format holds "
            f"{_MODULE} only"
        )
    try:
        observation_space = space_from_json(card["observation_space"])
        action_space = space_from_json(card["action_space"])
        model_config = dict(card["model_config"])
    except (KeyError, TypeError) as exc:
        raise PolicyFileError(f"the policy card lacks {exc}") from None
    try:
        return RecurrentAgentModule(
            observation_space=observation_space,
            action_space=action_space,
            inference_only=True,
            model_config=model_config,
        )
    except Exception as exc:  # noqa: BLE001 - the settings the card gives do not build
        raise PolicyFileError(
            f"the policy card's settings do not build the module: {type(exc).__name__}: {exc}"
        ) from None


def save_policy(module: Any, path: str | Path, **card: Any) -> Path:
    """Write ``module`` (this project's RLModule, trained) to the directory ``path`` as
    ``model.safetensors`` and ``policy.json``; ``card`` adds entries to the card (env, env_kwargs,
    algo, model, score, ...). The tensors written are those of the module as inference needs it
    (APPO's target network is left out). Returns ``path``.

    Raises:
        PolicyFileError: a module of another class or a space this format cannot describe.
    """
    from safetensors.torch import save

    from rmc_agents.provenance import provenance

    name = f"{type(module).__module__}.{type(module).__qualname__}"
    if name != _MODULE:
        raise PolicyFileError(f"save_policy writes {_MODULE} modules, not {name}")
    path = Path(path)
    model_config = {
        k: list(v) if isinstance(v, tuple) else v for k, v in dict(module.model_config).items()
    }
    data: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "module": _MODULE,
        "core": model_config.get("core"),
        "model_config": model_config,
        "observation_space": space_to_json(module.observation_space),
        "action_space": space_to_json(module.action_space),
        **card,
    }
    data.setdefault("written_with", provenance())
    fresh = _fresh_module(json.loads(json.dumps(data)))  # as a reader will rebuild it
    state = module.state_dict()
    wanted = fresh.state_dict()
    missing = sorted(set(wanted) - set(state))
    if missing:
        raise PolicyFileError(f"the module lacks tensors its settings call for: {missing[:5]}")
    tensors = {k: state[k].detach().cpu().contiguous().clone() for k in wanted}
    path.mkdir(parents=True, exist_ok=True)
    (path / WEIGHTS).write_bytes(save(tensors, metadata={"format": FORMAT}))
    (path / CARD).write_text(json.dumps(data, indent=2) + "\n")
    return path


def read_card(path: str | Path) -> dict[str, Any]:
    """The card (``policy.json``) of the policy in ``path``.

    Raises:
        PolicyFileError: no card there, not JSON, or another format or a newer version of it.
    """
    file = Path(path) / CARD
    try:
        card = json.loads(file.read_text())
    except FileNotFoundError:
        raise PolicyFileError(f"no {CARD} in '{path}'") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PolicyFileError(f"'{file}' is not a readable JSON card: {exc}") from None
    if not isinstance(card, dict) or card.get("format") != FORMAT:
        raise PolicyFileError(f"'{file}' is not an rmc-agents policy card")
    version = card.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise PolicyFileError(
            f"'{file}' has format version {version!r}; this rmc-agents reads up to "
            f"{FORMAT_VERSION} (a newer rmc-agents wrote it)"
        )
    return card


def load_policy(path: str | Path) -> Any:
    """The policy in ``path`` (written by :func:`save_policy` or ``python -m rmc_agents.export``)
    as this project's RLModule, a ``torch.nn.Module`` on the CPU in eval mode; its card is
    ``module.policy_card``. This project's env ids are registered with Gymnasium on the way.

    Reads ``policy.json`` and ``model.safetensors`` only: nothing is unpickled and no code from
    the files runs; Ray is not started.

    Raises:
        PolicyFileError: missing or unreadable files, or weights that do not fit the card.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from rmc_agents.rl.envs import _import_project_envs

    path = Path(path)
    card = read_card(path)
    module = _fresh_module(card)
    _import_project_envs()  # so that gym.make(card["env"]) finds this project's ids
    try:
        tensors = load_file(str(path / WEIGHTS), device="cpu")
    except FileNotFoundError:
        raise PolicyFileError(f"no {WEIGHTS} in '{path}'") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise PolicyFileError(f"'{path / WEIGHTS}' is not readable: {exc}") from None
    wanted = module.state_dict()
    missing, extra = sorted(set(wanted) - set(tensors)), sorted(set(tensors) - set(wanted))
    if missing or extra:
        raise PolicyFileError(
            f"the weights in '{path / WEIGHTS}' do not fit the card: missing {missing[:5]}, "
            f"unexpected {extra[:5]}"
        )
    for key, value in tensors.items():
        if tuple(value.shape) != tuple(wanted[key].shape):
            raise PolicyFileError(
                f"the weights in '{path / WEIGHTS}' do not fit the card: '{key}' has shape "
                f"{tuple(value.shape)}, the module {tuple(wanted[key].shape)}"
            )
    module.load_state_dict(tensors, strict=True)
    module.eval()
    module.policy_card = card
    return module

"""What a record needs to be trusted later: the commit it was made at and the library versions.

Kept free of heavy imports: versions are read from the installed packages' metadata, not by
importing them.
"""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

__all__ = ["PACKAGES", "git_commit", "provenance", "versions"]

#: The packages whose versions a record names (those whose changes could change a result).
PACKAGES = ("rmc-agents", "torch", "ray", "gymnasium", "numpy", "safetensors")

_REPO = Path(__file__).resolve().parents[1]


def versions() -> dict[str, str | None]:
    """``{package: version}`` of :data:`PACKAGES` (None: not installed) and Python's."""
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def git_commit(repo: Path = _REPO) -> dict[str, str | bool | None]:
    """``{"commit": short hash or None, "dirty": whether tracked files differ from it (None if
    unknown)}`` of the checkout this code runs from (None outside a git checkout)."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], capture_output=True, text=True, cwd=repo, timeout=10
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "--short", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def provenance() -> dict[str, object]:
    """The commit (and whether the tree was dirty) and the versions, for a record."""
    return {**git_commit(), "versions": versions()}

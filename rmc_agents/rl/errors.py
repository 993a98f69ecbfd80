"""Exceptions shared by the RL modules, kept free of heavy imports (torch, Ray).

The CLI catches these to print one ``error:`` line; importing them from here lets it report a
user's mistake (a bad config, an unknown env id) without first paying for a torch import.
"""

from __future__ import annotations

__all__ = ["CheckpointError", "NonFiniteUpdateError", "UnsupportedSpaceError", "non_finite_cause"]


class UnsupportedSpaceError(ValueError):
    """The observation (or action) space has no encoder."""


class NonFiniteUpdateError(FloatingPointError):
    """A loss or gradient was NaN or infinite; the update was not applied."""


class CheckpointError(ValueError):
    """A checkpoint is missing files or holds unreadable ones."""


def non_finite_cause(exc: BaseException) -> NonFiniteUpdateError | None:
    """The :class:`NonFiniteUpdateError` behind ``exc`` (a remote learner's ``RayTaskError``, or
    a chained exception), or None."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, NonFiniteUpdateError):
            # A RayTaskError made "an instance of its cause" is one too; its text is a traceback.
            inner = getattr(e, "cause", None)
            return inner if isinstance(inner, NonFiniteUpdateError) else e
        todo += [
            c
            for c in (getattr(e, "cause", None), e.__cause__, e.__context__)
            if isinstance(c, BaseException)
        ]
    return None

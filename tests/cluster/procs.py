"""Process bookkeeping for tests that start Ray themselves: find, wait for and end only our own.

Everything goes through ``/proc`` (no psutil). Processes are found by session id: each Ray node
or driver a test starts runs in a new session (``start_new_session=True``), so its session id is
the pid the test got back, and every process it spawns that did not start a session of its own
shares it. Nothing here matches processes by name.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

__all__ = ["alive", "descendants", "end_session", "session_members", "wait_gone"]


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces; the fields after it are plain
    return text[text.rindex(")") + 2 :].split()


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def session_members(sid: int) -> list[int]:
    """Live processes whose session id is ``sid``."""
    members = []
    for pid in _all_pids():
        fields = _stat(pid)
        if fields is not None and fields[0] != "Z" and int(fields[3]) == sid:
            members.append(pid)
    return members


def descendants(root: int) -> list[int]:
    """Live descendants of ``root`` (children, grandchildren, ...), whatever their session."""
    children: dict[int, list[int]] = {}
    for pid in _all_pids():
        fields = _stat(pid)
        if fields is not None and fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(pid)
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def wait_gone(pids: list[int], timeout_s: float) -> list[int]:
    """Wait until none of ``pids`` is alive; return those still alive after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    left = [p for p in pids if alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = [p for p in left if alive(p)]
    return left


def end_session(sid: int, grace_s: float = 15.0) -> None:
    """SIGTERM the session leader ``sid`` (e.g. ``ray start --block``, which stops its node),
    then SIGKILL whatever of the session is left after ``grace_s``."""
    try:
        os.kill(sid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    left = wait_gone(session_members(sid), grace_s)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_gone(left, 10.0)

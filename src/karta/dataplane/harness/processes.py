"""Killing a harness process together with everything it started.

Both harnesses run their shell tools in sessions of their own (`setsid`), so neither a signal to
the harness nor one to its process group reaches a running tool: killed alone, the harness
leaves its tools running as orphans. The tools are found instead by walking `/proc` from the
harness's pid, while the parent links still exist, and killed with it.
"""

from __future__ import annotations

import os
import signal
from contextlib import suppress
from pathlib import Path


def descendants(pid: int) -> list[int]:
    """Every living process below `pid` (children first, then theirs)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # `pid (comm) state ppid …`: comm may hold spaces and parentheses.
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # it ended while we looked
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += below
    return found


def _kill(pid: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            # A tool's shell leads its own group: the group also holds what it forks next.
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)


def kill_tree(pid: int) -> None:
    """SIGKILL `pid` and all its descendants. The root is stopped first, so it starts nothing
    new while its tree is read."""
    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGSTOP)
    for process in [*descendants(pid), pid]:
        _kill(process)


def kill_descendants(pid: int) -> None:
    """SIGKILL what `pid` started (its running tools), leaving `pid` itself alone."""
    for process in descendants(pid):
        _kill(process)

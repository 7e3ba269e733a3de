"""Per-sandbox resource limits through cgroups: v1 (one hierarchy per controller, what this
kind of host delegates) or v2 (one unified tree), whichever gives memory and pids control.

Every sandbox gets its own leaf, nested under the server's own cgroup so the server's limits
still cap the sum, under a parent named after the server's home so two servers on one host never
touch each other's sandboxes. The launcher joins the leaf before it execs anything, so every
process the harness starts is in it; teardown kills whatever is left.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
V1_CONTROLLERS = ("memory", "pids", "cpu")
CPU_PERIOD_US = 100_000
# CPU weights against sibling sandboxes: normal, and a pre-started harness's until a session
# adopts it (the kernel's lowest), so the pool's starts only use CPU live turns leave idle.
V1_SHARES = {False: "1024", True: "2"}
V2_WEIGHT = {False: "100", True: "1"}


@dataclass(frozen=True)
class Limits:
    memory_bytes: int
    pids: int
    cpus: float


def own_cgroups(text: str) -> dict[str, str]:
    """`/proc/self/cgroup` as {controller: path}; the v2 entry is under ""."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            found[name.removeprefix("name=")] = path
    return found


def v2_usable(root: Path = CGROUP_ROOT) -> bool:
    controllers = root / "cgroup.controllers"
    try:
        return {"memory", "pids"} <= set(controllers.read_text().split())
    except OSError:
        return False


def v1_usable(root: Path = CGROUP_ROOT) -> bool:
    return all((root / name / "cgroup.procs").exists() for name in V1_CONTROLLERS)


@dataclass(frozen=True)
class CgroupLayout:
    """Where one server's sandboxes live in each hierarchy (pure: paths only)."""

    version: int
    parents: dict[str, Path]  # controller (or "" for v2) → the server's sandbox parent

    @classmethod
    def detect(cls, group: str, root: Path = CGROUP_ROOT, own: str | None = None) -> CgroupLayout:
        mine = own_cgroups(own if own is not None else Path("/proc/self/cgroup").read_text())
        if v2_usable(root):
            base = root / mine.get("", "/").lstrip("/")
            return cls(2, {"": base / group})
        parents = {
            name: root / name / mine.get(name, "/").lstrip("/") / group for name in V1_CONTROLLERS
        }
        return cls(1, parents)

    def leaf(self, name: str) -> Cgroup:
        return Cgroup(self.version, {ctl: parent / name for ctl, parent in self.parents.items()})

    def leaves(self) -> list[Cgroup]:
        """Every sandbox leaf that exists now (after a crash: the ones left behind)."""
        first = next(iter(self.parents.values()))
        try:
            names = sorted(p.name for p in first.iterdir() if p.is_dir())
        except FileNotFoundError:
            return []
        return [self.leaf(name) for name in names]


@dataclass(frozen=True)
class Cgroup:
    version: int
    dirs: dict[str, Path]

    def _dir(self, controller: str) -> Path:
        return self.dirs["" if self.version == 2 else controller]

    def limit_files(self, limits: Limits, *, background: bool = False) -> dict[Path, str]:
        """What to write where to apply `limits` (pure); `background`: at the lowest CPU
        weight."""
        quota = max(1000, int(limits.cpus * CPU_PERIOD_US))
        if self.version == 2:
            d = self.dirs[""]
            return {
                d / "memory.max": str(limits.memory_bytes),
                d / "memory.swap.max": "0",
                d / "pids.max": str(limits.pids),
                d / "cpu.max": f"{quota} {CPU_PERIOD_US}",
                **self.weight_file(background=background),
            }
        return {
            self._dir("memory") / "memory.limit_in_bytes": str(limits.memory_bytes),
            self._dir("pids") / "pids.max": str(limits.pids),
            self._dir("cpu") / "cpu.cfs_period_us": str(CPU_PERIOD_US),
            self._dir("cpu") / "cpu.cfs_quota_us": str(quota),
            **self.weight_file(background=background),
        }

    def weight_file(self, *, background: bool) -> dict[Path, str]:
        """The CPU weight against the other sandboxes (pure)."""
        if self.version == 2:
            return {self.dirs[""] / "cpu.weight": V2_WEIGHT[background]}
        return {self._dir("cpu") / "cpu.shares": V1_SHARES[background]}

    @property
    def procs_files(self) -> list[Path]:
        """The files the launcher writes its pid to, to join every controller."""
        return sorted({d / "cgroup.procs" for d in self.dirs.values()})

    def create(self, limits: Limits, *, background: bool = False) -> None:
        if self.version == 2:
            _enable_v2_controllers(self.dirs[""].parent)
        for directory in self.dirs.values():
            directory.mkdir(parents=True, exist_ok=True)
        for path, value in self.limit_files(limits, background=background).items():
            path.write_text(value)

    def reweigh(self, *, background: bool) -> None:
        for path, value in self.weight_file(background=background).items():
            path.write_text(value)

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in (self._dir("pids") / "cgroup.procs").read_text().split()]
        except OSError as exc:
            # Gone, or being removed by a concurrent teardown (ENODEV): nothing runs in it.
            if exc.errno in (errno.ENOENT, errno.ENODEV):
                return []
            raise

    def memory_events(self) -> dict[str, int]:
        """OOM kills and the like (v1: memory.oom_control; v2: memory.events)."""
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        try:
            lines = (self._dir("memory") / name).read_text().splitlines()
        except FileNotFoundError:
            return {}
        return {k: int(v) for k, v in (line.split() for line in lines) if v.isdigit()}

    def kill(self, timeout: float = 5.0) -> None:
        """Kill every process in the leaf and wait until it is empty. No freezer is needed
        against a fork bomb: the leaf's processes include the sandbox's pid-namespace init,
        and once it dies the kernel kills the whole namespace and refuses it new forks."""
        deadline = time.monotonic() + timeout
        kill_file = self.dirs[""] / "cgroup.kill" if self.version == 2 else None
        while self.pids():
            if kill_file is not None and kill_file.exists():
                kill_file.write_text("1")
            else:
                for pid in self.pids():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                raise TimeoutError(f"processes survive in {self.dirs}")
            time.sleep(0.005)

    def destroy(self) -> None:
        self.kill()
        for directory in self.dirs.values():
            for _ in range(200):  # a killed task can take a moment to leave its cgroup
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY:
                        raise
                    time.sleep(0.005)


def _enable_v2_controllers(parent: Path) -> None:
    """v2's "no internal processes" rule: controllers are enabled for the children of a cgroup
    that holds no process itself, which the server's sandbox parent never does."""
    parent.mkdir(parents=True, exist_ok=True)
    control = parent.parent / "cgroup.subtree_control"
    for name in ("+memory", "+pids", "+cpu"):
        with contextlib.suppress(OSError):
            control.write_text(name)
    with contextlib.suppress(OSError):
        (parent / "cgroup.subtree_control").write_text("+memory +pids +cpu")

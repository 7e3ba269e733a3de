"""`KARTA_SANDBOX=bwrap`: each session in Linux namespaces (bubblewrap) under a uid of its own.

The launcher a harness adapter starts is a short shell script run by the server (root):

1. it joins the sandbox's cgroups (memory, pids, CPU), so everything below is limited;
2. `env -i` keeps only the variables the adapter named;
3. `ulimit` caps single-file size and open files, and disables core dumps;
4. `setpriv` becomes the session's uid with no groups, no capabilities and NoNewPrivs, so
   bubblewrap never runs privileged (as root, a user namespace maps back to host root);
5. `bwrap` unshares every namespace (user namespaces nested inside are disabled), shows only
   /usr, a few /etc files, the harness binary and the session's own folders, gives a private
   /tmp, a minimal /dev, no /sys and no network but loopback, and loads the seccomp filter;
6. inside, `socat` forwards loopback port MODEL_PORT to the model proxy's UNIX socket (the only
   way out), and for OpenCode a UNIX socket in the sandbox's run folder to its HTTP port, so
   only the server reaches it.

Host paths are mounted at the same paths inside, so the harness's HOME, config folders and
transcripts mean the same thing on both sides.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import secrets
import shutil
import stat
import subprocess
from collections.abc import Iterable
from contextlib import AbstractContextManager
from pathlib import Path

from karta.dataplane.sandbox.base import HARNESS_PORT, MODEL_PORT, SandboxHandle, SandboxRequest
from karta.dataplane.sandbox.bwrap_scripts import (
    BwrapLimits,
    View,
    etc_files,
    launcher_script,
)
from karta.dataplane.sandbox.cgroups import CgroupLayout, v1_usable, v2_usable
from karta.dataplane.sandbox.fsuid import acting_as
from karta.dataplane.sandbox.seccomp import build_filter
from karta.dataplane.sandbox.uids import UidPool

log = logging.getLogger(__name__)

TOOLS = ("bwrap", "setpriv", "socat")
SEARCH_PATH = "/usr/bin:/bin:/usr/sbin:/sbin"


def _own_tree(paths: Iterable[Path], uid: int) -> None:
    """Hand the session's folders to its uid. Everything goes through directory descriptors
    and never follows a symlink: a link (or a directory swapped for one mid-walk) that the
    harness planted must not make the server chown a file outside the session."""
    for top in paths:
        if top.lstat().st_uid != uid:
            os.chown(top, uid, uid, follow_symlinks=False)
        for _, dirs, files, fd in os.fwalk(top):
            for name in (*dirs, *files):
                if os.stat(name, dir_fd=fd, follow_symlinks=False).st_uid != uid:
                    os.chown(name, uid, uid, dir_fd=fd, follow_symlinks=False)


class BwrapHandle:
    backend = "bwrap"
    model_url = f"http://127.0.0.1:{MODEL_PORT}"

    def __init__(self, sandbox: BwrapSandbox, request: SandboxRequest, uid: int, name: str) -> None:
        self.request = request
        self.uid = uid
        self.dir = sandbox.runs / name
        self.run_dir = self.dir / "run"
        self.cgroup = sandbox.layout.leaf(name)
        self._sandbox = sandbox
        self.harness_port = HARNESS_PORT if request.serves else 0
        self._socket_fd: int | None = None

    @property
    def harness_socket(self) -> Path | None:
        """The harness's socket, pinned: the run folder is the sandbox's to change, so a path
        the server connects to there could be swapped for a link to any socket on the host.
        The server holds the socket itself (O_PATH, no symlinks) and connects through that."""
        if not self.request.serves:
            return None
        if self._socket_fd is None:
            fd = os.open(self.run_dir / "harness.sock", os.O_PATH | os.O_NOFOLLOW)
            found = os.fstat(fd)
            if not stat.S_ISSOCK(found.st_mode) or found.st_uid != self.uid:
                os.close(fd)
                raise PermissionError("the sandbox's harness socket is not its own socket")
            self._socket_fd = fd
        return Path(f"/proc/self/fd/{self._socket_fd}")

    def setup(self) -> None:
        self.dir.mkdir(mode=0o755)
        self.run_dir.mkdir(mode=0o700)
        os.chown(self.run_dir, self.uid, self.uid)
        for name, text in etc_files(self.uid).items():
            (self.dir / name).write_text(text)
        self.cgroup.create(self._sandbox.limits.cgroup, background=self.request.background)

    def foreground(self) -> None:
        self.cgroup.reweigh(background=False)

    def view(self, readonly: Iterable[Path]) -> View:
        return View(
            uid=self.uid,
            writable=self.request.writable,
            readonly=tuple(dict.fromkeys(readonly)),
            cwd=self.request.cwd,
            run_dir=self.run_dir,
            etc_dir=self.dir,
            model_socket=self._sandbox.model_socket,
            tmp_bytes=self._sandbox.limits.tmp_bytes,
        )

    def as_owner(self) -> AbstractContextManager[None]:
        return acting_as(self.uid)

    def launcher(
        self, binary: str, env_names: Iterable[str], *, readonly: Iterable[Path] = ()
    ) -> Path:
        with acting_as(0):  # the adapter may call this as the session's user
            return self._write_launcher(binary, env_names, readonly)

    def _write_launcher(
        self, binary: str, env_names: Iterable[str], readonly: Iterable[Path]
    ) -> Path:
        # Whatever the adapter created as root (outside `as_owner`) becomes the session's.
        _own_tree(self.request.writable, self.uid)
        script = launcher_script(
            self.view([Path(binary), *readonly]),
            self.cgroup,
            self._sandbox.limits,
            binary,
            env_names,
            self._sandbox.seccomp_file,
            self.request.serves,
        )
        digest = hashlib.sha256(script.encode()).hexdigest()[:12]
        path = self.dir / f"launch-{Path(binary).name}-{digest}"
        path.write_text(script)
        path.chmod(0o700)
        return path

    async def destroy(self) -> None:
        await asyncio.to_thread(self._teardown)

    def _teardown(self) -> None:
        if self._socket_fd is not None:
            os.close(self._socket_fd)
            self._socket_fd = None
        self.cgroup.destroy()
        shutil.rmtree(self.dir, ignore_errors=True)


class BwrapSandbox:
    name = "bwrap"
    isolated = True

    def __init__(
        self,
        home: Path,
        model_socket: Path,
        limits: BwrapLimits | None = None,
        layout: CgroupLayout | None = None,
        replica: str | None = None,
    ) -> None:
        """`replica`: this server's replica id when several share `home` (docs/deployment.md):
        its run dirs and cgroups are its own, the uid records are shared by all."""
        self.home = home
        self.model_socket = model_socket
        self.limits = limits or BwrapLimits.from_env()
        self.layout = layout or CgroupLayout.detect(cgroup_group(home, replica))
        self.base = home / "sandbox"
        self.node = self.base / "replicas" / replica if replica else self.base
        self.runs = self.node / "sessions"
        self.seccomp_file = self.node / "seccomp.bpf"
        self.uids = UidPool(self.base / "uids", lambda sid: (home / "sessions" / sid).exists())
        self._counter = 0

    def describe(self) -> str:
        mem = self.limits.cgroup.memory_bytes >> 20
        return (
            f"bwrap: every session in its own namespaces as its own uid, no network but the "
            f"model proxy, seccomp, cgroup v{self.layout.version} limits "
            f"({mem} MiB, {self.limits.cgroup.pids} processes, {self.limits.cgroup.cpus:g} CPU)"
        )

    def start(self) -> None:
        """Make the home traversable (never listable) by sandbox uids, and kill whatever a
        crashed predecessor left in this home's cgroups."""
        nodes = [p for p in self.node.parents if self.base in p.parents] + [self.node]
        for directory in (self.home, self.base, *nodes, self.runs, self.home / "sessions"):
            directory.mkdir(parents=True, exist_ok=True)
            directory.chmod(0o711)
        for leaf in self.layout.leaves():
            log.warning("removing a sandbox left behind: %s", leaf.dirs)
            leaf.destroy()
        shutil.rmtree(self.runs, ignore_errors=True)
        self.runs.mkdir(mode=0o711)
        self.seccomp_file.write_bytes(build_filter())
        self.seccomp_file.chmod(0o644)

    async def prepare(self, request: SandboxRequest) -> SandboxHandle:
        return await asyncio.to_thread(self._prepare, request)

    def _prepare(self, request: SandboxRequest) -> BwrapHandle:
        request.root.parent.chmod(0o711)
        uid = self.uids.uid(request.session_id, request.root.stat().st_uid)
        os.chown(request.root, uid, uid)
        request.root.chmod(0o700)
        _own_tree(request.writable, uid)
        self._counter += 1
        name = f"{request.session_id}-{self._counter}-{secrets.token_hex(3)}"
        handle = BwrapHandle(self, request, uid, name)
        handle.setup()
        return handle

    async def forget(self, session_id: str, root: Path) -> None:
        await asyncio.to_thread(self._forget, session_id, root)

    def _forget(self, session_id: str, root: Path) -> None:
        try:
            uid = root.stat().st_uid
        except FileNotFoundError:
            return
        self.uids.release(uid, session_id)

    async def close(self) -> None:
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        for leaf in self.layout.leaves():
            leaf.destroy()
        for parent in self.layout.parents.values():
            try:
                parent.rmdir()
            except OSError as exc:
                log.info("sandbox cgroup %s not removed: %s", parent, exc)


def cgroup_group(home: Path, replica: str | None = None) -> str:
    """The cgroup parent of one server's sandboxes: named after its home (and its replica id,
    when replicas share the home), so servers never touch each other's."""
    name = str(home) if replica is None else f"{home}\0{replica}"
    return "karta-" + hashlib.sha256(name.encode()).hexdigest()[:10]


def unavailable_reason(home: Path) -> str | None:
    """Why the bwrap backend cannot work on this host (None: it can)."""
    if os.geteuid() != 0:
        return "the server is not root (it needs to switch uids and create cgroups)"
    missing = [t for t in TOOLS if shutil.which(t, path=SEARCH_PATH) is None]
    if missing:
        return f"missing {', '.join(missing)} (Debian: apt-get install bubblewrap socat)"
    if not (v1_usable() or v2_usable()):
        return "no cgroup hierarchy with memory and pids controllers"
    for parent in home.parents:
        if parent.exists() and not parent.stat().st_mode & 0o001:
            return (
                f"{parent} is not searchable by other users, so sandbox uids cannot reach "
                f"$KARTA_HOME ({home}): chmod o+x it or put KARTA_HOME elsewhere"
            )
    probe = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--nnp"]
    probe += ["/usr/bin/bwrap", "--unshare-all", "--unshare-user", "--disable-userns"]
    probe += ["--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin"]
    probe += ["--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64", "/bin/true"]
    try:
        result = subprocess.run(probe, capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap did not run: {exc}"
    if result.returncode != 0:
        return f"bwrap did not run: {result.stderr.decode(errors='replace').strip()[:300]}"
    return None

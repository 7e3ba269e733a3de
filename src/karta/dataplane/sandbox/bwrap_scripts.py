"""The command line and launcher scripts of a bwrap sandbox, as pure functions of their inputs
(the limits, what the sandbox shows, the environment names kept): tested without starting
anything."""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from karta.dataplane.sandbox.base import HARNESS_PORT, MODEL_PORT
from karta.dataplane.sandbox.cgroups import Cgroup, Limits


@dataclass(frozen=True)
class BwrapLimits:
    # Two CPUs: a quota of one makes Claude Code's multi-threaded start-up ~35 ms slower.
    cgroup: Limits = field(default_factory=lambda: Limits(2 << 30, 512, 2.0))
    tmp_bytes: int = 256 << 20  # the private /tmp (tmpfs: charged to the memory limit)
    file_bytes: int = 1 << 30  # any single file the harness writes
    open_files: int = 4096

    @classmethod
    def from_env(cls, environ: dict[str, str] | os._Environ[str] = os.environ) -> BwrapLimits:
        def get(name: str, default: float) -> float:
            value = environ.get(name)
            return float(value) if value else default

        base = cls()
        return cls(
            Limits(
                int(get("KARTA_SANDBOX_MEMORY_MB", base.cgroup.memory_bytes >> 20)) << 20,
                int(get("KARTA_SANDBOX_PIDS", base.cgroup.pids)),
                get("KARTA_SANDBOX_CPUS", base.cgroup.cpus),
            ),
            tmp_bytes=int(get("KARTA_SANDBOX_TMP_MB", base.tmp_bytes >> 20)) << 20,
            file_bytes=int(get("KARTA_SANDBOX_FILE_MB", base.file_bytes >> 20)) << 20,
        )


SECCOMP_FD = 9  # dash (/bin/sh) redirects single-digit descriptors only
INSIDE_RUN = Path("/run/karta")
INSIDE_MODEL_SOCKET = Path("/run/karta-model.sock")
# The system the harness sees, read-only. Never /etc as a whole (shadow, the host's config).
SYSTEM_BINDS = ("/usr",)
SYSTEM_SYMLINKS = {"/bin": "usr/bin", "/sbin": "usr/sbin", "/lib": "usr/lib", "/lib64": "usr/lib64"}
ETC_FILES = ("/etc/ld.so.cache", "/etc/alternatives", "/etc/ssl", "/etc/ca-certificates")
ETC_TRY = ("/etc/localtime", "/etc/nsswitch.conf")


@dataclass(frozen=True)
class View:
    """Everything the bwrap command line depends on (pure data)."""

    uid: int
    writable: tuple[Path, ...]
    readonly: tuple[Path, ...]
    cwd: Path
    run_dir: Path  # host folder shown at INSIDE_RUN (the harness's socket lives there)
    etc_dir: Path  # host folder with the synthetic passwd, group and hosts
    model_socket: Path
    tmp_bytes: int


def bwrap_args(view: View) -> list[str]:
    args = [
        "bwrap",
        "--unshare-all",
        "--unshare-user",  # explicit: required by --disable-userns
        "--disable-userns",
        "--die-with-parent",
        "--new-session",  # no controlling terminal: no TIOCSTI into the server's
        "--cap-drop",
        "ALL",
        "--hostname",
        "sandbox",
        "--gid",
        str(view.uid),
    ]
    for path in SYSTEM_BINDS:
        args += ["--ro-bind", path, path]
    for link, target in SYSTEM_SYMLINKS.items():
        args += ["--symlink", target, link]
    for path in ETC_FILES:
        args += ["--ro-bind-try", path, path]
    for path in ETC_TRY:
        args += ["--ro-bind-try", path, path]
    for name in ("passwd", "group", "hosts"):
        args += ["--ro-bind", str(view.etc_dir / name), f"/etc/{name}"]
    # /tmp first: the session's folders may live below it (then they are bound over it).
    args += ["--size", str(view.tmp_bytes), "--tmpfs", "/tmp"]
    args += ["--proc", "/proc", "--dev", "/dev"]
    for host in view.readonly:
        args += ["--ro-bind", str(host), str(host)]
    for host in view.writable:
        args += ["--bind", str(host), str(host)]
    args += ["--bind", str(view.run_dir), str(INSIDE_RUN)]
    args += ["--ro-bind", str(view.model_socket), str(INSIDE_MODEL_SOCKET)]
    args += ["--chdir", str(view.cwd), "--seccomp", str(SECCOMP_FD)]
    return args


def inner_script(serves: bool) -> str:
    """What runs first inside the sandbox: the forwarders, then the harness (`"$@"`)."""
    # nodelay: a streamed answer's small writes must not wait for delayed ACKs.
    lines = [
        f"socat TCP-LISTEN:{MODEL_PORT},bind=127.0.0.1,fork,reuseaddr,nodelay "
        f"UNIX-CONNECT:{INSIDE_MODEL_SOCKET} 2>/dev/null &",
    ]
    if serves:
        lines.append(
            f"socat UNIX-LISTEN:{INSIDE_RUN}/harness.sock,fork,mode=600,unlink-early "
            f"TCP:127.0.0.1:{HARNESS_PORT},nodelay 2>/dev/null &"
        )
    # The harness's first model call must find the forwarder listening. A redirection on a
    # builtin costs no fork; it fails (without ending the shell) until socat listens.
    probe = f"{{ : 3<>/dev/tcp/127.0.0.1/{MODEL_PORT}; }} 2>/dev/null"
    lines.append(f"until {probe}; do sleep 0.001; done")
    lines.append('exec "$@"')
    return "\n".join(lines)


def keep_env(names: Iterable[str]) -> str:
    """`env -i` arguments passing each named variable through only when it is set."""
    return " ".join(f'${{{n}+"{n}=${n}"}}' for n in sorted(set(names)))


def launcher_script(
    view: View,
    cgroup: Cgroup,
    limits: BwrapLimits,
    binary: str,
    env_names: Iterable[str],
    seccomp_file: Path,
    serves: bool,
) -> str:
    join = " ".join(shlex.quote(str(p)) for p in cgroup.procs_files)
    chain = [
        "/usr/bin/setpriv",
        f"--reuid={view.uid}",
        f"--regid={view.uid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--nnp",
        "--",
        *bwrap_args(view),
        "--",
        "/usr/bin/bash",
        "-c",
        inner_script(serves),
        "karta-sandbox",
        binary,
    ]
    chain[chain.index("bwrap")] = "/usr/bin/bwrap"
    command = " ".join(shlex.quote(part) for part in chain)
    return (
        "#!/bin/sh\n"
        "# Generated by Karta: run the harness in its session's sandbox.\n"
        "set -e\n"
        f'for f in {join}; do echo $$ > "$f"; done\n'
        # One file's size (dash counts 512-byte blocks), open files, no core dumps.
        f"ulimit -f {limits.file_bytes // 512}; ulimit -n {limits.open_files}; ulimit -c 0\n"
        f'exec /usr/bin/env -i {keep_env(env_names)} {command} "$@" '
        f"{SECCOMP_FD}<{shlex.quote(str(seccomp_file))}\n"
    )


def etc_files(uid: int) -> dict[str, str]:
    return {
        "passwd": f"agent:x:{uid}:{uid}:agent:/nonexistent:/bin/bash\n",
        "group": f"agent:x:{uid}:\n",
        "hosts": "127.0.0.1 localhost\n::1 localhost\n",
    }

"""The bwrap backend on its own, with shell probes in place of a harness: every isolation claim
of docs/security.md is attacked from inside a sandbox, and the host checks the outcome."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import pytest

from karta.dataplane.sandbox.base import SandboxRequest
from karta.dataplane.sandbox.bwrap import BwrapHandle, BwrapSandbox
from karta.dataplane.sandbox.bwrap_scripts import BwrapLimits
from karta.dataplane.sandbox.cgroups import Limits

LIMITS = BwrapLimits(Limits(256 << 20, 64, 0.5), tmp_bytes=32 << 20, file_bytes=16 << 20)


def session_root(home: Path, sid: str) -> SandboxRequest:
    root = home / "sessions" / sid
    for name in ("workspace", "state"):
        (root / name).mkdir(parents=True)
    (root / "workspace" / "notes.txt").write_text(f"private to {sid}\n")
    return SandboxRequest(sid, root, (root / "workspace", root / "state"), root / "workspace")


@pytest.fixture
async def sandbox(home: Path, model_socket: Path) -> AsyncIterator[BwrapSandbox]:
    backend = BwrapSandbox(home, model_socket, LIMITS)
    backend.start()
    yield backend
    await backend.close()


async def run(handle: BwrapHandle, script: str, seconds: float = 60) -> tuple[int, str]:
    """Run `bash -c script` in the sandbox the way a harness runs: through its launcher."""
    launcher = handle.launcher("/usr/bin/bash", ["PATH", "HOME"])
    env = {"PATH": "/usr/bin:/bin", "HOME": str(handle.request.writable[1])}
    proc = await asyncio.create_subprocess_exec(
        str(launcher),
        "-c",
        script,
        env=env,
        cwd=handle.request.cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), seconds)
    return proc.returncode or 0, out.decode(errors="replace")


async def test_the_sandbox_runs_as_its_own_uid_with_nothing_of_the_host(sandbox, home):
    handle = await sandbox.prepare(session_root(home, "sess_a"))
    assert isinstance(handle, BwrapHandle)
    code, out = await run(
        handle,
        "id -u; ls /; grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status;"
        "ls /proc/self/fd | tr '\\n' ' '; echo; ls /sys 2>&1; ls /dev | tr '\\n' ' '",
    )
    lines = out.splitlines()
    assert code == 0, out
    assert int(lines[0]) == handle.uid and handle.uid >= 200_000
    assert set(lines[1 : lines.index("CapEff:\t0000000000000000")]) <= {
        "bin", "dev", "etc", "lib", "lib64", "proc", "run", "sbin", "tmp", "usr",
    }  # fmt: skip
    assert "CapBnd:\t0000000000000000" in lines and "NoNewPrivs:\t1" in lines
    assert "Seccomp:\t2" in lines
    fds = next(line for line in lines if line.startswith("0 1 2"))
    assert fds.split() == ["0", "1", "2", "3"]  # stdio, and the listing's own descriptor
    assert "cannot access '/sys'" in out
    assert "kvm" not in out and "sda" not in out and "mem " not in out
    await handle.destroy()


async def test_host_files_and_secrets_are_not_there(sandbox, home):
    secret = home / "serve-secrets.json"
    secret.write_text('{"service_token": "planes-only"}')
    secret.chmod(0o600)
    handle = await sandbox.prepare(session_root(home, "sess_a"))
    _, out = await run(
        handle,
        f"cat /etc/shadow; cat {secret}; ls {home}; ls /root; cat /proc/1/environ | tr '\\0' ' ';"
        "echo; touch /usr/x; echo ws > notes2.txt && cat notes2.txt",
    )
    assert "/etc/shadow: No such file" in out
    assert "planes-only" not in out and f"{secret}: No such file" in out
    assert "Read-only file system" in out
    assert out.strip().endswith("ws")
    await handle.destroy()


async def test_one_session_cannot_reach_another(sandbox, home):
    a = await sandbox.prepare(session_root(home, "sess_a"))
    b = await sandbox.prepare(session_root(home, "sess_b"))
    assert isinstance(a, BwrapHandle) and isinstance(b, BwrapHandle)
    assert a.uid != b.uid
    other = home / "sessions" / "sess_b" / "workspace"
    # b serves on its loopback while a tries its files, its port and its processes.
    listener = asyncio.create_task(run(b, "timeout 20 socat TCP-LISTEN:4096,bind=127.0.0.1 - "))
    await asyncio.sleep(0.5)
    _, out = await run(
        a,
        f"cat {other}/notes.txt; echo x > {other}/evil.txt;"
        "(exec 3<>/dev/tcp/127.0.0.1/4096) && echo REACHED-B; ps -e -o pid=,comm= | wc -l",
    )
    listener.cancel()
    assert "private to sess_b" not in out and "REACHED-B" not in out
    assert not (other / "evil.txt").exists()
    # Even outside the namespaces, b's folder is b's: a's uid meets permissions.
    assert (home / "sessions" / "sess_b").stat().st_mode & 0o077 == 0
    await a.destroy()
    await b.destroy()


async def test_no_network_but_loopback(sandbox, home):
    host = socket.socket()
    host.bind(("127.0.0.1", 0))
    host.listen()
    port = host.getsockname()[1]
    handle = await sandbox.prepare(session_root(home, "sess_a"))
    # Only the sandbox's own namespace is touched: it has no route, so nothing leaves it.
    _, out = await run(
        handle,
        "ip -o link | awk '{print $2}'; ip route; echo routes-end;"
        f"(exec 3<>/dev/tcp/127.0.0.1/{port}) && echo REACHED-HOST;"
        "(exec 3<>/dev/tcp/127.0.0.1/5432) && echo REACHED-PG;"
        "(exec 3<>/dev/tcp/203.0.113.7/443) && echo REACHED-OUTSIDE",
    )
    host.close()
    assert out.splitlines()[0] == "lo:" and out.splitlines()[1] == "routes-end", out
    assert "REACHED" not in out and "Network is unreachable" in out
    await handle.destroy()


async def test_host_processes_are_invisible_and_unsignalable(sandbox, home):
    handle = await sandbox.prepare(session_root(home, "sess_a"))
    assert isinstance(handle, BwrapHandle)
    # A host process under the sandbox's own uid: the worst case for a kill.
    victim = await asyncio.create_subprocess_exec(
        "/usr/bin/setpriv", f"--reuid={handle.uid}", "sleep", "60"
    )
    try:
        _, out = await run(handle, f"kill -9 {victim.pid}; echo rc=$?")
        assert victim.returncode is None
        assert "rc=1" in out
    finally:
        victim.kill()
        await victim.wait()
    await handle.destroy()


async def test_escalation_fails(sandbox, home):
    handle = await sandbox.prepare(session_root(home, "sess_a"))
    _, out = await run(
        handle,
        "unshare -U true; echo unshare-user=$?; unshare -m true; echo unshare-mount=$?;"
        "mount -t tmpfs none /tmp; echo mount=$?; setpriv --reuid=0 id; echo setuid=$?;"
        "ls -l /usr/bin/su /usr/bin/mount | head -1; su -c id root </dev/null; echo su=$?",
    )
    for step in ("unshare-user", "unshare-mount", "mount", "setuid", "su"):
        assert f"{step}=0" not in out, out
    assert "uid=0" not in out
    await handle.destroy()


async def test_processes_memory_and_disk_are_bounded(sandbox, home):
    handle = await sandbox.prepare(session_root(home, "sess_a"))
    assert isinstance(handle, BwrapHandle)
    _, out = await run(
        handle,
        # bash gives up when fork fails: the loop runs in a subshell, the survivors are killed.
        "(for i in $(seq 1 200); do sleep 30 & echo $! >> /tmp/pids; done) 2>/dev/null;"
        "pkill -x sleep; echo started=$(wc -l < /tmp/pids);"
        "head -c 1G /dev/zero | tail > /dev/null; echo memory-hog=$?;"
        "for i in 1 2 3; do head -c 15M /dev/zero > /tmp/f$i || echo tmp-full; done;"
        "head -c 64M /dev/zero > big.bin; echo file=$?",
    )
    assert "started=" in out, out
    started = int(out.split("started=")[1].split()[0])
    assert 0 < started < LIMITS.cgroup.pids
    assert "memory-hog=0" not in out and handle.cgroup.memory_events().get("oom_kill", 0) >= 1
    assert "tmp-full" in out and "No space left on device" in out
    assert "file=0" not in out and "File size limit exceeded" in out
    assert (handle.request.cwd / "big.bin").stat().st_size <= LIMITS.file_bytes
    await handle.destroy()


async def test_destroy_leaves_no_process_behind(sandbox, home):
    handle = await sandbox.prepare(session_root(home, "sess_a"))
    assert isinstance(handle, BwrapHandle)
    script = "setsid sleep 300 & nohup sleep 300 >/dev/null 2>&1 & sleep 300"
    task = asyncio.create_task(run(handle, script))
    await _until(lambda: len(handle.cgroup.pids()) >= 4)
    pids = handle.cgroup.pids()
    await handle.destroy()
    await asyncio.gather(task, return_exceptions=True)
    assert all(_zombie_or_gone(pid) for pid in pids)
    assert not any(d.exists() for d in handle.cgroup.dirs.values())
    assert not handle.dir.exists()


async def test_a_pre_started_sandbox_yields_the_cpu_until_a_session_adopts_it(sandbox, home):
    request = replace(session_root(home, "sess_a"), background=True)
    handle = await sandbox.prepare(request)
    assert isinstance(handle, BwrapHandle)
    (weight_file, lowest), *_ = handle.cgroup.weight_file(background=True).items()
    assert weight_file.read_text().strip() == lowest
    handle.foreground()
    (_, normal), *_ = handle.cgroup.weight_file(background=False).items()
    assert weight_file.read_text().strip() == normal != lowest
    await handle.destroy()


async def test_a_new_server_kills_what_a_crashed_one_left(home, model_socket):
    first = BwrapSandbox(home, model_socket, LIMITS)
    first.start()
    handle = await first.prepare(session_root(home, "sess_a"))
    assert isinstance(handle, BwrapHandle)
    task = asyncio.create_task(run(handle, "sleep 300"))
    await _until(lambda: bool(handle.cgroup.pids()))
    second = BwrapSandbox(home, model_socket, LIMITS)  # the server restarted after a crash
    second.start()
    await asyncio.gather(task, return_exceptions=True)
    assert not handle.cgroup.pids()
    await second.close()


async def test_the_session_keeps_its_uid_until_it_ends(sandbox, home):
    request = session_root(home, "sess_a")
    first = await sandbox.prepare(request)
    await first.destroy()
    again = await sandbox.prepare(request)
    assert isinstance(first, BwrapHandle) and isinstance(again, BwrapHandle)
    assert again.uid == first.uid == request.root.stat().st_uid
    assert request.root.stat().st_mode & 0o777 == 0o700
    await again.destroy()
    await sandbox.forget("sess_a", request.root)
    assert not (home / "sandbox" / "uids" / str(first.uid)).exists()


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(400):  # polls: the kernel's view of a cgroup has no event to wait on
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the condition never held")


def _zombie_or_gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def test_the_home_is_traversable_but_not_listable(home, model_socket):
    BwrapSandbox(home, model_socket, LIMITS).start()
    assert home.stat().st_mode & 0o777 == 0o711
    assert os.stat(home / "sandbox" / "seccomp.bpf").st_size > 0


async def test_a_planted_symlink_never_makes_the_server_chown_outside(sandbox, home):
    request = session_root(home, "sess_a")
    outside = home.parent / "host-file"
    outside.write_text("host")
    (request.cwd / "link").symlink_to(outside)
    (request.cwd / "dir-link").symlink_to(home.parent, target_is_directory=True)
    handle = await sandbox.prepare(request)
    handle.launcher("/usr/bin/true", [])
    assert outside.stat().st_uid == 0 and home.parent.stat().st_uid == 0
    await handle.destroy()


async def test_the_server_never_follows_a_swapped_harness_socket(sandbox, home):
    request = session_root(home, "sess_a")
    handle = await sandbox.prepare(replace(request, serves=True))
    assert isinstance(handle, BwrapHandle)
    decoy = socket.socket(socket.AF_UNIX)  # a socket of the host's that the sandbox points at
    decoy.bind(str(home.parent / "host.sock"))
    (handle.run_dir / "harness.sock").symlink_to(home.parent / "host.sock")
    with pytest.raises(OSError):
        _ = handle.harness_socket
    decoy.close()
    await handle.destroy()


async def test_what_the_server_writes_for_a_harness_never_follows_a_planted_link(sandbox, home):
    request = session_root(home, "sess_a")
    handle = await sandbox.prepare(request)
    host_file = home.parent / "host-config"
    host_file.write_text("host's own")
    config = request.writable[1] / "config"
    config.symlink_to(home.parent, target_is_directory=True)  # what a sandbox could plant
    (request.writable[1] / "seed.json").symlink_to(host_file)
    with handle.as_owner():
        with pytest.raises(PermissionError):
            (request.writable[1] / "seed.json").write_text("{}")
        with pytest.raises(PermissionError):
            (config / "opencode").mkdir(parents=True, exist_ok=True)
        (request.writable[1] / "fresh.json").write_text("{}")
    assert host_file.read_text() == "host's own" and not (home.parent / "opencode").exists()
    assert isinstance(handle, BwrapHandle)
    assert (request.writable[1] / "fresh.json").stat().st_uid == handle.uid
    handle.launcher("/usr/bin/true", [])  # and the server is root again afterwards
    await handle.destroy()

"""The pure parts of the sandbox: the seccomp program (run through a small classic-BPF
interpreter), the bwrap command line, cgroup paths and limits, the uid pool, the backend choice
and reading usage from provider responses."""

from __future__ import annotations

import errno
import json
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from karta.dataplane.sandbox import setup
from karta.dataplane.sandbox.bwrap_scripts import (
    SECCOMP_FD,
    BwrapLimits,
    View,
    bwrap_args,
    inner_script,
    launcher_script,
)
from karta.dataplane.sandbox.cgroups import Cgroup, CgroupLayout, Limits, own_cgroups
from karta.dataplane.sandbox.meter import CallUsage, UsageMeter, turn_usage
from karta.dataplane.sandbox.seccomp import (
    AUDIT_ARCH_X86_64,
    DENIED_IOCTLS,
    DENIED_SYSCALLS,
    RET_ALLOW,
    RET_ERRNO,
    RET_KILL_PROCESS,
    build_filter,
)
from karta.dataplane.sandbox.uids import UidPool
from karta.dataplane.settings import ConfigError, Settings

# --- seccomp -----------------------------------------------------------------------------------


def evaluate(program: bytes, nr: int, arch: int = AUDIT_ARCH_X86_64, arg1: int = 0) -> int:
    """Run a classic-BPF seccomp program over one `struct seccomp_data`."""
    data = struct.pack("<IIQ6Q", nr, arch, 0, 0, arg1, 0, 0, 0, 0)
    insns = [struct.unpack("<HBBI", program[i : i + 8]) for i in range(0, len(program), 8)]
    acc, pc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        if code == 0x20:  # ld [k]
            acc = struct.unpack_from("<I", data, k)[0]
            pc += 1
        elif code in (0x15, 0x35):  # jeq / jge
            taken = acc == k if code == 0x15 else acc >= k
            pc += 1 + (jt if taken else jf)
        elif code == 0x06:
            return k
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")


def test_the_filter_denies_what_undoes_the_sandbox_and_allows_the_rest():
    program = build_filter()
    assert len(program) % 8 == 0 and len(program) // 8 < 4096
    for name, nr in DENIED_SYSCALLS.items():
        assert evaluate(program, nr) == RET_ERRNO | errno.EPERM, name
    for nr in (0, 1, 2, 39, 56, 57, 59, 61, 231, 257):  # read, write, open, getpid, clone, …
        assert evaluate(program, nr) == RET_ALLOW, nr


def test_terminal_injection_is_denied_other_ioctls_allowed():
    program = build_filter()
    for cmd in DENIED_IOCTLS.values():
        assert evaluate(program, 16, arg1=cmd) == RET_ERRNO | errno.EPERM
        assert evaluate(program, 16, arg1=cmd | (1 << 32)) == RET_ERRNO | errno.EPERM
    assert evaluate(program, 16, arg1=0x5401) == RET_ALLOW  # TCGETS


def test_other_abis_are_refused():
    program = build_filter()
    assert evaluate(program, 1, arch=0x40000003) == RET_KILL_PROCESS  # i386
    assert evaluate(program, 0x40000000 | 1) == RET_ERRNO | errno.EPERM  # x32


# --- the command line --------------------------------------------------------------------------


def view(tmp_path: Path) -> View:
    ws, state = tmp_path / "sessions/s/workspace", tmp_path / "sessions/s/state"
    return View(
        uid=200_123,
        writable=(ws, state),
        readonly=(Path("/opt/claude"),),
        cwd=ws,
        run_dir=tmp_path / "sandbox/sessions/s-1/run",
        etc_dir=tmp_path / "sandbox/sessions/s-1",
        model_socket=tmp_path / "sandbox/proxy/model.sock",
        tmp_bytes=1 << 20,
    )


def pairs(args: list[str], flag: str) -> list[tuple[str, str]]:
    return [(args[i + 1], args[i + 2]) for i, a in enumerate(args) if a == flag]


def test_bwrap_unshares_everything_and_shows_only_what_the_harness_needs(tmp_path):
    v = view(tmp_path)
    args = bwrap_args(v)
    for flag in ("--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent"):
        assert flag in args
    assert "--new-session" in args and args[args.index("--cap-drop") + 1] == "ALL"
    ro = dict(pairs(args, "--ro-bind"))
    assert "/" not in ro and "/etc" not in ro and "/sys" not in args
    assert ro["/usr"] == "/usr" and ro[str(v.model_socket)] == "/run/karta-model.sock"
    assert ro[str(v.etc_dir / "passwd")] == "/etc/passwd"
    assert not any("shadow" in a for a in args)
    rw = pairs(args, "--bind")
    assert (str(v.writable[0]), str(v.writable[0])) in rw  # same path inside and out
    assert {host for host, _ in rw} == {*map(str, v.writable), str(v.run_dir)}
    # The private /tmp is mounted before the session's folders (which may live under /tmp).
    assert args.index("/tmp") < args.index(str(v.writable[0]))
    assert args[args.index("--seccomp") + 1] == str(SECCOMP_FD)


def test_the_launcher_drops_to_the_session_uid_before_bwrap(tmp_path):
    v = view(tmp_path)
    cgroup = Cgroup(1, {"pids": tmp_path / "pids/x", "memory": tmp_path / "memory/x"})
    script = launcher_script(
        v, cgroup, BwrapLimits(), "/opt/claude", ["HOME", "SECRET_NAME"], tmp_path / "f", False
    )
    lines = script.splitlines()
    assert str(tmp_path / "pids/x/cgroup.procs") in lines[3]  # joins before anything runs
    assert lines[4] == "ulimit -f 2097152; ulimit -n 4096; ulimit -c 0"
    command = script.split("\n", 5)[5].rstrip("\n")  # the exec, with the multi-line inner script
    assert command.startswith("exec /usr/bin/env -i ")
    assert '${HOME+"HOME=$HOME"}' in command and "SECRET_NAME=$SECRET_NAME" in command
    order = [command.index(part) for part in ("setpriv", "/usr/bin/bwrap", "claude")]
    assert order == sorted(order)
    for flag in ("--reuid=200123", "--clear-groups", "--bounding-set=-all", "--nnp"):
        assert flag in command
    assert command.endswith(f'"$@" 9<{tmp_path / "f"}')


def test_the_inner_script_forwards_the_model_and_for_servers_the_harness_port():
    plain, serving = inner_script(False), inner_script(True)
    assert "UNIX-CONNECT:/run/karta-model.sock" in plain and "harness.sock" not in plain
    assert "UNIX-LISTEN:/run/karta/harness.sock" in serving and "TCP:127.0.0.1:4096" in serving
    assert plain.endswith('exec "$@"')


# --- cgroups -----------------------------------------------------------------------------------

V1_SELF = "8:pids:/\n4:memory:/process_api/abc\n2:cpuacct:/\n1:cpu:/\n6:freezer:/\n0::/\n"


def test_v1_leaves_nest_under_the_servers_own_cgroup(tmp_path):
    layout = CgroupLayout.detect("karta-x", root=tmp_path, own=V1_SELF)
    leaf = layout.leaf("sess-1")
    assert layout.version == 1
    assert leaf.dirs["memory"] == tmp_path / "memory/process_api/abc/karta-x/sess-1"
    assert leaf.dirs["pids"] == tmp_path / "pids/karta-x/sess-1"
    files = leaf.limit_files(Limits(512 << 20, 64, 0.5))
    assert files[leaf.dirs["memory"] / "memory.limit_in_bytes"] == str(512 << 20)
    assert files[leaf.dirs["pids"] / "pids.max"] == "64"
    assert files[leaf.dirs["cpu"] / "cpu.cfs_quota_us"] == "50000"
    assert files[leaf.dirs["cpu"] / "cpu.shares"] == "1024"
    pooled = leaf.limit_files(Limits(512 << 20, 64, 0.5), background=True)
    assert pooled[leaf.dirs["cpu"] / "cpu.shares"] == "2"  # the pool's starts yield the CPU
    assert leaf.dirs["cpu"] / "cgroup.procs" in leaf.procs_files
    assert len(leaf.procs_files) == 3  # each join costs an RCU grace period: no more than needed


def test_v2_uses_one_tree_when_it_has_memory_and_pids(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    layout = CgroupLayout.detect("karta-x", root=tmp_path, own="0::/srv/karta\n")
    leaf = layout.leaf("s")
    assert layout.version == 2 and leaf.dirs == {"": tmp_path / "srv/karta/karta-x/s"}
    files = {p.name: v for p, v in leaf.limit_files(Limits(1 << 30, 100, 2)).items()}
    assert files == {
        "memory.max": str(1 << 30),
        "memory.swap.max": "0",
        "pids.max": "100",
        "cpu.max": "200000 100000",
        "cpu.weight": "100",
    }
    pooled = leaf.limit_files(Limits(1 << 30, 100, 2), background=True)
    assert pooled[leaf.dirs[""] / "cpu.weight"] == "1"


def test_own_cgroups_parses_named_hierarchies():
    assert own_cgroups("9:name=systemd:/a\n3:cpu,cpuacct:/b\n0::/c\n") == {
        "systemd": "/a",
        "cpu": "/b",
        "cpuacct": "/b",
        "": "/c",
    }


# --- uids --------------------------------------------------------------------------------------


def test_each_session_gets_its_own_uid_and_keeps_it(tmp_path):
    alive = {"a", "b"}
    pool = UidPool(tmp_path / "uids", alive.__contains__, first=1000, size=2)
    a, b = pool.uid("a"), pool.uid("b")
    assert a != b and {a, b} == {1000, 1001}
    assert pool.uid("a", current=a) == a
    with pytest.raises(RuntimeError):
        pool.uid("c")  # both uids are taken by live sessions
    alive.discard("b")  # b ended without releasing (a crash): its uid is reclaimed
    assert pool.uid("c") == b
    pool.release(a, "a")
    assert not (tmp_path / "uids" / str(a)).exists()
    pool.release(b, "a")  # not a's: nothing happens
    assert (tmp_path / "uids" / str(b)).read_text() == "c"


def test_servers_sharing_a_home_never_hand_one_uid_to_two_live_sessions(tmp_path):
    """Replicas on one volume reclaim the same stale records at once: each uid goes to one."""
    alive = {f"old{n}" for n in range(8)}
    pools = [UidPool(tmp_path / "uids", alive.__contains__, first=1000, size=8) for _ in "ab"]
    taken = [pools[0].uid(f"old{n}") for n in range(8)]
    assert sorted(taken) == list(range(1000, 1008))
    alive.clear()  # every old session ended without releasing: all 8 records are stale
    newcomers = [f"new{n}" for n in range(8)]
    alive.update(newcomers)
    barrier = threading.Barrier(8)

    def claim(index: int) -> int:
        barrier.wait()
        return pools[index % 2].uid(newcomers[index])

    with ThreadPoolExecutor(8) as workers:
        got = list(workers.map(claim, range(8)))
    assert sorted(got) == list(range(1000, 1008)), "no uid given twice"
    for uid, session in zip(got, newcomers, strict=True):
        assert pools[0].owns(uid, session)


# --- choosing the backend ----------------------------------------------------------------------


def test_an_unknown_backend_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="KARTA_SANDBOX"):
        setup.choose_backend(Settings(home=tmp_path, sandbox="docker"))


def test_auto_says_what_it_picked(tmp_path, monkeypatch):
    monkeypatch.setattr(setup, "unavailable_reason", lambda home: "missing bwrap")
    assert setup.choose_backend(Settings(home=tmp_path)) == (
        "none",
        "auto: bwrap is unavailable (missing bwrap)",
    )
    monkeypatch.setattr(setup, "unavailable_reason", lambda home: None)
    assert setup.choose_backend(Settings(home=tmp_path)) == (
        "bwrap",
        "auto: bwrap works on this host",
    )


def test_bwrap_asked_for_but_unavailable_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr(setup, "unavailable_reason", lambda home: "not root")
    with pytest.raises(ConfigError, match="not root"):
        setup.choose_backend(Settings(home=tmp_path, sandbox="bwrap"))


def test_production_refuses_to_run_unsandboxed_unless_told(tmp_path, monkeypatch):
    monkeypatch.setattr(setup, "unavailable_reason", lambda home: "missing bwrap")
    for sandbox in ("none", "auto"):
        with pytest.raises(ConfigError, match="KARTA_SANDBOX_ALLOW_NONE"):
            setup.choose_backend(Settings(home=tmp_path, sandbox=sandbox, production=True))
    told = Settings(home=tmp_path, sandbox="none", production=True, allow_unsandboxed=True)
    assert setup.choose_backend(told)[0] == "none"


# --- usage -------------------------------------------------------------------------------------


def sse(*events: dict) -> bytes:
    return b"".join(b"event: x\ndata: " + json.dumps(e).encode() + b"\n\n" for e in events)


def test_anthropic_stream_usage_is_read_as_it_passes_in_any_chunking():
    body = sse(
        {
            "type": "message_start",
            "message": {
                "model": "claude-x",
                "usage": {"input_tokens": 12, "cache_read_input_tokens": 5, "output_tokens": 1},
            },
        },
        {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "hi"}},
        {"type": "message_delta", "usage": {"output_tokens": 7}},
    )
    meter = UsageMeter("anthropic", "asked-model")
    for i in range(0, len(body), 5):
        meter.feed(body[i : i + 5])
    usage = meter.finish("text/event-stream")
    assert usage.as_dict() == {
        "model": "claude-x",
        "provider": None,
        "key_owner": "platform",
        "input_tokens": 12,
        "output_tokens": 7,
        "cache_read_tokens": 5,
        "cache_write_tokens": 0,
    }


def test_openai_usage_from_the_last_chunk_and_from_json():
    stream = UsageMeter("openai", "gpt-x")
    stream.feed(b'data: {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}}\n')
    stream.feed(b"data: [DONE]\n\n")
    assert (stream.usage.input_tokens, stream.usage.output_tokens) == (3, 4)
    plain = UsageMeter("anthropic", None)
    plain.feed(b'{"model": "m", "usage": {"input_tokens": 9, "output_tokens": 2}}')
    usage = plain.finish("application/json")
    assert (usage.model, usage.input_tokens, usage.output_tokens) == ("m", 9, 2)


def test_a_turns_usage_is_the_sum_of_its_calls():
    calls = [
        CallUsage("anthropic", "big", 10, 50, cache_read_tokens=4),
        CallUsage("anthropic", "small", 3, 2, cache_write_tokens=1),
    ]
    assert turn_usage(calls) == {
        "input_tokens": 18,
        "output_tokens": 52,
        "total_tokens": 70,
        "cache_read_tokens": 4,
        "cache_write_tokens": 1,
        "model": "big",
    }


def test_a_cgroup_removed_under_a_kill_has_no_processes(tmp_path, monkeypatch):
    """A teardown racing the kill removes the leaf: reading it then fails with ENODEV (or
    ENOENT), which means nothing runs there, not an error."""
    cgroup = Cgroup(1, {"pids": tmp_path / "pids/x", "memory": tmp_path / "memory/x"})
    assert cgroup.pids() == []  # never created
    (tmp_path / "pids/x").mkdir(parents=True)
    (tmp_path / "pids/x/cgroup.procs").write_text("")

    def vanishing(self, *args, **kwargs):
        raise OSError(errno.ENODEV, "No such device")

    monkeypatch.setattr(Path, "read_text", vanishing)
    assert cgroup.pids() == []
    cgroup.kill()  # returns at once

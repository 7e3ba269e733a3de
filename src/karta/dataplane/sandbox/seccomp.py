"""The seccomp filter every sandboxed process runs under, compiled to classic BPF for
`bwrap --seccomp FD`.

A deny-list on top of the namespaces: the calls below either reach kernel surface a coding
agent never needs (keyrings, BPF, io_uring, module loading) or undo the sandbox (mount, setns,
unshare, ptrace of a sibling). They fail with EPERM, so tools report an error instead of dying.
Anything not built for x86-64 (the i386 and x32 entry points) is refused outright, because the
syscall numbers below mean nothing there.
"""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass

AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000
RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000
RET_ALLOW = 0x7FFF0000

# Offsets into `struct seccomp_data`: nr (u32), arch (u32), instruction_pointer (u64), args[6].
OFFSET_NR = 0
OFFSET_ARCH = 4
OFFSET_ARG1_LOW = 24  # the low 32 bits of args[1] (little-endian): ioctl's `cmd` is an int

# Classic BPF opcodes used here.
LD_W_ABS = 0x20
JEQ_K = 0x15
JGE_K = 0x35
RET_K = 0x06

DENIED_SYSCALLS: dict[str, int] = {
    "ptrace": 101,
    "process_vm_readv": 310,
    "process_vm_writev": 311,
    "add_key": 248,
    "request_key": 249,
    "keyctl": 250,
    "bpf": 321,
    "perf_event_open": 298,
    "userfaultfd": 323,
    "kexec_load": 246,
    "kexec_file_load": 320,
    "init_module": 175,
    "finit_module": 313,
    "delete_module": 176,
    "name_to_handle_at": 303,
    "open_by_handle_at": 304,
    "mount": 165,
    "umount2": 166,
    "pivot_root": 155,
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "fspick": 433,
    "mount_setattr": 442,
    "setns": 308,
    "unshare": 272,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "acct": 163,
    "swapon": 167,
    "swapoff": 168,
    "reboot": 169,
    "syslog": 103,
    "quotactl": 179,
    "lookup_dcookie": 212,
    "vhangup": 153,
    "personality": 135,
}
IOCTL = 16
# Terminal ioctls that push input into (or take over) the controlling terminal.
DENIED_IOCTLS = {"TIOCSTI": 0x5412, "TIOCLINUX": 0x541C}


@dataclass(frozen=True)
class Insn:
    code: int
    k: int
    jt: int | str = 0  # an offset, or a label resolved by `assemble`
    jf: int | str = 0
    label: str | None = None


def _program() -> list[Insn]:
    deny, allow = "deny", "allow"
    prog = [
        Insn(LD_W_ABS, OFFSET_ARCH),
        Insn(JEQ_K, AUDIT_ARCH_X86_64, jt=1),
        Insn(RET_K, RET_KILL_PROCESS),
        Insn(LD_W_ABS, OFFSET_NR),
        Insn(JGE_K, X32_SYSCALL_BIT, jt=deny),
    ]
    prog += [Insn(JEQ_K, nr, jt=deny) for nr in sorted(DENIED_SYSCALLS.values())]
    prog.append(Insn(JEQ_K, IOCTL, jf=allow))
    prog.append(Insn(LD_W_ABS, OFFSET_ARG1_LOW))
    prog += [Insn(JEQ_K, cmd, jt=deny) for cmd in sorted(DENIED_IOCTLS.values())]
    prog.append(Insn(RET_K, RET_ALLOW, label=allow))
    prog.append(Insn(RET_K, RET_ERRNO | errno.EPERM, label=deny))
    return prog


def assemble(prog: list[Insn]) -> bytes:
    """Resolve labels to forward offsets and pack `struct sock_filter`s (u16, u8, u8, u32)."""
    where = {insn.label: i for i, insn in enumerate(prog) if insn.label}
    out = bytearray()
    for i, insn in enumerate(prog):
        jumps = []
        for jump in (insn.jt, insn.jf):
            offset = where[jump] - i - 1 if isinstance(jump, str) else jump
            if not 0 <= offset <= 255:
                raise ValueError(f"jump out of range at instruction {i}")
            jumps.append(offset)
        out += struct.pack("<HBBI", insn.code, jumps[0], jumps[1], insn.k)
    return bytes(out)


def build_filter() -> bytes:
    """The filter as bytes, ready to be written to the file bwrap reads it from."""
    return assemble(_program())

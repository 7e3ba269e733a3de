"""Sandbox tests run only where the bwrap backend works (root, bubblewrap, cgroups); elsewhere
they are skipped with the reason. Homes live in a folder every uid may traverse (pytest's own
temporary folders are 0700), as a real $KARTA_HOME must."""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from karta.dataplane.sandbox.bwrap import unavailable_reason


def traversable_dir(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o711)
    return path


@pytest.fixture(scope="session")
def bwrap_works() -> None:
    probe = traversable_dir("karta-probe-")
    try:
        reason = unavailable_reason(probe / "home")
    finally:
        shutil.rmtree(probe)
    if reason is not None:
        pytest.skip(f"the bwrap backend cannot run here: {reason}")


@pytest.fixture
def home(bwrap_works: None) -> Iterator[Path]:
    top = traversable_dir("karta-sbx-")
    yield top / "home"
    shutil.rmtree(top, ignore_errors=True)


@pytest.fixture
def model_socket(home: Path) -> Iterator[Path]:
    """A socket where the model proxy would listen (bound, so the sandbox can mount it)."""
    path = home / "sandbox" / "proxy" / "model.sock"
    path.parent.mkdir(parents=True)
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    path.chmod(0o666)
    yield path
    sock.close()

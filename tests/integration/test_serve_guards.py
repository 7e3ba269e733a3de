"""`karta serve` guarding its state: a port in use is a one-line error and a non-zero exit with
nothing written; a second server on the same SQLite state folder is refused and leaves the
first one's credentials alone; servers sharing a home on PostgreSQL each keep their own entry
in credentials.json. Real `karta serve` processes on loopback ports."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import (
    SUPPORT_BOT,
    Database,
    KartaServer,
    _server_env,
    free_port,
)


def serve(home: Path, model, *args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    """`karta serve` expected to refuse to start: its exit status and output."""
    full = {**_server_env(model, "anthropic"), "KARTA_HOME": str(home), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "karta.cli", "serve", str(SUPPORT_BOT), *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("taken", ["data", "control"])
def test_a_port_in_use_is_one_clear_line_and_writes_nothing(tmp_path, model, taken):
    port, control_port = free_port(), free_port()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port if taken == "data" else control_port))
        squatter.listen()
        result = serve(tmp_path, model, "--port", str(port), "--control-port", str(control_port))
    busy = port if taken == "data" else control_port
    assert result.returncode == 1, result.stdout + result.stderr
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and f"cannot listen on 127.0.0.1:{busy}" in lines[0]
    assert "in use" in lines[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "credentials.json").exists()


def test_a_second_server_on_the_same_state_is_refused(tmp_path, model):
    first = KartaServer(SUPPORT_BOT, tmp_path, model, Database("sqlite")).start()
    try:
        saved = (tmp_path / "credentials.json").read_bytes()
        result = serve(tmp_path, model, "--port", str(free_port()))
        assert result.returncode == 1, result.stdout + result.stderr
        out = result.stdout + result.stderr
        assert "another Karta server" in out and f"karta serve at {first.url}" in out
        assert f"is using {tmp_path}/control.db" in out and "KARTA_HOME" in out
        assert "Traceback" not in out
        assert (tmp_path / "credentials.json").read_bytes() == saved
        with first.client() as client:  # the first one serves on
            assert client.get("/v1/sessions").status_code == 200
    finally:
        first.stop()
    again = KartaServer(SUPPORT_BOT, tmp_path, model, Database("sqlite")).start()  # lock freed
    again.stop()


@pytest.mark.postgres
def test_servers_sharing_a_home_on_postgresql_keep_one_entry_each(tmp_path, model):
    db = Database("postgres")
    servers = [KartaServer(SUPPORT_BOT, tmp_path, model, db) for _ in range(2)]
    try:
        for each in servers:
            each.start()
        stored = json.loads((tmp_path / "credentials.json").read_text())
        assert set(stored["servers"]) == {s.url for s in servers}
        assert stored["url"] == servers[1].url  # the one started last is the default
        for each in servers:
            entry = stored["servers"][each.url]
            assert entry["control_url"] == each.control_url
            with each.client(entry["api_key"]) as client:
                assert client.get("/v1/sessions").status_code == 200
    finally:
        for each in servers:
            each.stop()
        db.drop()

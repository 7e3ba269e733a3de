"""OpenCode in a bwrap sandbox: a real `opencode serve` turn through the model proxy, and its
HTTP server reachable by the Karta server alone (its own network namespace, a UNIX socket only
root may open, and a per-session password)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from karta.dataplane.harness.opencode_server import find_binary
from karta.testing import ScriptedModel, text, tool_use
from tests.conftest import Database, KartaServer
from tests.sandbox.conftest import traversable_dir
from tests.sandbox.test_attacks import PLATFORM_KEY, new_session, tool_output

pytestmark = pytest.mark.harness


@pytest.fixture(scope="module")
def opencode_server(bwrap_works: None, model: ScriptedModel) -> Iterator[KartaServer]:
    if not Path(find_binary()).is_file():
        pytest.skip("the OpenCode binary is not installed")
    top = traversable_dir("karta-opencode-")
    app = top / "app"
    (app / ".opencode").mkdir(parents=True)
    (app / "AGENTS.md").write_text("A plain OpenCode app.\n")
    (app / "karta.jsonc").write_text('{"runtime": {"permission_mode": "autonomous"}}\n')
    db = Database("sqlite")
    env = {"KARTA_SANDBOX": "bwrap", "ANTHROPIC_API_KEY": PLATFORM_KEY}
    server = KartaServer(app, top / "home", model, db, env={**env, "KARTA_MAX_LIVE_HARNESSES": "1"})
    server.start()
    yield server
    server.stop()
    db.drop()
    shutil.rmtree(top, ignore_errors=True)


def host_listeners() -> set[int]:
    """The uids owning a listening TCP socket in the host's network namespace."""
    owners = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                owners.add(int(fields[7]))
    return owners


def harness_socket(home: Path) -> Path:
    sockets = list((home / "sandbox" / "sessions").glob("*/run/harness.sock"))
    assert len(sockets) == 1, sockets
    return sockets[0]


def test_an_opencode_turn_runs_sandboxed_and_only_the_server_reaches_it(opencode_server, model):
    with opencode_server.client() as api:
        sid = new_session(api)
        command = "id -u; env | grep -c sk-platform; ls /; echo probe-end"
        model.enqueue([tool_use("bash", {"command": command, "description": "probe"})])
        model.enqueue([text("done")])
        body = api.post(f"/v1/sessions/{sid}/messages", json={"text": "probe"}).json()
        out = tool_output(body)
        assert "probe-end" in out and PLATFORM_KEY not in out
        uid = int(out.split()[0])
        assert uid >= 200_000
        assert out.split()[1] == "0"  # OPENCODE_CONFIG_CONTENT holds the proxy's credential
        assert model.requests  # every model call carried the platform key, injected
        assert all(c.headers.get("x-api-key") == PLATFORM_KEY for c in model.requests)
        # The server listens inside the sandbox's own network namespace: nothing of the
        # session's uid listens in the host's (where other programs may well use port 4096).
        assert uid not in host_listeners()
        path = harness_socket(opencode_server.home)
        # Another uid (another session's, say) cannot open the socket at all.
        other = subprocess.run(
            ["setpriv", f"--reuid={uid + 1}", "socat", "-", f"UNIX-CONNECT:{path}"],
            input=b"GET /global/health HTTP/1.0\r\n\r\n",
            capture_output=True,
            timeout=10,
            check=False,
        )
        assert other.returncode != 0 and b"Permission denied" in other.stderr
        # Even root, without the session's password, is turned away.
        transport = httpx.HTTPTransport(uds=str(path))
        with httpx.Client(transport=transport, base_url="http://sandbox") as raw:
            assert raw.get("/global/health").status_code == 401
        model.enqueue_text("still here")
        body = api.post(f"/v1/sessions/{sid}/messages", json={"text": "again"}).json()
        assert body["status"] == "completed" and "still here" in body["text"]

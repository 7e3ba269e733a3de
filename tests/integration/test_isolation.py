"""Each session works in its own workspace and harness state; the harness never sees Karta's
secrets; warm turns reuse one harness process."""

from __future__ import annotations

import pytest

from karta.testing import text, tool_use
from tests.conftest import SUPPORT_BOT, Database, KartaServer
from tests.integration.test_resilience import harness_processes

pytestmark = pytest.mark.harness


def approve(api, sid: str, body: dict) -> dict:  # type: ignore[no-untyped-def]
    pending = body["pending_input"]
    assert pending is not None, body
    return api.put(
        f"/v1/sessions/{sid}/inputs/{pending['request_id']}", json={"decision": "approve_once"}
    ).json()


def test_a_sessions_writes_are_invisible_to_others_and_to_the_app(api, model, server):
    a = api.post("/v1/sessions", json={}).json()["id"]
    b = api.post("/v1/sessions", json={}).json()["id"]
    model.enqueue([tool_use("Write", {"file_path": "CLAUDE.md", "content": "HIJACKED"})])
    model.enqueue([text("done")])

    approve(api, a, api.post(f"/v1/sessions/{a}/messages", json={"text": "rewrite"}).json())

    assert (server.workspace(a) / "CLAUDE.md").read_text() == "HIJACKED"
    assert "Beans & Co." in (server.workspace(b) / "CLAUDE.md").read_text()
    assert "Beans & Co." in (SUPPORT_BOT / "CLAUDE.md").read_text()
    api.post(f"/v1/sessions/{b}/messages", json={"text": "hello"})
    assert "HIJACKED" not in model.requests[-1].transcript_text


def test_warm_turns_reuse_the_harness_process(api, server):
    sid = api.post("/v1/sessions", json={}).json()["id"]
    api.post(f"/v1/sessions/{sid}/messages", json={"text": "one"})
    first = [p.pid for p in harness_processes(server, sid)]
    api.post(f"/v1/sessions/{sid}/messages", json={"text": "two"})
    assert len(first) == 1 and [p.pid for p in harness_processes(server, sid)] == first


def test_the_harness_environment_is_scrubbed(model, tmp_path):
    db = Database("sqlite")
    secret = "s3cret-value-never-for-agents"
    app = tmp_path / "plain-app"  # no agents: the harness's own agent, with Bash
    app.mkdir()
    (app / "CLAUDE.md").write_text("A plain app.\n")
    server = KartaServer(
        app,
        tmp_path / "home",
        model,
        db,
        env={"KARTA_SECRET_PROBE": secret, "AWS_SECRET_ACCESS_KEY": secret},
    )
    server.start()
    try:
        with server.client() as api:
            sid = api.post("/v1/sessions", json={}).json()["id"]
            model.enqueue([tool_use("Bash", {"command": "env > env.txt", "description": "env"})])
            model.enqueue([text("done")])
            approve(
                api, sid, api.post(f"/v1/sessions/{sid}/messages", json={"text": "dump env"}).json()
            )
            dumped = (server.workspace(sid) / "env.txt").read_text()
        assert secret not in dumped
        assert "KARTA_" not in dumped
        variables = dict(line.split("=", 1) for line in dumped.splitlines() if "=" in line)
        assert variables["HOME"].startswith(str(server.home / "sessions" / sid))
    finally:
        server.stop()
        db.drop()

"""Releases on the data plane, on a real `karta serve` with the real harness: a session is pinned
to the release that was active when it was created, through activation, rollback, a failed
publish and a restart that forgets every materialized release; the served folder is its
project's release until one is published; a project's env vars reach its harness and no other.

What the harness ran is read off what the scripted model received: each release's CLAUDE.md and
agent prompts carry a marker."""

from __future__ import annotations

import secrets
import shutil
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from karta.releases.archive import pack_bytes
from karta.testing import ScriptedModel, text, tool_use
from tests.conftest import SUPPORT_BOT, KartaServer
from tests.integration.test_resilience import harness_processes

pytestmark = pytest.mark.harness


def release_app(base: Path, tag: str, *, plain: bool = False) -> Path:
    """A copy of the example app whose CLAUDE.md and agent prompts say `tag`; `plain`: no
    agents (the harness's own agent, with Bash)."""
    root = base / f"app-{tag}-{secrets.token_hex(3)}"
    if plain:
        root.mkdir(parents=True)
    else:
        shutil.copytree(SUPPORT_BOT, root)
        for agent in ("triage", "billing"):
            path = root / ".claude" / "agents" / f"{agent}.md"
            path.write_text(path.read_text() + f"\nagent-{agent}-{tag}\n")
    (root / "CLAUDE.md").write_text(f"# Beans & Co.\n\nclaude-md-{tag}\n")
    return root


def publish(server: KartaServer, project: str, root: Path, **params: str) -> httpx.Response:
    with server.control() as control:
        return control.post(
            f"/v1/projects/{project}/releases",
            content=pack_bytes(root),
            headers={"Content-Type": "application/gzip"},
            params=params,
        )


def new_project(server: KartaServer, prefix: str) -> str:
    slug = f"{prefix}-{secrets.token_hex(3)}"
    with server.control() as control:
        assert control.post("/v1/projects", json={"slug": slug}).status_code == 201
    return slug


def create(api: httpx.Client, project: str) -> dict[str, Any]:
    response = api.post(f"/v1/projects/{project}/sessions", json={})
    assert response.status_code == 201, response.text
    return dict(response.json())


def heard(model: ScriptedModel, prompt: str) -> str:
    """Everything the model was sent with the user's `prompt`: system prompt, CLAUDE.md, turns."""
    seen = [r for r in model.requests if r.kind == "prompt" and r.prompt == prompt]
    assert seen, f"the model never heard {prompt!r}"
    return seen[-1].transcript_text


def talk(api: httpx.Client, project: str, sid: str, prompt: str, **body: Any) -> dict[str, Any]:
    response = api.post(
        f"/v1/projects/{project}/sessions/{sid}/messages", json={"text": prompt, **body}
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "completed", response.json()
    return dict(response.json())


def runs(model: ScriptedModel, prompt: str, tag: str, *others: str) -> None:
    transcript = heard(model, prompt)
    assert f"claude-md-{tag}" in transcript, transcript[-2000:]
    for other in others:
        assert f"claude-md-{other}" not in transcript


def test_sessions_stay_on_the_release_they_started_on(server, api, model, tmp_path):
    project = new_project(server, "pinned")
    refused = api.post(f"/v1/projects/{project}/sessions", json={})
    assert (refused.status_code, refused.json()["error"]) == (409, "no_active_release")

    v1 = publish(server, project, release_app(tmp_path, "v1"))
    assert v1.status_code == 201 and v1.json()["version"] == 1, v1.text
    a = create(api, project)
    assert a["release"] == {"version": 1, "digest": v1.json()["digest"]}
    assert a["project"]["ref"] == project and a["project"]["version"] == 1
    talk(api, project, a["id"], "a-1")
    runs(model, "a-1", "v1")
    assert "agent-triage-v1" in heard(model, "a-1"), "the pinned agent's prompt"

    # v2 goes live: new sessions get it, A keeps talking to v1.
    v2 = publish(server, project, release_app(tmp_path, "v2"))
    assert v2.status_code == 201 and v2.json()["active"], v2.text
    b = create(api, project)
    assert b["release"]["version"] == 2
    talk(api, project, b["id"], "b-1")
    runs(model, "b-1", "v2", "v1")
    talk(api, project, a["id"], "a-2")
    runs(model, "a-2", "v1", "v2")

    # Roll back: the next session is on v1 again; B stays on v2.
    with server.control() as control:
        back = control.post(f"/v1/projects/{project}/rollback")
    assert back.status_code == 200 and back.json()["version"] == 1, back.text
    c = create(api, project)
    assert c["release"]["version"] == 1
    talk(api, project, c["id"], "c-1")
    runs(model, "c-1", "v1", "v2")

    # A release that fails validation is recorded and never replaces the active one.
    broken = release_app(tmp_path, "v3")
    (broken / "karta.jsonc").write_text("{ not json")
    failed = publish(server, project, broken)
    assert failed.status_code == 422 and failed.json()["release"]["status"] == "failed"
    assert create(api, project)["release"]["version"] == 1

    # A restart that also forgets every materialized release keeps every pin: the releases
    # come back from the control plane, and a handoff reads the pinned release's agents.
    server.stop()
    shutil.rmtree(server.home / "releases")
    server.start()
    with server.client() as api2:
        for session, version in ((a, 1), (b, 2), (c, 1)):
            found = api2.get(f"/v1/projects/{project}/sessions/{session['id']}").json()
            assert found["release"]["version"] == version
        talk(api2, project, b["id"], "b-2", agent="billing")
        assert "agent-billing-v2" in heard(model, "b-2")
        runs(model, "b-2", "v2", "v1")
        talk(api2, project, a["id"], "a-3", agent="billing")
        assert "agent-billing-v1" in heard(model, "a-3")
        assert "agent-billing-v2" not in heard(model, "a-3")
    assert {p.name for p in (server.home / "releases").iterdir()} == {
        v1.json()["digest"].removeprefix("sha256:"),
        v2.json()["digest"].removeprefix("sha256:"),
    }


def test_the_served_folder_is_its_projects_release_until_one_is_published(
    server, api, model, tmp_path
):
    local = "support-bot"  # the served folder's name
    before = create(api, local)
    assert before["release"] is None and before["project"]["version"] is None
    flat = api.post("/v1/sessions", json={}).json()
    assert flat["release"] is None and flat["project"] is None
    talk(api, local, before["id"], "local-1")
    assert "Beans & Co. support" in heard(model, "local-1"), "the folder's own CLAUDE.md"

    published = publish(server, local, release_app(tmp_path, "pub"))
    assert published.status_code == 201, published.text
    after = create(api, local)
    assert after["release"]["version"] == published.json()["version"]
    talk(api, local, after["id"], "local-2")
    runs(model, "local-2", "pub")

    # The session started on the working copy stays there; the flat routes run the folder.
    talk(api, local, before["id"], "local-3")
    assert "claude-md-pub" not in heard(model, "local-3")
    assert api.post("/v1/sessions", json={}).json()["release"] is None


def test_project_env_vars_reach_only_that_projects_harness(server, api, model, tmp_path):
    app = release_app(tmp_path, "env", plain=True)
    x, y = new_project(server, "env-x"), new_project(server, "env-y")
    value = f"x-only-{secrets.token_hex(8)}"
    with server.control() as control:
        assert control.put(f"/v1/projects/{x}/env/PROBE_TOKEN", json={"value": value}).is_success
        # A name that steers the model endpoint is refused when set (and would be dropped by
        # the data plane if it were stored anyway: tests/unit/test_harness_environment.py).
        redirect = control.put(
            f"/v1/projects/{x}/env/ANTHROPIC_BASE_URL", json={"value": "http://127.0.0.1:9"}
        )
        assert redirect.status_code == 422
    for project in (x, y):
        assert publish(server, project, app).status_code == 201

    def dump(project: str, sid: str, prompt: str) -> dict[str, str]:
        model.enqueue([tool_use("Bash", {"command": "env > env.txt", "description": "env"})])
        model.enqueue([text("done")])
        base = f"/v1/projects/{project}/sessions"
        body = api.post(f"{base}/{sid}/messages", json={"text": prompt}).json()
        decided = api.put(
            f"{base}/{sid}/inputs/{body['pending_input']['request_id']}",
            json={"decision": "approve_once"},
        )
        assert decided.status_code == 200, decided.text
        lines = (server.workspace(sid) / "env.txt").read_text().splitlines()
        return dict(line.split("=", 1) for line in lines if "=" in line)

    sx, sy = create(api, x)["id"], create(api, y)["id"]
    flat = api.post("/v1/sessions", json={}).json()["id"]
    seen = dump(x, sx, "env-x")
    assert seen["PROBE_TOKEN"] == value
    # The harness reaches the model through Karta's proxy, with a credential of its own.
    assert seen["ANTHROPIC_BASE_URL"] != "http://127.0.0.1:9", "a project cannot redirect the model"
    assert seen["ANTHROPIC_API_KEY"].startswith("kps_")
    assert "PROBE_TOKEN" not in dump(y, sy, "env-y")
    # A flat session is in no project: its harness process has no project env at all.
    assert api.post(f"/v1/sessions/{flat}/messages", json={"text": "env-flat"}).is_success
    (process,) = harness_processes(server, flat)
    assert "PROBE_TOKEN" not in process.environ()

    # A new value reaches the session's next turn (its harness restarts with it).
    with server.control() as control:
        control.put(f"/v1/projects/{x}/env/PROBE_TOKEN", json={"value": "rotated"})
    assert dump(x, sx, "env-x-2")["PROBE_TOKEN"] == "rotated"
    assert value not in server.log.read_text(), "env values are never logged"


def test_concurrent_publishes_get_distinct_versions(server, tmp_path):
    project = new_project(server, "race")
    apps = [release_app(tmp_path, f"race{n}") for n in range(4)]
    answers: list[httpx.Response] = []

    def send(root: Path) -> None:
        answers.append(publish(server, project, root, activate="false"))

    threads = [threading.Thread(target=send, args=(root,)) for root in apps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(a.status_code == 201 for a in answers), [a.text for a in answers]
    assert sorted(a.json()["version"] for a in answers) == [1, 2, 3, 4]


def test_an_opencode_release_runs_on_opencode(server, api, model, tmp_path):
    """One data plane serves releases of either harness: the release's kind picks it."""
    root = tmp_path / "oc-app"
    shutil.copytree(SUPPORT_BOT.parent / "opencode-bot", root)
    (root / "AGENTS.md").write_text("# Beans & Co.\n\nagents-md-opencode-release\n")
    project = new_project(server, "oc")
    published = publish(server, project, root)
    assert published.status_code == 201, published.text
    assert published.json()["harness"] == "opencode"
    session = create(api, project)
    assert session["release"]["version"] == 1
    model.enqueue([text("Roasted on OpenCode.")])
    answer = talk(api, project, session["id"], "oc-hello")
    assert answer["text"] == "Roasted on OpenCode."
    assert "agents-md-opencode-release" in heard(model, "oc-hello")
    (process,) = harness_processes(server, session["id"])
    assert "opencode" in " ".join(process.cmdline())

"""The data plane as a client of the control plane, on real servers: key revocation (pushed and
by cache expiry), scopes, budgets, the project route family with API keys and session tokens,
and a control plane killed mid-traffic (cached keys keep working, usage drains on recovery)."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from karta.core.internal_api import MAX_ID
from karta.core.sse import iter_events
from karta.testing import Reply, ScriptedModel, text, tool_use
from tests.conftest import (
    SUPPORT_BOT,
    Database,
    _server_env,
    free_port,
    stream_events,
    wait_ready,
)

PROJECT = "support-bot"  # the served project: the app's name


def eventually(check: Any, what: str, timeout: float = 30.0) -> Any:
    """Poll `check` until it returns something truthy (never asserts on elapsed time)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def new_key(control: httpx.Client, scopes: list[str]) -> tuple[int, str]:
    response = control.post("/v1/keys", json={"name": f"k-{scopes[0]}", "scopes": scopes})
    assert response.status_code == 201, response.text
    return response.json()["api_key"]["id"], response.json()["secret"]


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


# --- one `karta serve` ---------------------------------------------------------------------


def test_a_revoked_key_is_refused_at_once(server):
    with server.control() as control, server.client() as admin:
        key_id, secret = new_key(control, ["write"])
        assert admin.get("/v1/app").status_code == 200
        with server.client(secret) as api:
            assert api.post("/v1/sessions", json={}).status_code == 201
            assert control.delete(f"/v1/keys/{key_id}").status_code == 200
            refused = api.post("/v1/sessions", json={})
        assert refused.status_code == 401, "the control plane pushed the revocation"
        assert refused.json()["error"] == "unauthorized"


def test_the_internal_api_needs_the_service_token_and_stays_out_of_openapi(server):
    token = json.loads((server.home / "serve-secrets.json").read_text())["service_token"]
    whoami = f"{server.url}/v1/internal/whoami"
    assert httpx.get(whoami, headers=bearer(token)).json() == {"principal_kind": "service"}
    assert httpx.get(whoami, headers=bearer(server.api_key)).status_code == 401
    assert httpx.get(whoami).status_code == 401
    invalidate = f"{server.url}/v1/internal/cache/invalidate"
    for org in (0, -1, MAX_ID + 1, 2**63, "x"):
        bad = httpx.post(invalidate, json={"organization_id": org}, headers=bearer(token))
        assert bad.status_code == 422, org
    done = httpx.post(invalidate, json={"organization_id": MAX_ID}, headers=bearer(token))
    assert done.json() == {
        "organization_id": MAX_ID,
        "evicted": 0,
        "active_release_evicted": 0,
        "env_evicted": 0,
        "model_access_evicted": 0,
        "embed_evicted": 0,
        "budget_evicted": 0,
    }
    paths = httpx.get(f"{server.url}/openapi.json").json()["paths"]
    assert not [p for p in paths if "internal" in p]
    assert "/v1/projects/{ref}/sessions/{session_id}/messages" in paths


def test_read_keys_read_and_write_keys_write(server):
    with server.control() as control, server.client() as admin:
        sid = admin.post("/v1/sessions", json={}).json()["id"]
        _, reader = new_key(control, ["read"])
    with server.client(reader) as api:
        assert api.get(f"/v1/sessions/{sid}").status_code == 200
        assert api.get(f"/v1/sessions/{sid}/events", params={"after": 0}).status_code == 200
        for method, path, body in [
            ("POST", "/v1/sessions", {}),
            ("POST", f"/v1/sessions/{sid}/messages", {"text": "hi"}),
            ("PUT", f"/v1/sessions/{sid}/inputs/req_x", {"decision": "deny"}),
            ("DELETE", f"/v1/sessions/{sid}", None),
        ]:
            response = api.request(method, path, json=body)
            assert response.status_code == 403, (method, path, response.text)
            assert response.json()["error"] == "forbidden"


def test_an_exhausted_budget_refuses_turns_before_they_run(server):
    with httpx.Client(base_url=server.control_url) as control:
        signup = control.post(
            "/v1/signup",
            json={"email": "tight@example.com", "password": "correct horse", "org_name": "tight"},
        )
        assert signup.status_code == 201, signup.text
        key = signup.json()["secret"]
        budget = control.put(
            "/v1/budget",
            headers=bearer(key),
            json={"monthly_token_limit": 0, "monthly_cost_limit_cents": None},  # spent
        )
        assert budget.status_code == 200, budget.text
    with server.client(key) as api:
        sid = api.post("/v1/sessions", json={}).json()["id"]
        refused = api.post(f"/v1/sessions/{sid}/messages", json={"text": "hi"})
        assert refused.status_code == 402, refused.text
        assert refused.json()["error"] == "budget_exhausted"
        assert refused.json()["reason"] == "monthly_token_limit"
        assert api.get(f"/v1/sessions/{sid}").json()["last_event_seq"] == 0


def test_project_routes_for_api_keys(server):
    with server.control() as control:
        assert control.post("/v1/projects", json={"slug": "other"}).status_code == 201
        project_id = control.get(f"/v1/projects/{PROJECT}").json()["id"]
    with server.client() as api:
        created = api.post(f"/v1/projects/{PROJECT}/sessions", json={"metadata": {"a": 1}})
        assert created.status_code == 201, created.text
        sid = created.json()["id"]
        # The project's id names it as well as its slug.
        assert api.get(f"/v1/projects/{project_id}/sessions/{sid}").status_code == 200
        flat = api.post("/v1/sessions", json={}).json()["id"]
        missing = api.get(f"/v1/projects/{PROJECT}/sessions/{flat}")
        assert missing.status_code == 404, "a session outside the project is not in it"
        unknown = api.post("/v1/projects/no-such-project/sessions", json={})
        assert (unknown.status_code, unknown.json()["error"]) == (404, "project_not_found")
        other = api.post("/v1/projects/other/sessions", json={})
        assert (other.status_code, other.json()["error"]) == (409, "no_active_release")
        assert api.delete(f"/v1/projects/{PROJECT}/sessions/{sid}").status_code == 204


@pytest.mark.harness
def test_session_tokens_work_only_on_their_projects_routes(server, model):
    with server.control() as control:
        control.post("/v1/projects", json={"slug": "other"})  # may exist already

        def mint(project: str, **body: Any) -> str:
            response = control.post(f"/v1/projects/{project}/session_tokens", json=body)
            assert response.status_code == 201, response.text
            return str(response.json()["token"])

        alice, anonymous, foreign = mint(PROJECT, sub="alice"), mint(PROJECT), mint("other")

    with httpx.Client(base_url=server.url, timeout=120) as http:
        flat = http.post("/v1/sessions", json={}, headers=bearer(alice))
        assert flat.status_code == 401, "session tokens never work on the flat routes"
        wrong = http.post(f"/v1/projects/{PROJECT}/sessions", json={}, headers=bearer(foreign))
        assert (wrong.status_code, wrong.json()["error"]) == (403, "forbidden")
        elsewhere = http.post("/v1/projects/other/sessions", json={}, headers=bearer(alice))
        assert elsewhere.status_code == 403

        base = f"/v1/projects/{PROJECT}/sessions"
        for named in ({"user_id": "bob"}, {"end_user_id": "bob"}):
            mismatch = http.post(base, json={"metadata": named}, headers=bearer(alice))
            assert mismatch.status_code == 403
            assert mismatch.json()["error"] == "identity_mismatch"
        created = http.post(base, json={"metadata": {"plan": "pro"}}, headers=bearer(alice))
        assert created.status_code == 201, created.text
        session = created.json()
        assert session["metadata"] == {"plan": "pro", "user_id": "alice"}

        model.enqueue(Reply([text("Hello Alice.")]))
        events = stream_events(
            http,
            "POST",
            f"{base}/{session['id']}/messages",
            json={"text": "hi", "stream": True},
            headers=bearer(alice),
        )
        assert events[-1].type == "done" and events[-1].data["status"] == "completed"
        replay = stream_events(
            http, "GET", f"{base}/{session['id']}/events?after=0", headers=bearer(alice)
        )
        assert [e.seq for e in replay] == [e.seq for e in events]

        # Another end user's session is invisible, and so is every end user's session to a
        # token minted without `sub`: it sees only sessions that belong to nobody.
        key = bearer(server.api_key)
        bobs = http.post(base, json={"metadata": {"user_id": "bob"}}, headers=key)
        assert bobs.status_code == 201
        assert http.get(f"{base}/{bobs.json()['id']}", headers=bearer(alice)).status_code == 404
        for sid in (bobs.json()["id"], session["id"]):
            assert http.get(f"{base}/{sid}", headers=bearer(anonymous)).status_code == 404
        claim = http.post(base, json={"metadata": {"user_id": "bob"}}, headers=bearer(anonymous))
        assert (claim.status_code, claim.json()["error"]) == (403, "identity_mismatch")
        nobodys = http.post(base, json={}, headers=bearer(anonymous)).json()["id"]
        assert http.get(f"{base}/{nobodys}", headers=bearer(anonymous)).status_code == 200
        assert http.get(f"{base}/{nobodys}", headers=bearer(alice)).status_code == 404
        listed = http.get(base, headers=bearer(alice)).json()["data"]
        assert [s["id"] for s in listed] == [session["id"]]
        bad = http.post(base, json={"metadata": {"user_id": "not valid!"}}, headers=key)
        assert (bad.status_code, bad.json()["error"]) == (422, "invalid_end_user_id")


# --- two processes: `karta controlplane` and `karta dataplane` --------------------------------


class SplitPlanes:
    """The planes as two processes sharing a service token, so one can die alone."""

    def __init__(self, home: Path, model: ScriptedModel, db: Database, push: bool = True) -> None:
        self.home = home
        self.push = push  # whether the control plane pushes invalidations to the data plane
        self.model = model
        self.db = db
        self.port, self.control_port = free_port(), free_port()
        self.shared = {
            "KARTA_SERVICE_TOKENS": secrets.token_urlsafe(24),
            "KARTA_SESSION_TOKEN_SECRET": secrets.token_urlsafe(32),
        }
        self.control: subprocess.Popen[bytes] | None = None
        self.data: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def control_url(self) -> str:
        return f"http://127.0.0.1:{self.control_port}"

    def _spawn(self, name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = self.home / f"{name}.log"
        (self.home / name).mkdir(parents=True, exist_ok=True)
        env = {**_server_env(self.model, "anthropic"), **self.shared, **env}
        env["KARTA_HOME"] = str(self.home / name)
        with log.open("ab") as sink:
            proc = subprocess.Popen(
                [sys.executable, "-m", "karta.cli", *command, "--log-level", "info"],
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        url = self.url if name == "data" else self.control_url
        wait_ready(proc, url, log)
        return proc

    def start_control(self) -> None:
        env = {"KARTA_DATA_PLANE_URLS": self.url} if self.push else {}
        if self.db.control_url:
            env["KARTA_CONTROL_DATABASE_URL"] = self.db.control_url
        self.control = self._spawn(
            "control", ["controlplane", "--port", str(self.control_port)], env
        )

    def start_data(self) -> None:
        env = {
            "KARTA_CONTROL_PLANE_URL": self.control_url,
            "KARTA_HARNESS_MAX_RETRIES": "0",
            "KARTA_KEY_CACHE_TTL": "1",  # cached keys go stale quickly: the grace is exercised
        }
        if self.db.url:
            env["KARTA_DATABASE_URL"] = self.db.url
        command = ["dataplane", str(SUPPORT_BOT), "--port", str(self.port)]
        self.data = self._spawn("data", command, env)

    def kill_control(self) -> None:
        assert self.control is not None
        os.killpg(self.control.pid, signal.SIGKILL)
        self.control.wait(5)
        self.control = None

    def stop(self) -> None:
        for proc in (self.data, self.control):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)


@pytest.fixture
def own_database(database: Database) -> Iterator[Database]:
    """Databases of the test's own, of the module's kind. Two data planes sharing one without
    Redis would each take the other's live turns for ones a crash left behind (the module's
    `server` is one)."""
    db = Database(database.kind)
    yield db
    db.drop()


@pytest.fixture
def planes(model: ScriptedModel, own_database: Database, tmp_path: Path) -> Iterator[SplitPlanes]:
    split = SplitPlanes(tmp_path, model, own_database)
    split.start_control()
    split.start_data()
    yield split
    split.stop()


def signup(control_url: str, name: str) -> str:
    with httpx.Client(base_url=control_url) as control:
        r = control.post(
            "/v1/signup",
            json={"email": f"{name}@example.com", "password": "correct horse", "org_name": name},
        )
        assert r.status_code == 201, r.text
        return str(r.json()["secret"])


def usage_totals(control_url: str, key: str) -> dict[str, int] | None:
    try:
        response = httpx.get(f"{control_url}/v1/usage", headers=bearer(key), timeout=5)
    except httpx.TransportError:
        return None
    return dict(response.json()["totals"]) if response.status_code == 200 else None


def turn_usage(events: list) -> tuple[int, int]:  # type: ignore[type-arg]
    done = events[-1]
    errors = [e.data for e in events if e.type == "error"]
    assert done.data.get("status") == "completed", (done.data, errors)
    usage = done.data["usage"]
    return int(usage["input_tokens"]), int(usage["output_tokens"])


@pytest.mark.harness
def test_a_control_plane_outage_keeps_known_keys_and_loses_no_usage(planes, model):
    admin = signup(planes.control_url, f"outage-{secrets.token_hex(3)}")
    with httpx.Client(base_url=planes.control_url, headers=bearer(admin)) as control:
        _, unused = new_key(control, ["write"])
    turns: list[tuple[int, int]] = []
    with httpx.Client(base_url=planes.url, headers=bearer(admin), timeout=120) as api:
        sid = api.post("/v1/sessions", json={}).json()["id"]
        model.enqueue(Reply([text("Before the outage.")]))
        events = stream_events(
            api, "POST", f"/v1/sessions/{sid}/messages", json={"text": "one", "stream": True}
        )
        turns.append(turn_usage(events))

        # Mid-traffic: the control plane dies while a turn streams.
        model.enqueue(Reply([text("Still here, " * 20)], chunk_delay=0.02))
        with api.stream(
            "POST", f"/v1/sessions/{sid}/messages", json={"text": "two", "stream": True}
        ) as response:
            streamed = []
            for event in iter_events(response.iter_lines()):
                if not streamed:
                    planes.kill_control()
                streamed.append(event)
        assert streamed[-1].type == "done"
        turns.append(turn_usage(streamed))

        # The known key keeps working (past its TTL, within the stale grace); new turns run.
        model.enqueue(Reply([text("During the outage.")]))
        during = api.post(f"/v1/sessions/{sid}/messages", json={"text": "three"})
        assert during.status_code == 200, during.text
        usage = during.json()["usage"]
        turns.append((usage["input_tokens"], usage["output_tokens"]))
        assert api.post("/v1/sessions", json={}).status_code == 201

    # An uncached key cannot be checked: 503 with Retry-After, never access.
    refused = httpx.post(f"{planes.url}/v1/sessions", json={}, headers=bearer(unused))
    assert refused.status_code == 503, refused.text
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"] == "control_plane_unavailable"

    planes.start_control()
    totals = eventually(
        lambda: (t := usage_totals(planes.control_url, admin)) and t["model_calls"] == 3 and t,
        "the outbox to drain",
    )
    assert totals["input_tokens"] == sum(t[0] for t in turns)
    assert totals["output_tokens"] == sum(t[1] for t in turns)
    # Once the breaker's window has passed (its 503s said when), the new key is checked.
    eventually(
        lambda: httpx.post(f"{planes.url}/v1/sessions", json={}, headers=bearer(unused)).is_success,
        "the uncached key to be validated after the outage",
    )


def test_revocation_without_a_push_lands_within_the_cache_window(model, own_database, tmp_path):
    planes = SplitPlanes(tmp_path, model, own_database, push=False)
    try:
        planes.start_control()
        planes.start_data()
        admin = signup(planes.control_url, f"window-{secrets.token_hex(3)}")
        with httpx.Client(base_url=planes.control_url, headers=bearer(admin)) as control:
            key_id, secret = new_key(control, ["write"])
            with httpx.Client(base_url=planes.url, headers=bearer(secret)) as api:
                assert api.post("/v1/sessions", json={}).status_code == 201
                assert control.delete(f"/v1/keys/{key_id}").status_code == 200
                eventually(
                    lambda: api.post("/v1/sessions", json={}).status_code == 401,
                    "the cached key to expire",
                )
    finally:
        planes.stop()


@pytest.mark.harness
def test_a_decided_approval_reaches_the_audit_log(server, model):
    model.enqueue([tool_use("Write", {"file_path": "notes.txt", "content": "x"})])
    model.enqueue([text("Not written.")])
    with server.client() as api, server.control() as control:
        sid = api.post("/v1/sessions", json={}).json()["id"]
        paused = api.post(f"/v1/sessions/{sid}/messages", json={"text": "write notes"}).json()
        request_id = paused["pending_input"]["request_id"]
        decided = api.put(f"/v1/sessions/{sid}/inputs/{request_id}", json={"decision": "deny"})
        assert decided.status_code == 200, decided.text
        key_id = control.get("/v1/me").json()["api_key_id"]

        def reported() -> list[dict[str, Any]]:
            rows = control.get("/v1/audit?limit=1000").json()["data"]
            return [r for r in rows if r["action"] == "approval.decided"]

        row = eventually(reported, "the decision to reach the audit log")[-1]
    assert row["resource_id"] == request_id
    assert row["actor_id"] == f"key:{key_id}"
    assert row["details"]["reported"]["decision"] == "deny"
    assert row["details"]["reported"]["tool"] == "Write"
    assert row["details"]["reported"]["session_id"] == sid

"""Budgets are enforced per model call, by the model proxy, with the real Claude Code harness.
Nothing is set aside for a turn, so a budget with anything left admits turns; once a cap is
spent the next model call is refused and its turn ends with `budget_exhausted`. Overspend is
bounded by one model call per concurrent turn (docs/control-plane.md, "Budgets")."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from karta.testing import Reply, ScriptedModel, text, tool_use
from tests.conftest import SUPPORT_BOT, Database, KartaServer, stream_events
from tests.integration.test_planes import bearer, eventually, signup, usage_totals

pytestmark = pytest.mark.harness

CALL = {"input_tokens": 200, "output_tokens": 100}  # 300 tokens a model call
CONCURRENT = 4  # turns running at once (the machine's limit for harness turns in tests)


def autonomous_app(root: Path) -> Path:
    """An app whose agent runs Bash without asking: a turn makes as many model calls as its
    script says."""
    root.mkdir()
    (root / "CLAUDE.md").write_text("You run shell commands when asked.\n")
    (root / "karta.jsonc").write_text('{"runtime": {"permission_mode": "autonomous"}}\n')
    return root


def working(model: ScriptedModel, calls: int) -> None:
    """Script `calls` model calls: Bash until the last, which answers."""
    for n in range(calls - 1):
        command = {"command": f"echo step {n}", "description": "a step"}
        model.enqueue(Reply([tool_use("Bash", command)], usage=CALL))
    model.enqueue(Reply([text("All steps done.")], usage=CALL))


def turn_calls(model: ScriptedModel) -> int:
    """The model calls that reached the provider for turns (not titles or summaries)."""
    return sum(1 for r in model.requests if r.kind in ("prompt", "tool_result"))


def set_cap(server: KartaServer, key: str, tokens: int) -> None:
    with httpx.Client(base_url=server.control_url, headers=bearer(key)) as control:
        r = control.put("/v1/budget", json={"monthly_token_limit": tokens})
        assert r.status_code == 200, r.text


def budget(server: KartaServer, key: str) -> dict:
    with httpx.Client(base_url=server.control_url, headers=bearer(key)) as control:
        return dict(control.get("/v1/budget").json())


def send(server: KartaServer, key: str, session: str, message: str) -> httpx.Response:
    """A turn on a connection of its own (threads do not share a keep-alive pool)."""
    with httpx.Client(base_url=server.url, headers=bearer(key), timeout=180) as api:
        return api.post(f"/v1/sessions/{session}/messages", json={"text": message})


@pytest.fixture
def server(model: ScriptedModel, database: Database, tmp_path: Path):  # type: ignore[no-untyped-def]
    app = autonomous_app(tmp_path / "worker")
    srv = KartaServer(app, tmp_path / "home", model, database).start()
    yield srv
    srv.stop()


def test_a_budget_with_little_left_admits_turns_and_many_fit_under_a_cap(model, database, tmp_path):
    srv = KartaServer(SUPPORT_BOT, tmp_path / "home", model, database).start()
    try:
        key = signup(srv.control_url, "roomy")
        set_cap(srv, key, 20_000)
        with httpx.Client(base_url=srv.url, headers=bearer(key), timeout=180) as api:
            first = api.post("/v1/sessions", json={}).json()["id"]
            model.enqueue(Reply([text("Hello.")], usage={"input_tokens": 10, "output_tokens": 5}))
            assert api.post(f"/v1/sessions/{first}/messages", json={"text": "hi"}).is_success
            eventually(lambda: budget(srv, key)["used_tokens"] == 15, "the usage to arrive")
            assert budget(srv, key)["state"] == "ok"
            # 19,985 tokens left: the next turn runs (no 20,000-token reservation refuses it).
            model.enqueue(
                Reply([text("Still here.")], usage={"input_tokens": 10, "output_tokens": 5})
            )
            again = api.post(f"/v1/sessions/{first}/messages", json={"text": "again"})
            assert again.status_code == 200 and again.json()["text"] == "Still here."

            # Sixteen 150-token turns under a 45,000-token cap: every one runs.
            set_cap(srv, key, 45_000)
            sessions = [api.post("/v1/sessions", json={}).json()["id"] for _ in range(16)]
            for _ in sessions:
                model.enqueue(
                    Reply([text("Brewing.")], usage={"input_tokens": 100, "output_tokens": 50})
                )

            def turn(sid: str) -> int:
                return send(srv, key, sid, "roast?").status_code

            with ThreadPoolExecutor(CONCURRENT) as pool:
                assert list(pool.map(turn, sessions)) == [200] * 16
    finally:
        srv.stop()


def test_the_model_call_that_would_overspend_ends_the_turn(server, model):
    key = signup(server.control_url, "thrifty")
    set_cap(server, key, 500)
    with httpx.Client(base_url=server.url, headers=bearer(key), timeout=180) as api:
        sid = api.post("/v1/sessions", json={}).json()["id"]
        working(model, calls=3)
        # Call 1 finds 0 spent, call 2 finds 300 (< 500), call 3 finds 600: refused.
        events = stream_events(
            api, "POST", f"/v1/sessions/{sid}/messages", json={"text": "work", "stream": True}
        )
        errors = [e for e in events if e.type == "error"]
        assert [e.data["code"] for e in errors] == ["budget_exhausted"], errors
        assert errors[0].data["reason"] == "monthly_token_limit"
        assert events[-1].type == "done" and events[-1].data["status"] == "failed"
        assert events[-1].data["usage"]["input_tokens"] == 400
        assert turn_calls(model) == 2, "the refused call never reached the provider"

        totals = eventually(
            lambda: (t := usage_totals(server.control_url, key)) and t["model_calls"] == 2 and t,
            "each model call's usage to reach the ledger",
        )
        assert (totals["input_tokens"], totals["output_tokens"]) == (400, 200)
        assert budget(server, key)["state"] == "exhausted"
        # Spent: the next turn is refused before anything runs.
        refused = api.post(f"/v1/sessions/{sid}/messages", json={"text": "more"})
        assert refused.status_code == 402 and refused.json()["error"] == "budget_exhausted"
        # The session is not broken: once the cap is raised, the conversation goes on.
        set_cap(server, key, 10_000)
        model.reset()
        model.enqueue(Reply([text("Back to work.")], usage=CALL))
        resumed = api.post(f"/v1/sessions/{sid}/messages", json={"text": "go on"})
        assert resumed.status_code == 200 and resumed.json()["text"] == "Back to work."


def test_concurrent_turns_overspend_by_at_most_one_model_call_each(server, model):
    key = signup(server.control_url, "busy")
    cap = 1_000
    set_cap(server, key, cap)
    with httpx.Client(base_url=server.url, headers=bearer(key), timeout=180) as api:
        sessions = [api.post("/v1/sessions", json={}).json()["id"] for _ in range(CONCURRENT)]
        working(model, calls=10 * CONCURRENT)  # far more than the cap allows

        def turn(sid: str) -> dict:
            return dict(send(server, key, sid, "work").json())

        with ThreadPoolExecutor(CONCURRENT) as pool:
            answers = list(pool.map(turn, sessions))

    for answer in answers:
        assert answer["status"] == "failed", answer
        assert [e["code"] for e in answer["errors"]] == ["budget_exhausted"], answer
    calls = turn_calls(model)
    totals = eventually(
        lambda: (t := usage_totals(server.control_url, key)) and t["model_calls"] == calls and t,
        "every model call's usage to reach the ledger",
    )
    used = totals["input_tokens"] + totals["output_tokens"]
    assert used >= cap, "the cap was reached"
    largest_call = CALL["input_tokens"] + CALL["output_tokens"]
    assert used <= cap + CONCURRENT * largest_call, "overspend: one model call per running turn"

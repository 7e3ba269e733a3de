"""Sixteen concurrent turns at a budget that allows three: the rest are refused with 402 before
anything runs, and what the admitted turns spend stays within the stated overspend bound
(docs/control-plane.md, "Budgets")."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from karta.testing import Reply, ScriptedModel, text, tool_use
from tests.conftest import SUPPORT_BOT, Database, KartaServer
from tests.integration.test_planes import bearer, eventually, signup, usage_totals

pytestmark = pytest.mark.harness

RESERVE = 1_000  # KARTA_TURN_RESERVE_TOKENS for this server
LIMIT = 3 * RESERVE + 500  # room for three reservations, not four
TURN_USAGE = {"input_tokens": 1_200, "output_tokens": 300}  # more than a reservation


@pytest.fixture
def server(model: ScriptedModel, database: Database, tmp_path: Path):  # type: ignore[no-untyped-def]
    env = {"KARTA_TURN_RESERVE_TOKENS": str(RESERVE)}
    srv = KartaServer(SUPPORT_BOT, tmp_path / "home", model, database, env=env).start()
    yield srv
    srv.stop()


def test_sixteen_concurrent_turns_at_the_edge_of_a_budget(server, model):
    key = signup(server.control_url, "edge")
    with httpx.Client(base_url=server.control_url, headers=bearer(key)) as control:
        r = control.put("/v1/budget", json={"monthly_token_limit": LIMIT})
        assert r.status_code == 200, r.text
    for _ in range(16):
        model.enqueue(Reply([text("Brewing.")], usage=TURN_USAGE))
    with httpx.Client(base_url=server.url, headers=bearer(key), timeout=180) as api:
        sessions = [api.post("/v1/sessions", json={}).json()["id"] for _ in range(16)]

        def turn(sid: str) -> httpx.Response:
            return api.post(f"/v1/sessions/{sid}/messages", json={"text": "light roast?"})

        with ThreadPoolExecutor(16) as pool:
            answers = dict(zip(sessions, pool.map(turn, sessions), strict=True))

        admitted = [sid for sid, r in answers.items() if r.status_code == 200]
        refused = [sid for sid, r in answers.items() if r.status_code == 402]
        assert len(admitted) + len(refused) == 16, {r.status_code for r in answers.values()}
        assert 1 <= len(admitted) <= LIMIT // RESERVE == 3
        for sid in refused:
            assert answers[sid].json()["error"] == "budget_exhausted"
            # Refused before anything ran: no event, no model call.
            assert api.get(f"/v1/sessions/{sid}").json()["last_event_seq"] == 0
            assert model.requests_for(sid) == []
        spent_per_turn = set()
        for sid in admitted:
            usage = answers[sid].json()["usage"]
            spent_per_turn.add(usage["input_tokens"] + usage["output_tokens"])

    totals = eventually(
        lambda: (t := usage_totals(server.control_url, key)) and t["turns"] == len(admitted) and t,
        "the admitted turns' usage to reach the control plane",
    )
    used = totals["input_tokens"] + totals["output_tokens"]
    largest = max(spent_per_turn)
    assert largest > RESERVE, "each turn overran its reservation, so the bound is exercised"
    bound = len(admitted) * (largest - RESERVE)
    assert used <= LIMIT + bound
    # Spent: the next turn is refused too.
    with httpx.Client(base_url=server.url, headers=bearer(key), timeout=60) as api:
        again = api.post(f"/v1/sessions/{admitted[0]}/messages", json={"text": "more"})
        assert again.status_code == 402


def test_a_turn_cut_off_by_a_crash_still_settles_its_reservation(model, database, tmp_path):
    """A crash leaves a reservation behind; recovery settles it, so the budget frees at once
    instead of after KARTA_RESERVATION_TTL."""
    db = Database(database.kind)
    env = {"KARTA_TURN_RESERVE_TOKENS": str(RESERVE)}
    server = KartaServer(SUPPORT_BOT, tmp_path / "home", model, db, env=env).start()
    try:
        key = signup(server.control_url, "crashy")
        with httpx.Client(base_url=server.control_url, headers=bearer(key)) as control:
            assert control.put("/v1/budget", json={"monthly_token_limit": RESERVE + 500}).is_success
        with httpx.Client(base_url=server.url, headers=bearer(key), timeout=120) as api:
            paused, other = (api.post("/v1/sessions", json={}).json()["id"] for _ in range(2))
            model.enqueue([tool_use("Write", {"file_path": "x.md", "content": "x"})])
            body = api.post(f"/v1/sessions/{paused}/messages", json={"text": "write"}).json()
            assert body["pending_input"] is not None  # the turn holds the only reservation
            held = api.post(f"/v1/sessions/{other}/messages", json={"text": "hi"})
            assert held.status_code == 402

        server.restart(crash=True)

        model.enqueue([text("Budget is free again.")])
        with httpx.Client(base_url=server.url, headers=bearer(key), timeout=120) as api:

            def admitted() -> httpx.Response | None:
                r = api.post(f"/v1/sessions/{other}/messages", json={"text": "hi"})
                return r if r.status_code == 200 else None

            answer = eventually(admitted, "the crashed turn's reservation to be settled")
        assert answer.json()["text"] == "Budget is free again."
    finally:
        server.stop()
        db.drop()

"""The gateway between two data-plane instances of one platform: each a real HTTP server on a
loopback port, sharing the control plane and the service credential, their harness a
`FakeHarness` (which echoes what it read, so an answer shows what the agent was given)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import select

from karta.app import load_app
from karta.core import events as ev
from karta.core.events import Event
from karta.core.internal_auth import InternalAccess
from karta.dataplane.app import create_app
from karta.dataplane.principal import OPEN
from karta.dataplane.settings import Settings
from karta.dataplane.store.models import GatewayOutbox
from karta.testing import FakeHarness
from tests.conftest import SUPPORT_BOT, free_port
from tests.unit.control_plane_double import SERVICE_TOKEN, URL, ControlPlaneDouble, Tenant

GUARD = 20.0  # a wait that never ends fails the test instead of hanging it (not a timing check)
AGENT = "support-bot"  # how a session of the served folder's agent is addressed


@dataclass
class Instance:
    url: str
    app: FastAPI
    fake: FakeHarness
    http: httpx.AsyncClient

    async def events(self, session_id: str) -> list[Event]:
        handle = await self.app.state.runtime.session(OPEN, session_id)
        return await handle.read(0)

    async def outbox(self) -> list[GatewayOutbox]:
        async with self.app.state.runtime.db() as db:
            return list((await db.scalars(select(GatewayOutbox))).all())


@asynccontextmanager
async def instance(home: Path, control: ControlPlaneDouble, port: int, *peers: int):
    url = f"http://127.0.0.1:{port}"
    settings = Settings(
        home=home,
        control_plane_url=URL,
        internal=InternalAccess.build([SERVICE_TOKEN]),
        gateway_url=url,
        gateway_peers=frozenset(f"http://127.0.0.1:{p}" for p in peers),
        gateway_retry_base=0.05,
        gateway_retry_max=0.2,
    )
    fake = FakeHarness()
    app = create_app(
        load_app(SUPPORT_BOT),
        settings,
        {},
        control_transport=control.faults,
        harnesses=lambda kind: fake,
    )
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(GUARD):
            while not server.started:  # noqa: ASYNC110 (uvicorn announces nothing else)
                await asyncio.sleep(0.01)
        async with httpx.AsyncClient(base_url=url, timeout=GUARD) as http:
            yield Instance(url, app, fake, http)
    finally:
        server.should_exit = True
        await serving


async def eventually(check: Callable[[], Any]) -> Any:
    """Poll `check` until it returns something truthy (the gateway works in the background)."""
    async with asyncio.timeout(GUARD):
        while not (found := await check()):  # noqa: ASYNC110 (nothing to wait on but the rows)
            await asyncio.sleep(0.02)
    return found


def key(tenant: Tenant) -> dict[str, str]:
    return tenant.admin


SERVICE = {"Authorization": f"Bearer {SERVICE_TOKEN}"}


async def session(at: Instance, tenant: Tenant, **body: Any) -> str:
    answer = await at.http.post("/v1/sessions", json=body, headers=key(tenant))
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


@pytest.fixture
async def acme(control: ControlPlaneDouble) -> Tenant:
    return await control.signup("acme")


@pytest.fixture
async def pair(
    tmp_path: Path, control: ControlPlaneDouble
) -> AsyncIterator[tuple[Instance, Instance]]:
    a, b = free_port(), free_port()
    async with (
        instance(tmp_path / "a", control, a, b) as first,
        instance(tmp_path / "b", control, b, a) as second,
    ):
        yield first, second


def message(sender: str, text: str, **extra: Any) -> dict[str, Any]:
    return {
        "sender_id": sender,
        "sender_type": "human",
        "event_type": "message",
        "message": text,
        **extra,
    }


async def a_session_with_a_remote_agent(
    a: Instance, b: Instance, tenant: Tenant
) -> tuple[str, str]:
    """A session on A where alice talks with `beta`: the agent of a session on B."""
    remote = await session(b, tenant)
    local = await session(
        a,
        tenant,
        participants=[
            {"id": "alice", "type": "human", "display_name": "Alice Chen"},
            {
                "id": "beta",
                "type": "ai",
                "project": AGENT,
                "gateway_url": b.url,
                "session_id": remote,
            },
        ],
    )
    return local, remote


def replies(events: list[Event]) -> list[Event]:
    return [e for e in events if e.type == ev.MESSAGE and e.data.get("event_type") == "reply"]


async def test_an_event_reaches_an_agent_on_another_instance_and_its_answer_comes_back(pair, acme):
    a, b = pair
    local, remote = await a_session_with_a_remote_agent(a, b, acme)

    sent = await a.http.post(
        "/v1/gateway/events",
        json=message(
            "alice", "hello beta", session_id=local, recipient_id="beta", event_id="evt-1"
        ),
        headers=key(acme),
    )
    assert sent.status_code == 200, sent.text
    assert sent.json() == {
        "status": "ok",
        "event_id": "evt-1",
        "session_id": local,
        "turn_id": None,
    }

    [answer] = await eventually(lambda: _replies(a, local))
    # B's agent took it as a turn from alice, attributed; its answer came back as beta's.
    assert b.fake.received[-1].text == "[alice (@alice, human)]: hello beta"
    assert (answer.participant_name, answer.participant_type) == ("beta", "ai")
    assert answer.data["text"] == "[alice (@alice, human)]: hello beta"
    assert answer.data["in_reply_to"] == "evt-1" and answer.data["recipient_id"] == "alice"
    on_a = await a.events(local)
    [asked] = [e for e in on_a if e.type == ev.MESSAGE and e.data["event_type"] == "message"]
    assert (asked.participant_name, asked.data["recipient_id"]) == ("alice", "beta")

    on_b = await b.events(remote)
    assert {e.participant_name for e in on_b} == {"alice"}
    assert on_b[0].type == ev.MESSAGE and on_b[-1].type == ev.DONE
    view = (await b.http.get(f"/v1/sessions/{remote}", headers=key(acme))).json()
    [alice] = view["participants"]
    assert (alice["id"], alice["gateway_url"], alice["session_id"]) == ("alice", a.url, local)
    assert await a.outbox() == [] and await b.outbox() == []


async def _replies(at: Instance, session_id: str) -> list[Event]:
    return replies(await at.events(session_id))


async def test_a_replayed_event_id_does_nothing_and_gets_the_first_answer(pair, acme):
    a, b = pair
    local, remote = await a_session_with_a_remote_agent(a, b, acme)
    body = message("alice", "once", session_id=local, recipient_id="beta", event_id="evt-9")
    first = await a.http.post("/v1/gateway/events", json=body, headers=key(acme))
    await eventually(lambda: _replies(a, local))
    again = await a.http.post("/v1/gateway/events", json=body, headers=key(acme))
    assert again.status_code == 200 and again.json() == first.json()

    delivery = {
        "recipient_id": AGENT,
        "session_id": remote,
        "event": {**body, "sender_organization_id": acme.id},
    }
    replayed = await b.http.post("/v1/gateway/deliveries", json=delivery, headers=SERVICE)
    assert replayed.status_code == 200, replayed.text
    assert len(b.fake.received) == 1, "the replay must not run a second turn"
    assert len(replies(await a.events(local))) == 1
    asked = [e for e in await a.events(local) if e.data.get("event_type") == "message"]
    assert len(asked) == 1


async def test_a_refused_delivery_is_given_up_and_the_sender_hears_of_it(pair, acme):
    a, b = pair
    local = await session(
        a,
        acme,
        participants=[
            {"id": "alice", "type": "human"},
            {"id": "beta", "type": "ai", "project": "no-such-project", "gateway_url": b.url},
        ],
    )
    body = message("alice", "are you there?", session_id=local, recipient_id="beta")
    assert (
        await a.http.post("/v1/gateway/events", json=body, headers=key(acme))
    ).status_code == 200

    async def gave_up() -> list[Event]:
        return [e for e in await a.events(local) if e.data.get("subtype") == "delivery_failed"]

    [note] = await eventually(gave_up)
    assert note.data["recipient_id"] == "no-such-project" and "404" in note.data["error"]
    assert note.data["attempts"] == 1, "a refusal is final: it is not retried"
    assert b.fake.received == [] and await a.outbox() == []


async def test_a_retried_delivery_arrives_once_the_remote_is_up(tmp_path, control, acme):
    a_port, b_port = free_port(), free_port()
    async with instance(tmp_path / "b0", control, b_port, a_port) as b:
        remote = await session(b, acme)
    async with instance(tmp_path / "a", control, a_port, b_port) as a:
        local = await session(
            a,
            acme,
            participants=[
                {"id": "alice", "type": "human"},
                {
                    "id": "beta",
                    "type": "ai",
                    "project": AGENT,
                    "gateway_url": b.url,
                    "session_id": remote,
                },
            ],
        )
        body = message("alice", "anyone?", session_id=local, recipient_id="beta")
        assert (
            await a.http.post("/v1/gateway/events", json=body, headers=key(acme))
        ).status_code == 200
        [waiting] = await eventually(lambda: _failed(a, times=2))
        assert "ConnectError" in (waiting.last_error or "")
        async with instance(tmp_path / "b0", control, b_port, a_port) as b_again:
            [answer] = await eventually(lambda: _replies(a, local))
            assert b_again.fake.received[-1].text == "[alice (@alice, human)]: anyone?"
            assert answer.data["in_reply_to"]


async def _failed(at: Instance, times: int) -> list[GatewayOutbox]:
    return [row for row in await at.outbox() if row.attempts >= times]


async def test_an_unknown_recipient_is_404(pair, acme):
    a, b = pair
    local, remote = await a_session_with_a_remote_agent(a, b, acme)
    cases = [
        (
            a,
            "/v1/gateway/events",
            message("alice", "hi", session_id=local, recipient_id="nobody"),
            key(acme),
        ),
        (a, "/v1/gateway/events", message("alice", "hi", session_id="sess_missing"), key(acme)),
        (
            b,
            "/v1/gateway/deliveries",
            {"recipient_id": "nobody", "session_id": remote, "event": message("x", "hi")},
            key(acme),
        ),
        (
            b,
            "/v1/gateway/deliveries",
            {"recipient_id": AGENT, "session_id": "sess_missing", "event": message("x", "hi")},
            SERVICE,
        ),
        (
            b,
            "/v1/gateway/deliveries",
            {
                "recipient_id": "no-such-project",
                "event": message("x", "hi", sender_organization_id=acme.id),
            },
            SERVICE,
        ),
    ]
    for at, path, body, headers in cases:
        answer = await at.http.post(path, json=body, headers=headers)
        assert answer.status_code == 404, (path, body, answer.text)
        assert answer.json()["error"] in ("recipient_not_found", "session_not_found")
    assert b.fake.received == []


async def test_an_event_crosses_organizations_only_when_both_allow_it(pair, control, acme):
    _, b = pair
    globex = await control.signup("globex")
    remote = await session(b, acme, participants=[{"id": "carol", "type": "human"}])
    delivery = {"recipient_id": "carol", "session_id": remote, "event": message("dave", "hi carol")}

    refused = await b.http.post("/v1/gateway/deliveries", json=delivery, headers=key(globex))
    assert refused.status_code == 404 and refused.json()["error"] == "recipient_not_found"
    trusted = await b.http.put(f"/v1/gateway/trust/{acme.id}", headers=key(globex))
    assert trusted.json() == {"organization_id": globex.id, "trusts": [acme.id]}
    one_side = await b.http.post("/v1/gateway/deliveries", json=delivery, headers=key(globex))
    assert one_side.status_code == 404, "one side's word is not enough"
    assert (
        await b.http.put(f"/v1/gateway/trust/{globex.id}", headers=key(acme))
    ).status_code == 200

    crossed = await b.http.post("/v1/gateway/deliveries", json=delivery, headers=key(globex))
    assert crossed.status_code == 200, crossed.text
    [got] = [e for e in await b.events(remote) if e.type == ev.MESSAGE]
    assert (got.participant_name, got.data["recipient_id"], got.data["text"]) == (
        "dave",
        "carol",
        "hi carol",
    )
    # A service caller cannot claim an organization to get around it: the event says globex.
    await b.http.delete(f"/v1/gateway/trust/{acme.id}", headers=key(globex))
    forged = {**delivery, "event": message("dave", "again", sender_organization_id=globex.id)}
    assert (
        await b.http.post("/v1/gateway/deliveries", json=forged, headers=SERVICE)
    ).status_code == 404


async def test_participants_elsewhere_live_behind_configured_peers_only(pair, acme):
    a, _ = pair
    local = await session(a, acme)
    answer = await a.http.post(
        f"/v1/sessions/{local}/participants",
        json={"id": "eve", "type": "human", "gateway_url": "http://169.254.169.254"},
        headers=key(acme),
    )
    assert answer.status_code == 422 and answer.json()["error"] == "unknown_gateway"
    added = await a.http.post(
        f"/v1/sessions/{local}/participants",
        json={"id": "bob", "type": "human", "display_name": "Bob"},
        headers=key(acme),
    )
    assert added.status_code == 201 and added.json()["display_name"] == "Bob"
    again = await a.http.post(
        f"/v1/sessions/{local}/participants", json={"id": "bob", "type": "human"}, headers=key(acme)
    )
    assert again.status_code == 200
    left = await a.http.delete(f"/v1/sessions/{local}/participants/bob", headers=key(acme))
    assert left.status_code == 200 and left.json()["left_at"] is not None
    gone = await a.http.post(
        "/v1/gateway/events",
        json=message("alice", "bob?", session_id=local, recipient_id="bob"),
        headers=key(acme),
    )
    assert gone.status_code == 404

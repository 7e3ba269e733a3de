"""Turns whose model calls use an organization's own provider key, end to end in process: the
real control plane (SQLite or PostgreSQL) holds the keys, the data plane's model-access cache
and model proxy use them, and a `FakeHarness` calls the model through the proxy as a harness
does. A rotated key serves the next call of the same warm session; revoking falls back to the
org's key, then the platform's; a rejected key fails the turn with `byok_key_rejected`; no key
ever reaches the harness's environment or the session's files."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from karta.app import load_app
from karta.controlplane.app import create_control_app
from karta.controlplane.settings import ControlSettings
from karta.core import events as ev
from karta.core.internal_auth import InternalAccess
from karta.dataplane.control.client import ControlPlaneClient
from karta.dataplane.control.model_access import ModelAccessSource
from karta.dataplane.principal import Principal
from karta.dataplane.runtime.factory import open_runtime
from karta.dataplane.runtime.service import Runtime
from karta.dataplane.runtime.workspace import session_files
from karta.dataplane.settings import Settings
from karta.testing import FakeClock, FakeHarness, ScriptedModel
from karta.testing.fake_harness import CallModel
from karta.testing.fake_providers import FakeProviders
from tests.conftest import SUPPORT_BOT, Database
from tests.controlplane.conftest import SERVICE_TOKEN, TOKEN_SECRET, ControlPlane, Org
from tests.runtime.conftest import of_type, run_turn, texts

PLATFORM_KEY = "sk-platform-key-of-the-operator"


@pytest.fixture(scope="module")
def providers() -> Iterator[FakeProviders]:
    with FakeProviders() as fake:
        yield fake


class World:
    def __init__(self, control: ControlPlane, runtime: Runtime, source: ModelAccessSource) -> None:
        self.control, self.runtime, self.source = control, runtime, source

    async def org(self) -> tuple[Org, int]:
        org = await self.control.signup()
        r = await self.control.client.post("/v1/projects", headers=org.admin, json={"slug": "bot"})
        return org, int(r.json()["id"])

    async def set_key(self, org: Org, key: str, project: str | None = None) -> int:
        body: dict[str, Any] = {
            "provider": "anthropic",
            "label": "k",
            "credential": {"api_key": key},
        }
        if project:
            body["project"] = project
        r = await self.control.client.post(
            "/v1/provider_keys", headers=org.admin, json=body, params={"validate": "false"}
        )
        assert r.status_code == 201, r.text
        self.source.evict(org.id)  # what the control plane's push does on a data plane
        return int(r.json()["id"])

    async def revoke(self, org: Org, key_id: int) -> None:
        r = await self.control.client.delete(f"/v1/provider_keys/{key_id}", headers=org.admin)
        assert r.status_code == 200
        self.source.evict(org.id)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def world(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    providers: FakeProviders,
    scripted_model: ScriptedModel,
    fake: FakeHarness,
    clock: FakeClock,
) -> AsyncIterator[World]:
    db = Database(request.param)
    settings = ControlSettings(
        home=tmp_path / "control",
        database_url=db.url,
        internal=InternalAccess.build([SERVICE_TOKEN]),
        session_token_secret=TOKEN_SECRET,
        providers=providers.urls(),
    )
    app = create_control_app(settings, FakeClock(datetime.now(UTC)))
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://cp") as client:
                control = ControlPlane(client, app, FakeClock(datetime.now(UTC)))
                cp = ControlPlaneClient("http://cp", SERVICE_TOKEN, transport=transport)
                source = ModelAccessSource(cp)
                config = Settings(
                    home=tmp_path / "data", sandbox="none", providers=providers.urls()
                )
                env = {"ANTHROPIC_BASE_URL": scripted_model.url, "ANTHROPIC_API_KEY": PLATFORM_KEY}
                async with open_runtime(
                    load_app(SUPPORT_BOT),
                    config,
                    env,
                    harnesses=lambda kind: fake,
                    clock=clock,
                    model_access=source,
                ) as runtime:
                    yield World(control, runtime, source)
                await cp.close()
    finally:
        db.drop()


def principal(org: Org, project_id: int) -> Principal:
    return Principal(
        kind="api_key",
        organization_id=org.id,
        organization_slug=org.slug,
        project_id=project_id,
        project_slug="bot",
    )


def platform_calls(model: ScriptedModel) -> list:
    return [r for r in model.requests if r.body]


async def test_a_rotated_key_serves_the_next_call_of_the_same_warm_session(
    world: World, providers: FakeProviders, fake: FakeHarness, scripted_model: ScriptedModel
) -> None:
    org, project = await world.org()
    await world.set_key(org, providers.api_key_account("anthropic", "first"))
    session, _ = await world.runtime.create_session(principal(org, project), {})
    fake.enqueue(CallModel("one"), CallModel("two"))
    await run_turn(session, "go")
    await world.set_key(org, providers.api_key_account("anthropic", "second"))  # rotation
    fake.enqueue(CallModel("three"))
    await run_turn(session, "again")
    reached = [(c.account, c.body["messages"][0]["content"]) for c in providers.model_calls()[-3:]]
    assert reached == [("first", "one"), ("first", "two"), ("second", "three")]
    assert len(fake.opened) == 1  # the harness was not restarted: it never held a key
    assert platform_calls(scripted_model) == []


async def test_revoking_falls_back_to_the_org_key_then_to_the_platform(
    world: World, providers: FakeProviders, fake: FakeHarness, scripted_model: ScriptedModel
) -> None:
    org, project = await world.org()
    org_key = await world.set_key(org, providers.api_key_account("anthropic", "org-acct"))
    project_key = await world.set_key(
        org, providers.api_key_account("anthropic", "bot-acct"), project="bot"
    )
    session, _ = await world.runtime.create_session(principal(org, project), {})
    fake.enqueue(CallModel("project wins"))
    await run_turn(session, "1")
    await world.revoke(org, project_key)
    fake.enqueue(CallModel("org next"))
    await run_turn(session, "2")
    await world.revoke(org, org_key)
    fake.enqueue(CallModel("platform last"))
    events = await run_turn(session, "3")
    accounts = [(c.account, c.body["messages"][0]["content"]) for c in providers.model_calls()[-2:]]
    assert accounts == [("bot-acct", "project wins"), ("org-acct", "org next")]
    (platform,) = platform_calls(scripted_model)
    assert platform.prompt == "platform last" and platform.headers["x-api-key"] == PLATFORM_KEY
    assert "said: platform last" in texts(events)


async def test_a_rejected_key_fails_the_turn_and_never_falls_back(
    world: World, fake: FakeHarness, scripted_model: ScriptedModel
) -> None:
    org, project = await world.org()
    await world.set_key(org, "sk-anthropic-this-account-was-closed")
    session, _ = await world.runtime.create_session(principal(org, project), {})
    fake.enqueue(CallModel("hello"))
    events = await run_turn(session, "go")
    errors = of_type(events, ev.ERROR)
    assert errors[-1].data["code"] == "byok_key_rejected"
    assert events[-1].type == ev.DONE and events[-1].data["status"] == "failed"
    assert platform_calls(scripted_model) == []
    fake.enqueue(CallModel("again"))
    events = await run_turn(session, "retry")  # every turn keeps failing until the key is fixed
    assert of_type(events, ev.ERROR)[-1].data["code"] == "byok_key_rejected"
    assert platform_calls(scripted_model) == []


async def test_no_key_reaches_the_harness_environment_or_the_session_files(
    world: World, providers: FakeProviders, fake: FakeHarness
) -> None:
    org, project = await world.org()
    key = providers.api_key_account("anthropic", "hidden")
    await world.set_key(org, key)
    session, _ = await world.runtime.create_session(principal(org, project), {})
    fake.enqueue(CallModel("x"))
    await run_turn(session, "go")
    spec = fake.opened[-1]
    assert key not in repr(spec.model_env) and key not in repr(spec.project_env)
    assert PLATFORM_KEY not in repr(spec.model_env)
    root = session_files(world.runtime.settings.home, session.id).root
    for path in root.rglob("*"):
        if path.is_file():
            assert key.encode() not in path.read_bytes(), path

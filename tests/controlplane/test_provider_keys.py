"""Provider keys (BYOK) and model settings on the control plane, against local fake providers:
each provider's key is checked with one authenticated call, stored encrypted and bound to its
row, shown by its last four characters only, one active per scope and provider, revoked by
shredding, served decrypted only to the data plane, and re-sealed by master-key rotation."""

from __future__ import annotations

import base64
import json
import logging
import secrets
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from karta.controlplane.app import create_control_app
from karta.controlplane.models import AuditEvent, ProjectEnvVar, ProviderKey
from karta.controlplane.rotation import reseal_all
from karta.controlplane.secretbox import SecretBox, SecretUnreadable
from karta.controlplane.settings import ControlSettings
from karta.core.internal_auth import InternalAccess
from karta.testing import FakeClock
from karta.testing.fake_providers import FakeProviders, new_service_account
from tests.conftest import Database
from tests.controlplane.conftest import SERVICE_TOKEN, TOKEN_SECRET, ControlPlane, Org


def ring_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


@pytest.fixture(scope="module")
def providers() -> Iterator[FakeProviders]:
    with FakeProviders() as fake:
        yield fake


class Byok:
    """A control plane pointed at the fake providers, restartable with another key ring."""

    def __init__(self, db: Database, home: Path, providers: FakeProviders) -> None:
        self.db = db
        self.home = home
        self.providers = providers

    def settings(self, ring: str, **overrides: Any) -> ControlSettings:
        return ControlSettings(
            home=self.home,
            database_url=self.db.url,
            internal=InternalAccess.build([SERVICE_TOKEN]),
            session_token_secret=TOKEN_SECRET,
            secrets_keys=ring,
            providers=self.providers.urls(),
            **overrides,
        )

    async def open(self, ring: str, **overrides: Any) -> AsyncIterator[ControlPlane]:
        app = create_control_app(self.settings(ring, **overrides), FakeClock(datetime.now(UTC)))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://cp") as client:
                yield ControlPlane(client, app, FakeClock(datetime.now(UTC)))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def byok(
    request: pytest.FixtureRequest, tmp_path: Path, providers: FakeProviders
) -> Iterator[Byok]:
    db = Database(request.param)
    try:
        yield Byok(db, tmp_path, providers)
    finally:
        db.drop()


RING = f"k1:{ring_key()}"


@pytest.fixture
async def control(byok: Byok) -> AsyncIterator[ControlPlane]:
    async for plane in byok.open(RING):
        yield plane


async def add_key(
    control: ControlPlane, org: Org, provider: str, credential: dict[str, str], **extra: Any
) -> httpx.Response:
    params = {"validate": "false"} if extra.pop("_skip", False) else {}
    body = {"provider": provider, "label": f"{provider} key", "credential": credential, **extra}
    return await control.client.post(
        "/v1/provider_keys", headers=org.admin, json=body, params=params
    )


async def access(control: ControlPlane, org: Org, project_id: int | None = None) -> dict:
    params: dict[str, int] = {"organization_id": org.id}
    if project_id is not None:
        params["project_id"] = project_id
    r = await control.client.get("/internal/model_access", headers=control.service, params=params)
    assert r.status_code == 200, r.text
    return dict(r.json())


def secrets_of(credential: dict[str, str]) -> list[str]:
    return [v for k, v in credential.items() if k not in ("region", "project")]


async def test_each_provider_is_checked_stored_and_shown_by_its_last_four_only(
    control: ControlPlane, providers: FakeProviders, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    org = await control.signup()
    credentials = {
        "anthropic": {"api_key": providers.api_key_account("anthropic", "acme")},
        "openai": {"api_key": providers.api_key_account("openai", "acme")},
        "openrouter": {"api_key": providers.api_key_account("openrouter", "acme")},
        "bedrock": providers.bedrock_account("acme"),
        "vertex": providers.vertex_account("acme"),
    }
    before = len(providers.calls)
    for provider, credential in credentials.items():
        r = await add_key(control, org, provider, credential)
        assert r.status_code == 201, r.text
        shown = r.json()
        assert shown["provider"] == provider and shown["status"] == "active"
        assert len(shown["last4"]) == 4
        for secret in secrets_of(credential):
            assert secret not in r.text
    checks = providers.calls[before:]
    assert [(c.provider, c.account) for c in checks] == [(p, "acme") for p in credentials], (
        "one authenticated call per provider, each reaching the account"
    )
    listed = await control.client.get("/v1/provider_keys", headers=org.admin)
    audit = await control.client.get("/v1/audit", headers=org.admin)
    served = {k["provider"]: k["material"] for k in (await access(control, org))["keys"]}
    vertex = served.pop("vertex")
    assert json.loads(vertex.pop("service_account")) == json.loads(
        credentials["vertex"]["service_account"]
    )
    assert vertex == {"project": "karta-test", "region": "us-east5"}
    assert served == {p: c for p, c in credentials.items() if p != "vertex"}
    for secret in (s for c in credentials.values() for s in secrets_of(c)):
        assert secret not in listed.text
        assert secret not in audit.text
        assert secret not in caplog.text
    async with control.app.state.db() as session:
        rows = (await session.scalars(select(ProviderKey))).all()
    for row in rows:
        for secret in (s for c in credentials.values() for s in secrets_of(c)):
            assert secret.encode() not in row.ciphertext


async def test_a_key_the_provider_refuses_is_not_stored_unless_unchecked(
    control: ControlPlane, providers: FakeProviders
) -> None:
    org = await control.signup()
    for provider, credential in (
        ("anthropic", {"api_key": "sk-ant-nobody-knows-this"}),
        ("openrouter", {"api_key": "sk-or-nobody-knows-this"}),
        ("bedrock", {**providers.bedrock_account("acme"), "secret_access_key": "wrong-secret"}),
        (  # a service account the token endpoint has never heard of
            "vertex",
            {
                "service_account": new_service_account("ghost").key_file,
                "project": "karta-test",
                "region": "us-east5",
            },
        ),
    ):
        r = await add_key(control, org, provider, credential)
        assert r.status_code == 422, r.text
        assert r.json()["error"] == "provider_key_rejected"
        assert "nobody-knows" not in r.text and "wrong-secret" not in r.text
    r = await add_key(control, org, "anthropic", {"api_key": "sk-ant-nobody-knows-this"}, _skip=1)
    assert r.status_code == 201
    assert (await control.client.get("/v1/provider_keys", headers=org.admin)).json()["data"][0][
        "last4"
    ] == "this"


@pytest.mark.parametrize(
    ("provider", "credential", "problem"),
    [
        ("anthropic", {}, "needs 'api_key'"),
        ("anthropic", {"api_key": "short"}, "too short"),
        ("anthropic", {"api_key": "sk-ant-long-enough", "region": "x"}, "no field 'region'"),
        ("bedrock", {"access_key_id": "A", "secret_access_key": "s"}, "needs 'region'"),
        (
            "bedrock",
            {"access_key_id": "A", "secret_access_key": "s", "region": "evil.com/x#"},
            "'region' is not a region",
        ),
        (
            "vertex",
            {"service_account": "{}", "project": "karta-test", "region": "us-east5"},
            "not a service-account",
        ),
    ],
)
async def test_malformed_credentials_are_422_naming_the_field(
    control: ControlPlane, provider: str, credential: dict[str, str], problem: str
) -> None:
    org = await control.signup()
    r = await add_key(control, org, provider, credential)
    assert r.status_code == 422 and r.json()["error"] == "invalid_provider_key", r.text
    assert problem in r.json()["message"]


async def test_one_active_key_per_scope_and_provider_and_revoking_shreds_it(
    control: ControlPlane, providers: FakeProviders
) -> None:
    org = await control.signup()
    await control.client.post("/v1/projects", headers=org.admin, json={"slug": "bot"})
    first = await add_key(
        control, org, "anthropic", {"api_key": providers.api_key_account("anthropic", "a1")}
    )
    second = await add_key(
        control, org, "anthropic", {"api_key": providers.api_key_account("anthropic", "a2")}
    )
    assert second.json()["replaced"] == first.json()["id"]
    old = await control.client.get(f"/v1/provider_keys/{first.json()['id']}", headers=org.admin)
    assert old.json()["status"] == "revoked" and old.json()["revoked_at"]
    project_key = await add_key(
        control,
        org,
        "anthropic",
        {"api_key": providers.api_key_account("anthropic", "p1")},
        project="bot",
    )
    assert project_key.status_code == 201 and project_key.json()["replaced"] is None
    assert project_key.json()["project"] == "bot"
    async with control.app.state.db() as session:
        shredded = await session.get(ProviderKey, first.json()["id"])
        assert shredded is not None and shredded.ciphertext == b"" and shredded.slot is None
    r = await control.client.delete(f"/v1/provider_keys/{second.json()['id']}", headers=org.admin)
    assert r.status_code == 200 and r.json()["status"] == "revoked"
    async with control.app.state.db() as session:
        gone = await session.get(ProviderKey, second.json()["id"])
        assert gone is not None and gone.ciphertext == b""
    served = await access(control, org)
    assert served["keys"] == []  # the org has no anthropic key left: the platform's serves it
    actions = [
        row["action"]
        for row in (await control.client.get("/v1/audit", headers=org.admin)).json()["data"]
    ]
    assert actions.count("provider_key.created") == 3
    assert actions.count("provider_key.revoked") == 2


async def test_a_project_key_overrides_the_org_key_for_that_project_only(
    control: ControlPlane, providers: FakeProviders
) -> None:
    org = await control.signup()
    bot = (
        await control.client.post("/v1/projects", headers=org.admin, json={"slug": "bot"})
    ).json()
    other = (
        await control.client.post("/v1/projects", headers=org.admin, json={"slug": "other"})
    ).json()
    org_key = providers.api_key_account("anthropic", "org")
    bot_key = providers.api_key_account("anthropic", "bot")
    await add_key(control, org, "anthropic", {"api_key": org_key})
    await add_key(control, org, "anthropic", {"api_key": bot_key}, project="bot")
    await add_key(control, org, "openai", {"api_key": providers.api_key_account("openai", "org")})
    served = await access(control, org, bot["id"])
    by_provider = {k["provider"]: k for k in served["keys"]}
    assert by_provider["anthropic"]["material"] == {"api_key": bot_key}
    assert by_provider["anthropic"]["owner"] == "project"
    assert by_provider["openai"]["owner"] == "org"
    served = await access(control, org, other["id"])
    assert {k["provider"]: k["material"]["api_key"] for k in served["keys"]}["anthropic"] == org_key
    assert (await access(control, org))["keys"][0]["owner"] == "org"


async def test_another_orgs_key_is_not_found(
    control: ControlPlane, providers: FakeProviders
) -> None:
    mine, theirs = await control.signup(), await control.signup()
    r = await add_key(
        control, theirs, "openai", {"api_key": providers.api_key_account("openai", "t")}
    )
    key_id = r.json()["id"]
    assert (
        await control.client.get(f"/v1/provider_keys/{key_id}", headers=mine.admin)
    ).status_code == 404
    assert (
        await control.client.delete(f"/v1/provider_keys/{key_id}", headers=mine.admin)
    ).status_code == 404
    assert (await control.client.get("/v1/provider_keys", headers=mine.admin)).json()["data"] == []
    assert (await access(control, mine))["keys"] == []
    again = await control.client.get(f"/v1/provider_keys/{key_id}", headers=theirs.admin)
    assert again.json()["status"] == "active"


async def test_a_ciphertext_moved_to_another_row_does_not_open(
    control: ControlPlane, providers: FakeProviders
) -> None:
    a, b = await control.signup(), await control.signup()
    await add_key(control, a, "anthropic", {"api_key": providers.api_key_account("anthropic", "a")})
    await add_key(control, b, "anthropic", {"api_key": providers.api_key_account("anthropic", "b")})
    await add_key(control, b, "openai", {"api_key": providers.api_key_account("openai", "b")})
    async with control.app.state.db() as session, session.begin():
        rows = {
            (r.organization_id, r.provider): r
            for r in (await session.scalars(select(ProviderKey))).all()
        }
        stolen = rows[(a.id, "anthropic")].ciphertext
        await session.execute(
            update(ProviderKey)
            .where(ProviderKey.id == rows[(b.id, "anthropic")].id)
            .values(ciphertext=stolen)
        )
        await session.execute(
            update(ProviderKey)
            .where(ProviderKey.id == rows[(b.id, "openai")].id)
            .values(ciphertext=rows[(b.id, "anthropic")].ciphertext)
        )
    from karta.controlplane.provider_keys import open_key

    box = control.app.state.secretbox
    async with control.app.state.db() as session:
        for row in (
            await session.scalars(select(ProviderKey).where(ProviderKey.organization_id == b.id))
        ).all():
            with pytest.raises(SecretUnreadable) as raised:
                open_key(box, row)
            assert "sk-" not in str(raised.value)
        (own,) = (
            await session.scalars(select(ProviderKey).where(ProviderKey.organization_id == a.id))
        ).all()
        assert open_key(box, own)["api_key"].startswith("sk-anthropic-a-")


async def test_rotation_reseals_every_secret_with_the_newest_master_key(
    byok: Byok, providers: FakeProviders
) -> None:
    old, new = f"old:{ring_key()}", f"new:{ring_key()}"
    key = providers.api_key_account("anthropic", "rot")
    async for control in byok.open(old):
        org = await control.signup()
        await control.client.post("/v1/projects", headers=org.admin, json={"slug": "bot"})
        await add_key(control, org, "anthropic", {"api_key": key})
        r = await control.client.put(
            "/v1/projects/bot/env/TOKEN", headers=org.admin, json={"value": "tok-value-123"}
        )
        assert r.status_code == 200
    async for control in byok.open(f"{new},{old}"):
        assert (await access(control, org))["keys"][0]["material"] == {"api_key": key}  # old opens
        done = await reseal_all(control.app.state.db, control.app.state.secretbox)
        assert (done.env_vars, done.provider_keys) == (1, 1)
        again = await reseal_all(control.app.state.db, control.app.state.secretbox)
        assert (again.env_vars, again.provider_keys) == (0, 0)
        async with control.app.state.db() as session:
            assert {r.key_id for r in (await session.scalars(select(ProviderKey))).all()} == {"new"}
            assert {r.key_id for r in (await session.scalars(select(ProjectEnvVar))).all()} == {
                "new"
            }
    async for control in byok.open(new):  # the old key retired: everything still opens
        assert (await access(control, org))["keys"][0]["material"] == {"api_key": key}
        r = await control.client.get(
            "/internal/projects/bot/env",
            headers=control.service,
            params={"organization_id": org.id},
        )
        assert r.json()["env"] == {"TOKEN": "tok-value-123"}


def test_the_key_ring_newest_seals_every_key_opens() -> None:
    one, two = secrets.token_bytes(32), secrets.token_bytes(32)
    old = SecretBox([("one", one)])
    sealed = old.seal("secret", "ctx")
    ring = SecretBox([("two", two), ("one", one)])
    assert ring.open(sealed.blob, "ctx", sealed.key_id) == "secret"
    assert ring.open(sealed.blob, "ctx") == "secret"  # a row from before key ids: tried in turn
    assert ring.seal("x", "ctx").key_id == "two"
    with pytest.raises(SecretUnreadable):
        ring.open(sealed.blob, "other-ctx", "one")
    assert "secret" not in repr(ring) and repr(ring) == "SecretBox(keys=['two', 'one'])"
    with pytest.raises(ValueError, match="unique"):
        SecretBox([("a", one), ("a", two)])


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://llm.example.com", "https"),
        ("https://127.0.0.1:8443", "IP address"),
        ("https://[::1]/v1", "IP address"),
        ("https://10.0.0.8", "IP address"),
        ("https://localhost:9000", "public host"),
        ("https://metadata.internal", "public host"),
        ("https://user:pw@llm.example.com", "no user"),
        ("https://llm.example.com/v1?x=1", "query"),
        ("not a url", "https"),
    ],
)
async def test_model_endpoints_are_checked_when_written(
    control: ControlPlane, url: str, problem: str
) -> None:
    org = await control.signup()
    body = {"provider": "anthropic", "model": "claude-x", "endpoint_url": url}
    r = await control.client.put("/v1/model_settings", headers=org.admin, json=body)
    assert r.status_code == 422 and r.json()["error"] == "invalid_endpoint", r.text
    assert problem in r.json()["message"]


async def test_model_settings_per_org_with_a_project_override(byok: Byok) -> None:
    async for control in byok.open(RING, allow_private_endpoints=True):
        org = await control.signup()
        bot = (
            await control.client.post("/v1/projects", headers=org.admin, json={"slug": "bot"})
        ).json()
        r = await control.client.put(
            "/v1/model_settings",
            headers=org.admin,
            json={"provider": "bedrock", "model": "anthropic.claude-x-v1:0"},
        )
        assert r.status_code == 200 and r.json()["provider"] == "bedrock"
        bad = await control.client.put(
            "/v1/model_settings",
            headers=org.admin,
            json={"provider": "bedrock", "endpoint_url": "https://x.example.com"},
        )
        assert bad.status_code == 422 and "anthropic or openai" in bad.json()["message"]
        r = await control.client.put(
            "/v1/model_settings",
            headers=org.admin,
            params={"project": "bot"},
            json={"provider": "anthropic", "endpoint_url": "http://127.0.0.1:9/gateway/"},
        )
        assert r.status_code == 200, r.text
        assert r.json()["endpoint_url"] == "http://127.0.0.1:9/gateway"
        assert (await access(control, org, bot["id"]))["provider"] == "anthropic"
        served = await access(control, org)
        assert (served["provider"], served["model"]) == ("bedrock", "anthropic.claude-x-v1:0")
        r = await control.client.delete(
            "/v1/model_settings", headers=org.admin, params={"project": "bot"}
        )
        assert r.status_code == 204
        assert (await access(control, org, bot["id"]))["provider"] == "bedrock"
        async with control.app.state.db() as session:
            actions = (await session.scalars(select(AuditEvent.action))).all()
        assert {"model_settings.set", "model_settings.cleared"} <= set(actions)


def usage_event(org: Org, model: str, tokens: tuple[int, int], **extra: Any) -> dict:
    return {
        "event_id": secrets.token_hex(8),
        "organization_id": org.id,
        "model": model,
        "input_tokens": tokens[0],
        "output_tokens": tokens[1],
        "occurred_at": datetime.now(UTC).isoformat(),
        **extra,
    }


async def ship(control: ControlPlane, events: list[dict]) -> None:
    r = await control.client.post(
        "/internal/usage/events", headers=control.service, json={"events": events}
    )
    assert r.status_code == 200 and r.json()["accepted"] == len(events), r.text


async def test_usage_says_who_served_and_whose_key_paid_priced_per_provider(
    control: ControlPlane,
) -> None:
    org = await control.signup()
    await ship(
        control,
        [
            usage_event(org, "claude-sonnet-4-5", (1_000_000, 0)),
            usage_event(
                org,
                "anthropic.claude-sonnet-4-5-v1:0",
                (1_000_000, 0),
                provider="bedrock",
                key_owner="org",
            ),
        ],
    )
    rows = (await control.client.get("/v1/usage", headers=org.admin)).json()["by_model"]
    assert [(r["model"], r["provider"], r["key_owner"], r["cost_cents"]) for r in rows] == [
        ("anthropic.claude-sonnet-4-5-v1:0", "bedrock", "org", 300),  # bedrock's sonnet price
        ("claude-sonnet-4-5", None, "platform", 300),
    ]
    budget = (await control.client.get("/v1/budget", headers=org.admin)).json()
    assert budget["used_cost_cents"] == 600  # by default the org's own keys count toward the cap


async def test_own_key_usage_can_be_kept_outside_the_cost_cap(byok: Byok) -> None:
    async for control in byok.open(RING, own_keys_outside_cost_cap=True):
        org = await control.signup()
        r = await control.client.put(
            "/v1/budget", headers=org.admin, json={"monthly_cost_limit_cents": 500}
        )
        assert r.status_code == 200
        own = {"provider": "anthropic", "key_owner": "project"}
        await ship(control, [usage_event(org, "claude-sonnet-4-5", (10_000_000, 0), **own)])
        usage = (await control.client.get("/v1/usage", headers=org.admin)).json()
        assert usage["totals"]["cost_cents"] == 3_000  # shown to the builder in full
        assert usage["budget"]["used_cost_cents"] == 0 and usage["budget"]["state"] == "ok"
        check = {
            "organization_id": org.id,
            "pending": [
                {"model": "claude-sonnet-4-5", "input_tokens": 10_000_000, **{"key_owner": "org"}}
            ],
        }
        r = await control.client.post("/internal/budget/check", headers=control.service, json=check)
        assert r.status_code == 200  # own-key usage still in flight does not count either
        await ship(control, [usage_event(org, "claude-sonnet-4-5", (2_000_000, 0))])
        r = await control.client.post(
            "/internal/budget/check", headers=control.service, json={"organization_id": org.id}
        )
        assert r.status_code == 402  # the platform's key still counts

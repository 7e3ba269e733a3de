"""The planes' contract (`karta.core.internal_api`): every internal route of both planes is declared
with its models, the bytes on the wire are the ones planes of earlier versions exchange, and an
answer outside the contract is an outage on the data plane, never access."""

from __future__ import annotations

import json

import httpx
import pytest
from fastapi.routing import APIRoute
from pydantic import BaseModel

from karta.controlplane.routes import internal as control_routes
from karta.core import internal_api as api
from karta.core.errors import BudgetExhausted
from karta.dataplane.control.client import ControlPlaneClient, ControlPlaneUnavailable
from karta.dataplane.routes import internal as data_routes
from karta.releases.archive import pack_bytes
from tests.conftest import SUPPORT_BOT
from tests.unit.control_plane_double import ControlPlaneDouble, key

PATHS = {v for k, v in vars(api).items() if k.isupper() and isinstance(v, str) and v[:1] == "/"}
CONTRACT = {v for v in vars(api).values() if isinstance(v, type) and issubclass(v, BaseModel)}


def routes() -> list[APIRoute]:
    return [r for m in (control_routes, data_routes) for r in m.router.routes]  # type: ignore[misc]


def test_every_internal_route_is_a_path_of_the_contract_and_every_path_is_served():
    assert {r.path for r in routes()} == PATHS


@pytest.mark.parametrize("route", routes(), ids=lambda r: r.path)
def test_every_internal_route_takes_and_answers_contract_models(route: APIRoute):
    if route.body_field is not None:
        assert route.body_field.field_info.annotation in CONTRACT, route.path
    if route.path == api.ARTIFACT:
        assert route.response_model is None  # the archive's bytes, not JSON
    elif route.path == api.VALIDATE_KEY:
        assert route.response_model == api.KeyValidation
    elif route.path == api.EMBED_KEY:
        assert route.response_model == api.EmbedKeyLookup
    elif route.path == api.EMBED_SESSION_TOKENS:
        assert route.response_model == api.EmbedMint
    else:
        assert route.response_model in CONTRACT, route.path


async def test_the_wire_is_byte_for_byte_what_earlier_planes_exchange(
    control: ControlPlaneDouble,
) -> None:
    """What a data plane of an earlier version parses: every field, in this order, these nulls
    and this timestamp form. A change here is a change of the wire: see docs/architecture.md."""
    acme = await control.signup("acme")
    await control.project(acme, "bot")
    digest = await control.publish(acme, "bot", pack_bytes(SUPPORT_BOT))
    await control.set_env(acme, "bot", "PROBE", "x")
    org = {"organization_id": acme.id}
    service = {"Authorization": "Bearer svc-unit-tests"}
    created = (await control.manage.get("/v1/projects/bot", headers=acme.admin)).json()

    async def wire(method: str, path: str, **kw: object) -> bytes:
        response = await control.manage.request(method, path, headers=service, **kw)  # type: ignore[arg-type]
        return response.content

    assert await wire("GET", api.WHOAMI) == b'{"principal_kind":"service"}'
    assert await wire("POST", api.VALIDATE_KEY, json={"key": key(1)}) == b'{"valid":false}'
    assert await wire("POST", api.VALIDATE_KEY, json={"key": acme.admin_key}) == compact(
        valid=True,
        organization_id=acme.id,
        organization_slug="acme",
        api_key_id=acme.admin_key_id,
        api_key_prefix=acme.admin_key[:14],
        scopes=["admin"],
        budget_ok=True,
        budget_reason=None,
    )
    assert await wire("GET", api.PROJECT.format(ref="bot"), params=org) == compact(
        id=created["id"],
        object="project",
        slug="bot",
        name="bot",
        organization_id=acme.id,
        created_at=created["created_at"],
    )
    release = compact(
        project_id=created["id"],
        project_slug="bot",
        organization_id=acme.id,
        version=1,
        digest=digest,
        harness="claude-code",
        status="ready",
    )
    assert await wire("GET", api.ACTIVE_RELEASE.format(ref="bot"), params=org) == release
    assert await wire("GET", api.RELEASE.format(ref="bot", version=1), params=org) == release
    assert await wire("GET", api.PROJECT_ENV.format(ref="bot"), params=org) == compact(
        env={"PROBE": "x"}
    )
    check = {"organization_id": acme.id, "api_key_id": None, "pending": []}
    assert await wire("POST", api.BUDGET_CHECK, json=check) == compact(ok=True, limited=False)
    event = api.UsageEvent(event_id="use_1", organization_id=acme.id, occurred_at="2026-11-24")  # type: ignore[arg-type]
    batch = api.UsageBatch(events=[event]).model_dump(mode="json")
    assert batch["events"][0]["occurred_at"] == "2026-11-24T00:00:00", "isoformat, not Z"
    assert await wire("POST", api.USAGE_EVENTS, json=batch) == compact(
        accepted=1, duplicates=0, rejected=[]
    )


def compact(**fields: object) -> bytes:
    return json.dumps(fields, separators=(",", ":")).encode()


def test_a_refused_budget_check_is_the_contracts_refusal():
    body = BudgetExhausted("monthly_token_limit").body()
    assert api.BudgetRefusal.model_validate(body).reason == "monthly_token_limit"


def answering(body: object, status: int = 200) -> ControlPlaneClient:
    """A client of a control plane that answers every call with `body`."""
    transport = httpx.MockTransport(lambda _: httpx.Response(status, json=body))
    return ControlPlaneClient("http://control", "svc", transport=transport)


@pytest.mark.parametrize(
    "body",
    [
        {"valid": True},  # fields missing
        {"valid": True, "organization_id": "1", "organization_slug": "a", "api_key_id": 1,
         "api_key_prefix": "kt_live_x", "scopes": [], "budget_ok": True, "budget_reason": None},
        {"valid": "yes"},
        [],
    ],
)  # fmt: skip
async def test_a_key_answer_outside_the_contract_is_an_outage_not_access(body: object):
    with pytest.raises(ControlPlaneUnavailable) as unavailable:
        await answering(body).validate_key(key(1))
    assert unavailable.value.state == "error"


async def test_what_breaks_the_contract_is_logged_without_its_values(caplog):
    client = answering({"env": {"API_TOKEN": ["s3cr3t-value"]}})
    with pytest.raises(ControlPlaneUnavailable):
        await client.project_env("bot", 1)
    assert "env.API_TOKEN" in caplog.text and "s3cr3t-value" not in caplog.text


async def test_every_answer_is_checked_against_the_contract():
    client = answering({"id": 1})
    for call in (
        client.project("bot", 1),
        client.active_release("bot", 1),
        client.project_env("bot", 1),
        client.check_budget(1, None, []),
        client.send_events(api.USAGE_EVENTS, api.UsageBatch(events=[])),
        client.probe(),
    ):
        with pytest.raises(ControlPlaneUnavailable):
            await call
    assert client.breaker.retry_after() is None, "a bad answer is still an answer"

"""Budgets: a check admits a turn or a model call while spent plus the data plane's pending
usage is under every cap (no reservation: a budget with 15 tokens left still admits); key
sub-limits; integer cost caps; idempotent, exact metering per model call."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime
from typing import Any

from tests.controlplane.conftest import ControlPlane, Org


async def _check(
    control: ControlPlane, org: Org, key_id: int | None = None, pending: list[dict] | None = None
) -> int:
    r = await control.client.post(
        "/internal/budget/check",
        headers=control.service,
        json={"organization_id": org.id, "api_key_id": key_id, "pending": pending or []},
    )
    assert r.status_code in (200, 402), r.text
    return r.status_code


def _event(org: Org, *, tokens: tuple[int, int], **extra: Any) -> dict:
    return {
        "event_id": extra.pop("event_id", secrets.token_hex(8)),
        "organization_id": org.id,
        "model": "claude-sonnet-4-5",
        "input_tokens": tokens[0],
        "output_tokens": tokens[1],
        "occurred_at": datetime.now(UTC).isoformat(),
        **extra,
    }


async def _ingest(control: ControlPlane, events: list[dict]) -> dict:
    r = await control.client.post(
        "/internal/usage/events", headers=control.service, json={"events": events}
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_a_check_admits_while_anything_is_left(control: ControlPlane) -> None:
    org = await control.signup()
    r = await control.client.put(
        "/v1/budget", headers=org.admin, json={"monthly_token_limit": 20_000}
    )
    assert r.status_code == 200
    await _ingest(control, [_event(org, tokens=(19_900, 85))])  # 15 tokens left
    budget = (await control.client.get("/v1/budget", headers=org.admin)).json()
    assert budget["state"] == "ok"
    # As many checks as arrive at once pass: nothing is set aside for them.
    assert set(await asyncio.gather(*(_check(control, org) for _ in range(16)))) == {200}
    # Usage the data plane has not shipped yet counts as spent.
    pending = [{"model": "claude-sonnet-4-5", "input_tokens": 10, "output_tokens": 5}]
    assert await _check(control, org, pending=pending) == 402
    assert await _check(control, org, pending=[{**pending[0], "output_tokens": 4}]) == 200
    await _ingest(control, [_event(org, tokens=(10, 5))])
    assert await _check(control, org) == 402
    # Raising the cap admits again.
    await control.client.put("/v1/budget", headers=org.admin, json={"monthly_token_limit": 30_000})
    assert await _check(control, org) == 200


async def test_an_admission_says_whether_any_cap_applies(control: ControlPlane) -> None:
    """The data plane stops asking for a while about payers no cap applies to, so the answer
    must say so exactly: the org's caps, the key's, an embed key's anonymous cap."""
    org = await control.signup()
    _, capped_key = await control.key(org, "write", monthly_cost_limit_cents=500)

    async def limited(**body: Any) -> bool:
        r = await control.client.post(
            "/internal/budget/check",
            headers=control.service,
            json={"organization_id": org.id, **body},
        )
        assert r.status_code == 200, r.text
        return bool(r.json()["limited"])

    assert await limited(api_key_id=org.admin_key_id) is False
    assert await limited() is False
    assert await limited(api_key_id=capped_key) is True, "the key's cap"
    await control.client.post("/v1/projects", headers=org.admin, json={"slug": "bot"})
    r = await control.client.post(
        "/v1/projects/bot/embed_keys",
        headers=org.admin,
        json={
            "name": "site",
            "allowed_origins": ["https://shop.example"],
            "anonymous_cost_limit_cents": 100,
        },
    )
    assert r.status_code == 201, r.text
    assert await limited(embed_key_id=r.json()["embed_key"]["id"]) is True, "anonymous cap"
    await control.client.put("/v1/budget", headers=org.admin, json={"monthly_token_limit": 10})
    assert await limited(api_key_id=org.admin_key_id) is True, "the org's cap"


async def test_refusal_names_the_cap_and_validation_reports_it(control: ControlPlane) -> None:
    org = await control.signup()
    secret, key_id = await control.key(org, "write", monthly_token_limit=1_500)
    assert await _check(control, org, key_id) == 200
    await _ingest(control, [_event(org, tokens=(1_400, 100), api_key_id=key_id)])
    r = await control.client.post(
        "/internal/budget/check",
        headers=control.service,
        json={"organization_id": org.id, "api_key_id": key_id},
    )
    assert r.status_code == 402
    assert r.json()["error"] == "budget_exhausted"
    assert r.json()["reason"] == "key_monthly_token_limit"
    r = await control.client.post(
        "/internal/keys/validate", headers=control.service, json={"key": secret}
    )
    assert r.json()["budget_ok"] is False
    assert r.json()["budget_reason"] == "key_monthly_token_limit"
    # The org's other keys are unaffected by one key's sub-limit.
    assert await _check(control, org, org.admin_key_id) == 200
    # Pending usage of another key does not count against this key's sub-limit.
    other = [{"api_key_id": org.admin_key_id, "input_tokens": 1, "output_tokens": 0}]
    assert await _check(control, org, org.admin_key_id, other) == 200
    # A spent key cannot mint session tokens either.
    await control.client.post("/v1/projects", headers=org.admin, json={"slug": "bot"})
    r = await control.client.post(
        "/v1/projects/bot/session_tokens", headers=org.bearer(secret), json={}
    )
    assert r.status_code == 402


async def test_cost_cap_in_integer_cents(control: ControlPlane) -> None:
    org = await control.signup()
    await control.client.put("/v1/budget", headers=org.admin, json={"monthly_cost_limit_cents": 1})
    # Sonnet: $3 / $15 per million tokens. 1,000 input + 200 output = 0.6 cents exactly.
    await _ingest(control, [_event(org, tokens=(1_000, 200))])
    usage = (await control.client.get("/v1/usage", headers=org.admin)).json()
    assert usage["totals"]["cost_micros"] == 600_000
    assert usage["totals"]["cost_cents"] == 1  # rounded up, never under-billed
    assert usage["budget"]["state"] == "ok"
    await _ingest(control, [_event(org, tokens=(1_000, 200))])
    usage = (await control.client.get("/v1/usage", headers=org.admin)).json()
    assert usage["budget"]["state"] == "exhausted"
    assert usage["budget"]["reason"] == "monthly_cost_limit"
    assert await _check(control, org) == 402


async def test_pending_usage_is_priced_for_a_cost_cap(control: ControlPlane) -> None:
    org = await control.signup()
    await control.client.put("/v1/budget", headers=org.admin, json={"monthly_cost_limit_cents": 1})
    # 0.6 cents spent; 0.4 cents more (Sonnet output at $15/M: 267 tokens) reaches the cap.
    await _ingest(control, [_event(org, tokens=(1_000, 200))])
    near = {"model": "claude-sonnet-4-5", "input_tokens": 0, "output_tokens": 266}
    assert await _check(control, org, pending=[near]) == 200
    assert await _check(control, org, pending=[{**near, "output_tokens": 267}]) == 402


async def test_ingestion_is_idempotent_and_exact(control: ControlPlane) -> None:
    org = await control.signup()
    events = [_event(org, tokens=(100 + i, 10), event_id=f"ev-{i}") for i in range(5)]
    first = await _ingest(control, events)
    again = await _ingest(control, [*events[2:], _event(org, tokens=(1, 1), event_id="ev-new")])
    assert first == {"accepted": 5, "duplicates": 0, "rejected": []}
    assert again == {"accepted": 1, "duplicates": 3, "rejected": []}
    usage = (await control.client.get("/v1/usage", headers=org.admin)).json()
    assert usage["totals"]["model_calls"] == 6
    assert usage["totals"]["input_tokens"] == sum(100 + i for i in range(5)) + 1
    assert usage["totals"]["output_tokens"] == 51
    assert [d["model_calls"] for d in usage["daily"]] == [6]
    assert usage["by_model"][0]["model"] == "claude-sonnet-4-5"


async def test_money_fields_refuse_floats_and_strings(control: ControlPlane) -> None:
    org = await control.signup()
    for bad in (1.5, "100", -1):
        r = await control.client.put(
            "/v1/budget", headers=org.admin, json={"monthly_cost_limit_cents": bad}
        )
        assert r.status_code == 422, bad
        assert r.json()["fields"][0]["field"] == "monthly_cost_limit_cents"
    r = await control.client.get("/v1/usage?period=2026-13", headers=org.admin)
    assert r.status_code == 400 and r.json()["field"] == "period"

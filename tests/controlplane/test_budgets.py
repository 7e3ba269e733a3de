"""Budgets: reservations admit at most what fits under the caps, even 16 at once; usage settles
them; key sub-limits; integer cost caps; idempotent, exact metering."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime
from typing import Any

from tests.controlplane.conftest import ControlPlane, Org

RESERVE = 1_000  # the fixture's turn_reserve_tokens


async def _reserve(control: ControlPlane, org: Org, key_id: int | None = None) -> tuple[int, str]:
    rid = f"res_{secrets.token_hex(6)}"
    r = await control.client.post(
        "/internal/budget/reserve",
        headers=control.service,
        json={"reservation_id": rid, "organization_id": org.id, "api_key_id": key_id},
    )
    return r.status_code, rid


def _event(org: Org, *, tokens: tuple[int, int], rid: str | None = None, **extra: Any) -> dict:
    return {
        "event_id": extra.pop("event_id", secrets.token_hex(8)),
        "organization_id": org.id,
        "reservation_id": rid,
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


async def test_sixteen_concurrent_reservations_at_the_edge(control: ControlPlane) -> None:
    org = await control.signup()
    r = await control.client.put(
        "/v1/budget", headers=org.admin, json={"monthly_token_limit": 3 * RESERVE + 500}
    )
    assert r.status_code == 200
    results = await asyncio.gather(*(_reserve(control, org) for _ in range(16)))
    admitted = [rid for status, rid in results if status == 200]
    assert len(admitted) == 3
    assert sorted(status for status, _ in results).count(402) == 13
    # Each admitted turn used 900 tokens: settled, the org has 2,700 spent and nothing held,
    # so one more reservation (3,700 > 3,500) no longer fits.
    await _ingest(control, [_event(org, tokens=(800, 100), rid=rid) for rid in admitted])
    budget = (await control.client.get("/v1/budget", headers=org.admin)).json()
    assert budget["used_tokens"] == 2_700 and budget["state"] == "ok"
    status, _ = await _reserve(control, org)
    assert status == 402
    # Raising the cap admits again.
    await control.client.put("/v1/budget", headers=org.admin, json={"monthly_token_limit": 4_000})
    assert (await _reserve(control, org))[0] == 200


async def test_refusal_names_the_cap_and_validation_reports_it(control: ControlPlane) -> None:
    org = await control.signup()
    secret, key_id = await control.key(org, "write", monthly_token_limit=1_500)
    status, rid = await _reserve(control, org, key_id)
    assert status == 200
    await _ingest(control, [_event(org, tokens=(1_400, 100), rid=rid, api_key_id=key_id)])
    r = await control.client.post(
        "/internal/budget/reserve",
        headers=control.service,
        json={"reservation_id": "again", "organization_id": org.id, "api_key_id": key_id},
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
    assert (await _reserve(control, org, org.admin_key_id))[0] == 200
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
    assert (await _reserve(control, org))[0] == 402


async def test_ingestion_is_idempotent_and_exact(control: ControlPlane) -> None:
    org = await control.signup()
    events = [_event(org, tokens=(100 + i, 10), event_id=f"ev-{i}") for i in range(5)]
    first = await _ingest(control, events)
    again = await _ingest(control, [*events[2:], _event(org, tokens=(1, 1), event_id="ev-new")])
    assert first == {"accepted": 5, "duplicates": 0, "rejected": []}
    assert again == {"accepted": 1, "duplicates": 3, "rejected": []}
    usage = (await control.client.get("/v1/usage", headers=org.admin)).json()
    assert usage["totals"]["turns"] == 6
    assert usage["totals"]["input_tokens"] == sum(100 + i for i in range(5)) + 1
    assert usage["totals"]["output_tokens"] == 51
    assert [d["turns"] for d in usage["daily"]] == [6]
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


async def test_an_expired_reservation_stops_counting(control: ControlPlane) -> None:
    org = await control.signup()
    r = await control.client.put(
        "/v1/budget", headers=org.admin, json={"monthly_token_limit": 2 * RESERVE + 500}
    )
    assert r.status_code == 200
    assert [(await _reserve(control, org))[0] for _ in range(3)] == [200, 200, 402]
    ttl = control.app.state.settings.reservation_ttl
    control.clock.advance(ttl - 1)  # the two turns never report, but have not expired yet
    assert (await _reserve(control, org))[0] == 402
    control.clock.advance(1)  # now they have: nothing is held, and two fit again
    assert [(await _reserve(control, org))[0] for _ in range(3)] == [200, 200, 402]

"""API-key and project resolution and budget reservations against a fake control plane, on an
injected clock."""

from __future__ import annotations

import asyncio

import pytest

from karta.dataplane.auth import Authenticator
from karta.dataplane.breaker import CircuitBreaker
from karta.dataplane.cache import CachedLookup, KeyCache
from karta.dataplane.control import ControlPlaneClient, ControlPlaneUnavailable
from karta.dataplane.usage import ControlPlaneMetering
from karta.errors import BudgetExhausted, ProjectNotFound, Unauthorized
from tests.unit.control_fakes import Clock, FakeControlPlane, key


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake() -> FakeControlPlane:
    return FakeControlPlane()


@pytest.fixture
def client(fake: FakeControlPlane, clock: Clock) -> ControlPlaneClient:
    breaker = CircuitBreaker(threshold=3, window=2.0, clock=clock)
    return ControlPlaneClient("http://control", "svc", breaker=breaker, transport=fake)


@pytest.fixture
def auth(client: ControlPlaneClient, clock: Clock) -> Authenticator:
    return Authenticator(
        client,
        KeyCache(ttl=5, stale=300, clock=clock),
        CachedLookup(ttl=5, stale=300, max_entries=16, clock=clock),
    )


async def test_a_valid_key_is_validated_once_per_window(auth, fake, clock):
    principal = await auth.api_key(key(1))
    assert principal.organization_id == 1 and principal.scopes == frozenset({"write"})
    assert principal.api_key_id == 10 and principal.budget_ok
    await auth.api_key(key(1))
    assert fake.calls == ["/internal/keys/validate"]
    clock.advance(5)
    await auth.api_key(key(1))
    assert len(fake.calls) == 2


async def test_unknown_and_malformed_keys_are_401_and_refusals_are_remembered(auth, fake):
    for _ in range(3):
        with pytest.raises(Unauthorized):
            await auth.api_key(key(7))
    assert len(fake.calls) == 1
    with pytest.raises(Unauthorized):
        await auth.api_key("not-a-key")
    assert len(fake.calls) == 1, "a malformed key never reaches the control plane"


async def test_revocation_takes_effect_at_the_window_or_at_once_with_a_push(auth, fake, clock):
    await auth.api_key(key(1))
    await auth.api_key(key(2))
    del fake.keys[key(1)], fake.keys[key(2)]
    assert (await auth.api_key(key(1))).organization_id == 1, "cached within the window"
    clock.advance(5)
    with pytest.raises(Unauthorized):
        await auth.api_key(key(1))
    assert auth.evict(2) == 1
    with pytest.raises(Unauthorized):
        await auth.api_key(key(2))


async def test_an_outage_keeps_cached_keys_and_never_grants_access(auth, fake, clock):
    await auth.api_key(key(1))
    clock.advance(60)  # stale, inside the grace
    fake.down = True
    assert (await auth.api_key(key(1))).organization_id == 1
    with pytest.raises(ControlPlaneUnavailable) as unavailable:
        await auth.api_key(key(2))
    assert unavailable.value.status == 503 and unavailable.value.retry_after >= 1
    await auth.api_key(key(1))  # the third consecutive failure opens the breaker
    calls = len(fake.calls)
    with pytest.raises(ControlPlaneUnavailable) as fast:
        await auth.api_key(key(2))
    assert len(fake.calls) == calls, "an open breaker fails fast"
    assert fast.value.retry_after == 2
    clock.advance(240)  # past the stale grace: no access without an answer
    with pytest.raises(ControlPlaneUnavailable):
        await auth.api_key(key(1))
    fake.down = False
    clock.advance(2)
    assert (await auth.api_key(key(2))).organization_id == 2


async def test_concurrent_requests_share_one_validation(auth, fake):
    fake.gate = asyncio.Event()
    waiting = [asyncio.create_task(auth.api_key(key(1))) for _ in range(10)]
    await asyncio.sleep(0.05)
    fake.gate.set()
    assert {p.organization_id for p in await asyncio.gather(*waiting)} == {1}
    assert len(fake.calls) == 1


async def test_an_answer_straddling_an_eviction_is_not_cached(auth, fake):
    fake.gate = asyncio.Event()
    pending = asyncio.create_task(auth.api_key(key(1)))
    await asyncio.sleep(0.05)
    auth.evict(1)
    fake.gate.set()
    await pending
    fake.gate = None
    await auth.api_key(key(1))
    assert len(fake.calls) == 2


async def test_projects_resolve_per_organization_and_are_cached(auth, fake):
    assert (await auth.project(1, "bot")).id == 11
    await auth.project(1, "bot")
    assert fake.calls.count("/internal/projects/bot") == 1
    with pytest.raises(ProjectNotFound):
        await auth.project(2, "bot")


async def test_reservations_refuse_over_budget_and_admit_during_an_outage(client, fake):
    metering = ControlPlaneMetering(client)
    principal = (await client.validate_key(key(1))) or pytest.fail("valid key")
    assert (await metering.reserve(principal) or "").startswith("rsv_")
    fake.budget_ok = False
    with pytest.raises(BudgetExhausted) as refused:
        await metering.reserve(principal)
    assert refused.value.status == 402 and refused.value.extra["reason"] == "tokens"
    fake.down = True
    assert (await metering.reserve(principal) or "").startswith("rsv_")

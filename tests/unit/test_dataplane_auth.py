"""API-key and project resolution and budget checks against the real control plane, on a
fake clock, through a transport that injects faults."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from karta.core.errors import BudgetExhausted, ProjectNotFound, Unauthorized
from karta.core.internal_api import PendingUsage
from karta.dataplane.auth import Authenticator
from karta.dataplane.control.cache import CachedLookup, KeyCache
from karta.dataplane.control.client import ControlPlaneClient, ControlPlaneUnavailable
from karta.dataplane.control.usage import ControlPlaneMetering
from karta.dataplane.runtime.metering import Billing
from karta.testing import FakeClock
from tests.unit.control_plane_double import ControlPlaneDouble, Tenant, key

VALIDATE = "/internal/keys/validate"


BUDGET = "/internal/budget/check"


def pending(*items: PendingUsage) -> Callable[[], Awaitable[list[PendingUsage]]]:
    """What the outbox holds, as the runtime hands it to a budget check."""

    async def read() -> list[PendingUsage]:
        return list(items)

    return read


@pytest.fixture
def client(control: ControlPlaneDouble, clock: FakeClock) -> ControlPlaneClient:
    return control.client(clock)


@pytest.fixture
def auth(client: ControlPlaneClient, clock: FakeClock) -> Authenticator:
    return Authenticator(
        client,
        KeyCache(ttl=5, stale=300, clock=clock),
        CachedLookup(ttl=5, stale=300, max_entries=16, clock=clock),
    )


@pytest.fixture
async def acme(control: ControlPlaneDouble) -> Tenant:
    return await control.signup("acme")


async def test_a_valid_key_is_validated_once_per_window(auth, control, clock, acme):
    secret, key_id = await control.issue_key(acme, "write")
    principal = await auth.api_key(secret)
    assert (principal.organization_id, principal.organization_slug) == (acme.id, acme.slug)
    assert principal.scopes == frozenset({"write"}) and principal.api_key_id == key_id
    assert principal.api_key_prefix == secret[:14] and principal.budget_ok
    await auth.api_key(secret)
    assert control.faults.calls == [VALIDATE]
    clock.advance(5)
    await auth.api_key(secret)
    assert control.faults.calls == [VALIDATE] * 2


async def test_unknown_and_malformed_keys_are_401_and_refusals_are_remembered(auth, control):
    for _ in range(3):
        with pytest.raises(Unauthorized):
            await auth.api_key(key(7))
    assert len(control.faults.calls) == 1
    with pytest.raises(Unauthorized):
        await auth.api_key("not-a-key")
    assert len(control.faults.calls) == 1, "a malformed key never reaches the control plane"


async def test_revocation_takes_effect_at_the_window_or_at_once_with_a_push(
    auth, control, clock, acme
):
    globex = await control.signup("globex")
    (first, first_id), (second, second_id) = [
        await control.issue_key(acme, "write"),
        await control.issue_key(globex, "write"),
    ]
    await auth.api_key(first)
    await auth.api_key(second)
    await control.revoke(acme, first_id)
    await control.revoke(globex, second_id)
    assert (await auth.api_key(first)).organization_id == acme.id, "cached within the window"
    clock.advance(5)
    with pytest.raises(Unauthorized):
        await auth.api_key(first)
    assert auth.evict(globex.id) == 1
    with pytest.raises(Unauthorized):
        await auth.api_key(second)


async def eventually(check: Callable[[], bool]) -> None:
    """Wait for a background refresh's effect (a guard, never a timing assertion)."""
    async with asyncio.timeout(10):
        while not check():  # noqa: ASYNC110
            await asyncio.sleep(0.001)


async def test_a_key_in_steady_use_is_renewed_in_the_background(auth, control, clock, acme):
    secret = acme.admin_key
    await auth.api_key(secret)
    clock.advance(2)
    await auth.api_key(secret)
    assert auth.keys.get(secret).due is False, "not due before half the window"
    clock.advance(1)
    control.faults.hold()
    assert (await auth.api_key(secret)).organization_id == acme.id, "answered at once"
    await control.faults.wait_held()
    await auth.api_key(secret)  # a refresh is running: no second one
    control.faults.release()
    await eventually(lambda: auth.keys.get(secret).due is False)
    assert control.faults.calls == [VALIDATE] * 2
    clock.advance(3)  # 6 s after the first check, 3 s after the refresh: fresh, due again
    control.faults.hold()
    assert (await auth.api_key(secret)).organization_id == acme.id, "answered at once"
    control.faults.release()
    await eventually(lambda: auth.keys.get(secret).due is False)
    assert control.faults.calls == [VALIDATE] * 3


async def test_a_refresh_sees_a_revocation_within_the_window(auth, control, clock, acme):
    secret, key_id = await control.issue_key(acme, "write")
    await auth.api_key(secret)
    await control.revoke(acme, key_id)
    clock.advance(3)
    await auth.api_key(secret)  # still inside the window; asks again in the background
    await eventually(lambda: auth.keys.refused(secret))
    with pytest.raises(Unauthorized):
        await auth.api_key(secret)


async def test_a_failed_refresh_changes_nothing(auth, control, clock, acme):
    secret = acme.admin_key
    await auth.api_key(secret)
    clock.advance(3)
    control.faults.down = True
    assert (await auth.api_key(secret)).organization_id == acme.id
    await eventually(lambda: not auth._refreshes.running)
    control.faults.down = False
    assert auth.keys.get(secret).due, "the answer ages on"
    clock.advance(2.5)  # past the window: the request asks on its own clock
    assert (await auth.api_key(secret)).organization_id == acme.id
    assert control.faults.calls == [VALIDATE] * 3


async def test_an_outage_keeps_cached_keys_and_never_grants_access(auth, control, clock, acme):
    known = acme.admin_key
    unknown, _ = await control.issue_key(acme, "write")
    await auth.api_key(known)
    clock.advance(60)  # stale, inside the grace
    control.faults.down = True
    assert (await auth.api_key(known)).organization_id == acme.id
    with pytest.raises(ControlPlaneUnavailable) as unavailable:
        await auth.api_key(unknown)
    assert unavailable.value.status == 503 and unavailable.value.retry_after >= 1
    await auth.api_key(known)  # the third consecutive failure opens the breaker
    calls = len(control.faults.calls)
    with pytest.raises(ControlPlaneUnavailable) as fast:
        await auth.api_key(unknown)
    assert len(control.faults.calls) == calls, "an open breaker fails fast"
    assert fast.value.retry_after == 2
    clock.advance(240)  # past the stale grace: no access without an answer
    with pytest.raises(ControlPlaneUnavailable):
        await auth.api_key(known)
    control.faults.down = False
    clock.advance(2)
    assert (await auth.api_key(unknown)).organization_id == acme.id


@pytest.mark.parametrize("status", [500, 503])
async def test_a_failing_control_plane_is_an_outage_not_a_refusal(
    auth, control, clock, acme, status
):
    await auth.api_key(acme.admin_key)
    clock.advance(5)
    control.faults.status = status
    assert (await auth.api_key(acme.admin_key)).organization_id == acme.id, "the stale grace"
    with pytest.raises(ControlPlaneUnavailable):
        await auth.api_key(key(7))
    calls = len(control.faults.calls)
    control.faults.status = None
    with pytest.raises(Unauthorized):
        await auth.api_key(key(7))
    assert len(control.faults.calls) == calls + 1, "the 5xx was not remembered as a refusal"


async def test_a_slow_control_plane_times_out_as_unreachable(control, clock, acme):
    client = control.client(clock, timeout=0.05)
    control.faults.delay = 0.01
    assert await client.validate_key(acme.admin_key) is not None, "slow, within the timeout"
    control.faults.delay = 0.2
    for _ in range(3):
        with pytest.raises(ControlPlaneUnavailable):
            await client.validate_key(acme.admin_key)
    assert client.breaker.retry_after() == 2, "timeouts count as network failures"


async def test_a_refused_service_token_never_reads_as_an_invalid_key(control, clock, acme):
    client = control.client(clock, token="not-the-service-token")
    with pytest.raises(ControlPlaneUnavailable) as refused:
        await client.validate_key(acme.admin_key)
    assert refused.value.state == "unauthorized"
    assert client.breaker.retry_after() is None, "an HTTP answer keeps the breaker closed"


async def test_concurrent_requests_share_one_validation(auth, control, acme):
    control.faults.hold()
    waiting = [asyncio.create_task(auth.api_key(acme.admin_key)) for _ in range(10)]
    await control.faults.wait_held()
    control.faults.release()
    assert {p.organization_id for p in await asyncio.gather(*waiting)} == {acme.id}
    assert control.faults.calls == [VALIDATE]


async def test_an_answer_straddling_an_eviction_is_not_cached(auth, control, acme):
    control.faults.hold()
    pending = asyncio.create_task(auth.api_key(acme.admin_key))
    await control.faults.wait_held()
    auth.evict(acme.id)
    control.faults.release()
    await pending
    await auth.api_key(acme.admin_key)
    assert control.faults.calls == [VALIDATE] * 2


async def test_projects_resolve_per_organization_and_are_cached(auth, control, acme):
    globex = await control.signup("globex")
    bot = await control.project(acme, "bot")
    assert (await auth.project(acme.id, "bot")).id == bot
    assert (await auth.project(acme.id, str(bot))).slug == "bot", "by id as well as by slug"
    await auth.project(acme.id, "bot")
    assert control.faults.calls.count("/internal/projects/bot") == 1
    with pytest.raises(ProjectNotFound):
        await auth.project(globex.id, "bot")


async def test_budget_checks_refuse_a_spent_budget_and_admit_during_an_outage(
    client, control, acme
):
    metering = ControlPlaneMetering(client)
    billing = Billing(acme.id, acme.admin_key_id, None)
    await metering.check(billing, pending())
    await control.cap_tokens(acme, 10)
    metering.evict(acme.id)  # the control plane's push
    await metering.check(billing, pending())  # 10 tokens left: nothing is set aside for a turn
    spent = pending(PendingUsage(input_tokens=8, output_tokens=2))
    with pytest.raises(BudgetExhausted) as refused:
        await metering.check(billing, spent)
    assert refused.value.status == 402
    assert refused.value.extra["reason"] == "monthly_token_limit"
    control.faults.down = True
    await metering.check(billing, spent)


async def test_a_payer_without_caps_is_not_asked_again_until_a_push_or_a_few_seconds_pass(
    client, control, clock, acme
):
    metering = ControlPlaneMetering(client, uncapped_ttl=5, clock=clock)
    billing = Billing(acme.id, acme.admin_key_id, None)
    outbox_reads: list[int] = []

    async def outbox() -> list[PendingUsage]:
        outbox_reads.append(1)
        return []

    await metering.check(billing, outbox)
    await metering.check(billing, outbox)
    assert control.faults.calls.count(BUDGET) == 1, "no cap applies: the answer stands"
    assert len(outbox_reads) == 1, "nor is the outbox read for it"
    clock.advance(5)
    await metering.check(billing, outbox)
    assert control.faults.calls.count(BUDGET) == 2, "for a few seconds only"
    await control.cap_tokens(acme, 10)
    assert metering.evict(acme.id) == 1, "a push drops the org's payers"
    await metering.check(billing, outbox)
    await metering.check(billing, outbox)
    assert control.faults.calls.count(BUDGET) == 4, "with a cap, every check asks"
    assert len(outbox_reads) == 4

"""Retries (429/503 and failed connections, honouring `Retry-After`), the typed exceptions, and
events of unknown types — against a scripted loopback server, sync and async."""

from __future__ import annotations

import pytest

from karta.client import (
    APIConnectionError,
    APITimeoutError,
    AsyncKarta,
    HarnessCapacityError,
    Karta,
    RateLimitError,
    ServiceUnavailableError,
    SessionNotFoundError,
    TurnInProgressError,
)
from karta.client.events import InputRequiredEvent, TextEvent, UnknownEvent
from tests.conftest import free_port
from tests.sdk.stub import Answer, Stub

SESSION = {
    "id": "sess_1",
    "object": "session",
    "app": "bot",
    "status": "active",
    "created_at": "2026-01-01T00:00:00+00:00",
    "updated_at": "2026-01-01T00:00:00+00:00",
}
BUSY = {"error": "harness_capacity", "message": "every harness slot is busy"}


def sync_client(url: str, waits: list[float], **options) -> Karta:  # type: ignore[no-untyped-def]
    client = Karta(api_key="kt_live_x", base_url=url, control_url=url, **options)
    client._sleep = waits.append
    return client


def async_client(url: str, waits: list[float], **options) -> AsyncKarta:  # type: ignore[no-untyped-def]
    client = AsyncKarta(api_key="kt_live_x", base_url=url, control_url=url, **options)

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    client._sleep = sleep
    return client


def test_a_429_is_retried_after_the_seconds_retry_after_names():
    waits: list[float] = []
    limited = Answer(429, {"error": "rate_limited", "message": "slow down"}, {"Retry-After": "3"})
    with Stub(limited, Answer(200, SESSION)) as stub, sync_client(stub.url, waits) as client:
        assert client.sessions.get("sess_1").id == "sess_1"
    assert waits == [3.0]
    assert [s.path for s in stub.seen] == ["/v1/sessions/sess_1"] * 2


async def test_503s_back_off_exponentially_with_jitter_async():
    waits: list[float] = []
    busy = Answer(503, BUSY)
    with Stub(busy, busy, Answer(201, SESSION)) as stub:
        async with async_client(stub.url, waits, max_retries=2) as client:
            session = await client.sessions.create(metadata={"a": "b"})
    assert session.status == "active"
    assert len(stub.seen) == 3 and {s.method for s in stub.seen} == {"POST"}
    first, second = waits
    assert 0.375 <= first <= 0.5 and 0.75 <= second <= 1.0


def test_when_retries_are_spent_the_typed_error_carries_status_code_and_body():
    waits: list[float] = []
    busy = Answer(503, BUSY, {"Retry-After": "1"})
    with (
        Stub(busy) as stub,
        sync_client(stub.url, waits, max_retries=1) as client,
        pytest.raises(HarnessCapacityError) as raised,
    ):
        client.sessions.messages.send("sess_1", "hi")
    error = raised.value
    assert isinstance(error, ServiceUnavailableError)
    assert (error.status_code, error.code, error.body) == (503, "harness_capacity", BUSY)
    assert error.retry_after == 1.0 and waits == [1.0] and len(stub.seen) == 2


def test_a_retry_after_beyond_the_cap_is_the_callers_to_handle():
    waits: list[float] = []
    limited = Answer(429, {"error": "rate_limited", "message": "later"}, {"Retry-After": "120"})
    with (
        Stub(limited) as stub,
        sync_client(stub.url, waits) as client,
        pytest.raises(RateLimitError) as raised,
    ):
        client.sessions.list()
    assert raised.value.retry_after == 120.0 and waits == [] and len(stub.seen) == 1


def test_other_statuses_are_not_retried_and_map_to_their_codes():
    waits: list[float] = []
    missing = Answer(404, {"error": "session_not_found", "message": "no such session"})
    busy = Answer(409, {"error": "turn_in_progress", "message": "a turn is running"})
    with Stub(missing, busy) as stub, sync_client(stub.url, waits) as client:
        with pytest.raises(SessionNotFoundError) as raised:
            client.sessions.get("sess_nope")
        assert str(raised.value) == "404 session_not_found: no such session"
        with pytest.raises(TurnInProgressError):
            client.sessions.messages.send("sess_1", "hi")
    assert waits == [] and len(stub.seen) == 2


def test_a_refused_connection_is_retried_then_raised():
    waits: list[float] = []
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with (
        sync_client(url, waits, max_retries=2) as client,
        pytest.raises(APIConnectionError) as raised,
    ):
        client.sessions.create()
    assert not isinstance(raised.value, APITimeoutError) and len(waits) == 2


async def test_a_slow_answer_times_out_and_a_post_is_not_sent_twice():
    waits: list[float] = []
    with Stub(Answer(200, SESSION, delay=2.0)) as stub:
        async with async_client(stub.url, waits, timeout=0.2) as client:
            with pytest.raises(APITimeoutError):
                await client.sessions.messages.send("sess_1", "hi")
    assert waits == [] and len(stub.seen) == 1


def test_unknown_event_types_are_kept_and_known_ones_typed():
    events = [
        {"seq": 1, "type": "text", "turn_id": "t", "data": {"part": {"id": "p", "text": "Hi"}}},
        {"seq": 2, "type": "opencode.todo", "turn_id": "t", "data": {"items": [1, 2]}},
        # a known type whose data this SDK cannot read is kept the same way
        {"seq": 3, "type": "input_required", "turn_id": "t", "data": {"tool": "Bash"}},
    ]
    with Stub(Answer(200, sse=events)) as stub, sync_client(stub.url, []) as client:
        seen = list(client.sessions.events("sess_1", after=0))
    text, todo, odd = seen
    assert isinstance(text, TextEvent) and text.text == "Hi" and text.part_id == "p"
    assert isinstance(todo, UnknownEvent) and todo.type == "opencode.todo"
    assert todo.data == {"items": [1, 2]} and todo.seq == 2
    assert isinstance(odd, UnknownEvent) and not isinstance(odd, InputRequiredEvent)
    assert odd.type == "input_required" and odd.data == {"tool": "Bash"}
    assert stub.seen[0].path == "/v1/sessions/sess_1/events?after=0"

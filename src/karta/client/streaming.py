"""Event streams: `Stream` (for `Karta`) and `AsyncStream` (for `AsyncKarta`) iterate a turn's
typed events as they arrive and fold them, with the server's own fold
(`karta.core.turn_fold.TurnOutcome`), into the final message.

A stream opens on `with`/`async with` (so errors before the first event raise there) or on the
first iteration, and closes when the turn's `done` has arrived. When the connection drops, it
reconnects to the session's events route with `Last-Event-ID` (the last event it saw) and goes
on: nothing is lost and nothing is seen twice. Everything but the transport lives in
`StreamState`, which both share.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any, Self

import httpx

from karta.client.base import AsyncAPIClient, Call, SyncAPIClient, nothing
from karta.client.errors import APIConnectionError
from karta.client.events import StreamEvent, parse_event
from karta.client.models import Message, PendingInput, Usage
from karta.core import events as ev
from karta.core.events import Event
from karta.core.sse import Decoder
from karta.core.turn_fold import TurnOutcome

# Headers the data plane sends on a turn's stream, so a stream that drops before its first
# event still knows where to resume.
TURN_HEADER = "Karta-Turn-Id"
AFTER_HEADER = "Karta-Events-After"


class StreamCall:
    """How to open a stream, and where to resume it: `events_path`, the session's events route.
    `until_done`: the stream is one turn's, finished by its `done` (a clean close before it is
    a drop); otherwise a replay, finished when the server closes it."""

    def __init__(self, call: Call[None], events_path: str, *, until_done: bool) -> None:
        self.call = call
        self.events_path = events_path
        self.until_done = until_done


class StreamState:
    """A stream's progress: the SSE decoder, the fold, the last `seq` seen and the reconnects
    spent since the last event."""

    def __init__(self, spec: StreamCall, max_reconnects: int) -> None:
        self.spec = spec
        self.max_reconnects = max_reconnects
        self.outcome = TurnOutcome()
        self.turn_id: str | None = None
        self.session_id: str | None = None
        self.last_seq: int | None = None
        self.finished = False
        self.connected = False  # an answer came: the request reached the server
        self.reconnects = 0
        self.delta = ""  # the text the latest event added to the turn's text
        self._decoder = Decoder()

    def opened(self, response: httpx.Response) -> None:
        self.connected = True
        self._decoder = Decoder()
        self.turn_id = self.turn_id or response.headers.get(TURN_HEADER)
        after = response.headers.get(AFTER_HEADER)
        if self.last_seq is None and after is not None and after.isdigit():
            self.last_seq = int(after)

    def line(self, line: str) -> StreamEvent | None:
        frame = self._decoder.line(line)
        if frame is None:
            return None
        data = json.loads(frame.data)
        event = Event.from_dict(data)
        if self.spec.until_done and self.turn_id and event.turn_id not in (None, self.turn_id):
            return None  # a resumed replay's other turns
        self.reconnects = 0
        if event.seq is not None:
            self.last_seq = event.seq
        self.turn_id = self.turn_id or event.turn_id
        self.session_id = self.session_id or event.session_id
        self.delta = self.outcome.feed(event)
        if self.spec.until_done and event.type == ev.DONE:
            self.finished = True
        return parse_event(data)

    def next_call(self, error: Exception | None) -> Call[None] | None:
        """After the connection closed (cleanly, or with `error`): None when the stream is
        finished, else the call that resumes it; raises when reconnecting is spent."""
        if self.finished or (error is None and not self.spec.until_done):
            self.finished = True
            return None
        if not self.connected and error is not None:
            raise error  # the request itself never got through: nothing to resume
        if self.reconnects >= self.max_reconnects:
            self.finished = True
            if isinstance(error, APIConnectionError):
                raise error
            raise APIConnectionError(None, error) from error
        self.reconnects += 1
        headers = {"Last-Event-ID": str(self.last_seq)} if self.last_seq is not None else {}
        params = dict(self.spec.call.params or {}) if not self.spec.until_done else {}
        params.pop("after", None)
        return replace(
            self.spec.call,
            method="GET",
            path=self.spec.events_path,
            json=None,
            params=params or None,
            headers=headers,
            parse=nothing,
        )


class _Accumulated:
    """What a stream knows of its turn once the events are in (after iterating, or from
    `until_done()`)."""

    _state: StreamState

    @property
    def turn_id(self) -> str | None:
        return self._state.turn_id

    @property
    def status(self) -> str:
        """`completed`, `failed`, `cancelled`, `paused` (waiting for a decision) or `running`."""
        return self._state.outcome.public_status

    @property
    def usage(self) -> Usage:
        return Usage.model_validate(self._state.outcome.usage)

    @property
    def errors(self) -> list[dict[str, Any]]:
        return list(self._state.outcome.errors)

    @property
    def pending_input(self) -> PendingInput | None:
        pending = self._state.outcome.pending_input
        return PendingInput.model_validate(pending) if pending else None

    def _final_message(self) -> Message:
        outcome = self._state.outcome
        return Message(
            id=outcome.message_id,
            role="assistant",
            text=outcome.text,
            parts=list(outcome.parts.values()),
        )


class Stream(_Accumulated):
    def __init__(self, client: SyncAPIClient, spec: StreamCall) -> None:
        self._client = client
        self._state = StreamState(spec, client.retry.max_retries)
        self._response: httpx.Response | None = None
        self._iterator: Iterator[StreamEvent] | None = None

    def _open(self, call: Call[None]) -> httpx.Response:
        self._response = self._client.send(call, stream=True)
        self._state.opened(self._response)
        return self._response

    def __enter__(self) -> Self:
        if self._response is None and not self._state.finished:
            self._open(self._state.spec.call)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._response is not None:
            self._response.close()
            self._response = None

    def __iter__(self) -> Iterator[StreamEvent]:
        if self._iterator is None:
            self._iterator = self._events()
        return self._iterator

    def _events(self) -> Iterator[StreamEvent]:
        call: Call[None] | None = self._state.spec.call
        while call is not None:
            error: Exception | None = None
            try:
                response = self._response or self._open(call)
                for line in response.iter_lines():
                    event = self._state.line(line)
                    if event is not None:
                        yield event
                    if self._state.finished:
                        break
            except (httpx.TransportError, APIConnectionError) as exc:
                error = exc
            finally:
                self.close()
            call = self._state.next_call(error)
            if call is not None and error is not None:
                self._client._sleep(self._client.retry.backoff(self._state.reconnects - 1))

    @property
    def text_stream(self) -> Iterator[str]:
        """The turn's text as it grows, delta by delta."""
        for _ in self:
            if self._state.delta:
                yield self._state.delta

    def until_done(self) -> Self:
        """Read the stream to its end."""
        for _ in self:
            pass
        return self

    def get_final_message(self) -> Message:
        """The assistant's message: its text and parts (read to the end first)."""
        return self.until_done()._final_message()

    def get_final_text(self) -> str:
        return self.until_done()._state.outcome.text


class AsyncStream(_Accumulated):
    def __init__(self, client: AsyncAPIClient, spec: StreamCall) -> None:
        self._client = client
        self._state = StreamState(spec, client.retry.max_retries)
        self._response: httpx.Response | None = None
        self._iterator: AsyncIterator[StreamEvent] | None = None

    async def _open(self, call: Call[None]) -> httpx.Response:
        self._response = await self._client.send(call, stream=True)
        self._state.opened(self._response)
        return self._response

    async def __aenter__(self) -> Self:
        if self._response is None and not self._state.finished:
            await self._open(self._state.spec.call)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._response is not None:
            await self._response.aclose()
            self._response = None

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        if self._iterator is None:
            self._iterator = self._events()
        return self._iterator

    async def _events(self) -> AsyncIterator[StreamEvent]:
        call: Call[None] | None = self._state.spec.call
        while call is not None:
            error: Exception | None = None
            try:
                response = self._response or await self._open(call)
                async for line in response.aiter_lines():
                    event = self._state.line(line)
                    if event is not None:
                        yield event
                    if self._state.finished:
                        break
            except (httpx.TransportError, APIConnectionError) as exc:
                error = exc
            finally:
                await self.close()
            call = self._state.next_call(error)
            if call is not None and error is not None:
                await self._client._sleep(self._client.retry.backoff(self._state.reconnects - 1))

    @property
    async def text_stream(self) -> AsyncIterator[str]:
        async for _ in self:
            if self._state.delta:
                yield self._state.delta

    async def until_done(self) -> Self:
        async for _ in self:
            pass
        return self

    async def get_final_message(self) -> Message:
        return (await self.until_done())._final_message()

    async def get_final_text(self) -> str:
        return (await self.until_done())._state.outcome.text

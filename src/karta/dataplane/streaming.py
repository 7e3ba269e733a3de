"""Projections of a session's event log onto HTTP: SSE streams and accumulated JSON."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from fastapi.responses import StreamingResponse

from karta import events as ev
from karta.events import Event
from karta.runtime.service import Runtime

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
Stop = Callable[[Event], bool]


def until_done(turn_id: str) -> Stop:
    return lambda e: e.type == ev.DONE and e.turn_id == turn_id


def until_pause(turn_id: str) -> Stop:
    return lambda e: e.type in ev.PAUSING_TYPES and e.turn_id == turn_id


def at_seq(seq: int) -> Stop:
    return lambda e: (e.seq or 0) >= seq


async def collect(runtime: Runtime, session_id: str, after: int, stop: Stop) -> list[Event]:
    """Events after `after` up to and including the first one `stop` accepts."""
    out: list[Event] = []
    async for event in runtime.events.subscribe(session_id, after, runtime.settings.keepalive):
        if event is None:
            continue
        out.append(event)
        if stop(event):
            break
    return out


async def sse_frames(
    runtime: Runtime, session_id: str, after: int, stop: Stop | None
) -> AsyncIterator[bytes]:
    async for event in runtime.events.subscribe(session_id, after, runtime.settings.keepalive):
        if event is None:
            yield ev.KEEPALIVE_FRAME
            continue
        yield ev.encode_sse(event)
        if stop is not None and stop(event):
            return


def sse_response(
    runtime: Runtime, session_id: str, after: int, stop: Stop | None
) -> StreamingResponse:
    return StreamingResponse(
        sse_frames(runtime, session_id, after, stop),
        media_type="text/event-stream",
        headers=SSE_HEADERS,
    )


def empty_sse() -> StreamingResponse:
    async def nothing() -> AsyncIterator[bytes]:
        return
        yield b""  # pragma: no cover - makes this an async generator

    return StreamingResponse(nothing(), media_type="text/event-stream", headers=SSE_HEADERS)

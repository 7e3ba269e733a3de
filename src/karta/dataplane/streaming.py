"""The one streaming path: a session handle's events after a cursor, through a projection,
as SSE frames (or collected, for unary answers).

Every surface streams through `frames`: the native events route (projection `NATIVE`), the
OpenAI and Anthropic adapters and the Managed-Agents log (their own projections).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Protocol

from fastapi.responses import StreamingResponse

from karta.core import events as ev
from karta.core import sse
from karta.core.events import Event
from karta.dataplane.runtime.handle import SessionHandle

Stop = Callable[[Event], bool]


class Encodable(Protocol):
    def encode(self) -> bytes: ...


class Projection(Protocol):
    def start(self) -> Sequence[Encodable]:
        """Frames written before the first event."""
        ...

    def feed(self, event: Event) -> Sequence[Encodable]: ...


class Native:
    """Karta's own events, one frame each, `seq` as the frame id; each event is encoded once
    for all the streams it goes to."""

    def start(self) -> Sequence[Encodable]:
        return []

    def feed(self, event: Event) -> Sequence[Encodable]:
        return [sse.EventFrame(event)]


def until_done(turn_id: str) -> Stop:
    return lambda e: e.type == ev.DONE and e.turn_id == turn_id


def until_pause(turn_id: str) -> Stop:
    """The turn ended, or paused for a decision (what a unary caller waits for)."""
    return lambda e: e.type in ev.PAUSING_TYPES and e.turn_id == turn_id


def at_seq(seq: int) -> Stop:
    return lambda e: (e.seq or 0) >= seq


async def frames(
    handle: SessionHandle, after: int, projection: Projection, stop: Stop | None
) -> AsyncIterator[bytes]:
    """Encoded frames of the events after `after` (replay, then the live tail), with
    keep-alives, until `stop` accepts an event (None: until the client leaves). The events
    that became readable together go out in one write: a stream that fell behind catches up
    at once, and a thousand streams of one session cost a thousand writes per batch, not per
    event."""
    if opening := b"".join(frame.encode() for frame in projection.start()):
        yield opening
    async for batch in handle.batches(after):
        if not batch:
            yield sse.KEEPALIVE
            continue
        end = next((i for i, e in enumerate(batch) if stop is not None and stop(e)), None)
        shown = batch if end is None else batch[: end + 1]
        if chunk := b"".join(f.encode() for event in shown for f in projection.feed(event)):
            yield chunk
        if end is not None:
            return


async def collect(handle: SessionHandle, after: int, stop: Stop) -> list[Event]:
    """Events after `after` up to and including the first one `stop` accepts."""
    out: list[Event] = []
    async for event in handle.subscribe(after):
        if event is None:
            continue
        out.append(event)
        if stop(event):
            break
    return out


def response(
    body: AsyncIterator[bytes], headers: dict[str, str] | None = None
) -> StreamingResponse:
    return StreamingResponse(
        body, media_type=sse.MEDIA_TYPE, headers={**sse.HEADERS, **(headers or {})}
    )


async def replay(
    handle: SessionHandle, after: int, follow: bool, projection: Projection
) -> StreamingResponse:
    """The events route of any surface: replay after the cursor, then the running turn's live
    tail (or, with `follow`, every later turn's); with nothing running, the replay ends at the
    log's end."""
    if follow:
        stop: Stop | None = None
    elif (turn := await handle.running_turn()) is not None:
        stop = until_done(turn)
    else:
        last = await handle.last_seq()
        if after >= last:
            return response(_nothing())
        stop = at_seq(last)
    return response(frames(handle, after, projection, stop))


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover - makes this an async generator

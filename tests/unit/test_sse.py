"""SSE framing: one encoder and one decoder for every stream Karta writes or reads."""

import pytest

from karta.core import events as ev
from karta.core import sse
from karta.core.errors import BadRequest
from karta.core.events import Event


def test_a_native_event_round_trips_with_its_seq_as_the_frame_id():
    event = Event(
        "text",
        {"part": {"id": "p1", "type": "text", "text": "héllo\nworld"}, "delta": True},
        session_id="sess_1",
        seq=7,
    )
    frame = sse.encode_event(event).decode()
    assert frame.startswith("id: 7\nevent: text\ndata: {")
    assert frame.endswith("\n\n")
    (decoded,) = sse.iter_events((frame + sse.KEEPALIVE.decode()).split("\n"))
    assert decoded == event


def test_bare_data_frames_and_literal_strings():
    assert sse.Frame(None, "[DONE]").encode() == b"data: [DONE]\n\n"
    assert sse.Frame("x", {"a": 1}, "id-1").encode() == b'id: id-1\nevent: x\ndata: {"a":1}\n\n'


def test_the_decoder_joins_multi_line_data_skips_comments_and_flushes_the_tail():
    lines = [": hello", "event: e", "id: 3", "data: a", "data: b", "", "data: tail"]
    frames = list(sse.iter_frames(lines))
    assert [(f.event, f.data, f.id) for f in frames] == [("e", "a\nb", "3"), (None, "tail", None)]


async def test_the_async_decoder_reads_the_same_frames():
    async def lines():
        for line in ["data: one", "", "event: two", "data: 2", ""]:
            yield line

    frames = [f async for f in sse.aiter_frames(lines())]
    assert [(f.event, f.data) for f in frames] == [(None, "one"), ("two", "2")]


@pytest.mark.parametrize(
    ("after", "header", "want"), [(5, "9", 5), (None, "9", 9), (None, None, 0)]
)
def test_the_cursor_prefers_after_then_last_event_id(after, header, want):
    assert sse.cursor(after, header) == want


@pytest.mark.parametrize("header", ["-1", "x", "1.5"])
def test_a_bad_last_event_id_is_a_400(header):
    with pytest.raises(BadRequest):
        sse.cursor(None, header)


def test_keepalive_is_a_comment():
    assert list(sse.iter_frames(sse.KEEPALIVE.decode().split("\n"))) == []
    assert ev.DONE == "done"

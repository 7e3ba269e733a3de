"""`Karta` against a real server (both planes over HTTP, a `FakeHarness` playing the turns):
sessions, typed streams and their final message, approvals, interrupts, the transcript, the
project family, session tokens, typed errors, a dropped stream resumed, management."""

from __future__ import annotations

import asyncio
import io

import httpx
import pytest

from karta.client import (
    AuthenticationError,
    BudgetExhaustedError,
    Karta,
    NotFoundError,
    NoTurnRunningError,
    PermissionDeniedError,
    SessionNotFoundError,
    TurnInProgressError,
    UnprocessableEntityError,
)
from karta.client.events import (
    DoneEvent,
    InputRequiredEvent,
    ReasoningEvent,
    TextEvent,
    ToolUseEvent,
)
from karta.core.events import usage_of
from karta.releases.archive import pack
from karta.testing.fake_harness import Ask, Reason, Say, UseTool, Wait
from tests.conftest import SUPPORT_BOT
from tests.sdk.conftest import FakeServer


def test_sessions_are_created_read_listed_and_deleted(karta: Karta):
    made = [karta.sessions.create(metadata={"suite": "crud", "n": str(n)}) for n in range(3)]
    assert made[0].status == "active" and made[0].current_agent == "triage"
    assert karta.sessions.get(made[0].id).metadata == {"suite": "crud", "n": "0"}
    page = karta.sessions.list(limit=1, metadata={"suite": "crud"})
    assert len(page.data) == 1 and page.has_more
    assert [s.id for s in page] == [s.id for s in reversed(made)]  # every page, newest first
    karta.sessions.delete(made[0].id)
    assert karta.sessions.get(made[0].id).status == "ended"
    with pytest.raises(SessionNotFoundError) as missing:
        karta.sessions.get("sess_nope")
    assert (missing.value.status_code, missing.value.code) == (404, "session_not_found")
    assert missing.value.body["error"] == "session_not_found"


def test_a_stream_types_its_events_and_folds_the_final_message(karta: Karta, served: FakeServer):
    session = karta.sessions.create()
    served.fake.enqueue(
        Reason("thinking it over"),
        Say("Sunrise is light.", chunk=5),
        UseTool("Read", {"file_path": "menu.md"}, output="roasts"),
        Say("Anything else?"),
        usage=usage_of(12, 7),
        session=session.id,
    )
    deltas = []
    with karta.sessions.messages.stream(session.id, "Which roast?", thinking=True) as stream:
        events = []
        for event in stream:
            events.append(event)
    kinds = [type(e) for e in events]
    assert kinds[0] is ReasoningEvent and kinds[-1] is DoneEvent
    assert ToolUseEvent in kinds and TextEvent in kinds
    tool = [e for e in events if isinstance(e, ToolUseEvent)][-1]
    assert (tool.tool, tool.status, tool.output) == ("Read", "completed", "roasts")
    deltas = [e.text for e in events if isinstance(e, TextEvent)]
    assert "".join(deltas) == "Sunrise is light.Anything else?"
    assert stream.get_final_text() == "Sunrise is light.\n\nAnything else?"  # the server's fold
    message = stream.get_final_message()
    assert message.role == "assistant" and message.text == stream.get_final_text()
    assert [p["type"] for p in message.parts] == ["reasoning", "text", "tool", "text"]
    assert stream.status == "completed" and stream.usage.total_tokens == 19
    assert [e.seq for e in events] == sorted({e.seq for e in events})
    unary = karta.sessions.messages.send(session.id, "And a dark one?")
    assert unary.status == "completed" and unary.text == "And a dark one?"
    assert [m.role for m in unary.messages] == ["user", "assistant"]


def test_text_stream_yields_the_deltas_of_the_turns_text(karta: Karta, served: FakeServer):
    session = karta.sessions.create()
    served.fake.enqueue(Say("one two", chunk=3), Say("three"), session=session.id)
    stream = karta.sessions.messages.stream(session.id, "count")
    assert "".join(stream.text_stream) == "one two\n\nthree" == stream.get_final_text()


def test_an_approval_is_decided_while_the_stream_stays_open(karta: Karta, served: FakeServer):
    session = karta.sessions.create()
    served.fake.enqueue(
        Ask("Bash", {"command": "ls"}, output="a.txt"), Say("done"), session=session.id
    )
    asked = []
    with karta.sessions.messages.stream(session.id, "list files") as stream:
        for event in stream:
            if isinstance(event, InputRequiredEvent):
                asked.append(event)
                assert stream.status == "paused" and stream.pending_input is not None
                assert stream.pending_input.tool == "Bash"
                decided = karta.sessions.inputs.decide(session.id, event.request_id, "approve_once")
                assert decided.session.id == session.id
    assert len(asked) == 1 and asked[0].data.tool == "Bash"
    assert stream.status == "completed" and stream.get_final_text() == "done"
    served.fake.enqueue(Ask("Bash", {"command": "rm x"}), session=session.id)
    paused = karta.sessions.messages.send(session.id, "remove it")
    assert paused.status == "paused" and paused.pending_input is not None
    denied = karta.sessions.inputs.decide(session.id, paused.pending_input.request_id, "deny")
    assert denied.events[-1]["type"] == "done"


def test_an_interrupt_ends_the_streamed_turn_cancelled(karta: Karta, served: FakeServer):
    session = karta.sessions.create()
    served.fake.enqueue(Say("working"), Wait(), session=session.id)
    with karta.sessions.messages.stream(session.id, "long job") as stream:
        for event in stream:
            if isinstance(event, TextEvent):
                with pytest.raises(TurnInProgressError):
                    karta.sessions.messages.send(session.id, "are you there?")
                stopped = karta.sessions.interrupt(session.id)
                assert stopped.status == "cancelled" and stopped.turn_id == stream.turn_id
    assert stream.status == "cancelled"
    with pytest.raises(NoTurnRunningError):
        karta.sessions.interrupt(session.id)


def test_the_transcript_pages_through_the_conversation(karta: Karta):
    session = karta.sessions.create()
    for text in ("first", "second"):
        karta.sessions.messages.send(session.id, text)
    page = karta.sessions.messages.list(session.id, limit=1)
    assert len(page.data) == 1 and page.has_more
    assert [(m.role, m.text) for m in page] == [
        ("user", "first"),
        ("assistant", "first"),
        ("user", "second"),
        ("assistant", "second"),
    ]
    with pytest.raises(UnprocessableEntityError) as bad:
        karta.sessions.messages.list(session.id, after="msg_nope")
    assert bad.value.code == "invalid_cursor"


def test_the_project_family_and_session_tokens(karta: Karta, served: FakeServer):
    project = karta.projects("support-bot")
    assert project.app.get().name == "support-bot"
    session = project.sessions.create(metadata={"via": "project"})
    assert session.project is not None and session.project.ref == "support-bot"
    assert session.id in [s.id for s in project.sessions.list(metadata={"via": "project"})]
    token = karta.session_tokens.create("support-bot", sub="user-7", ttl_seconds=300)
    assert token.sub == "user-7" and token.project.slug == "support-bot"
    scoped = project.session_tokens.create(sub="user-8")
    assert scoped.sub == "user-8"
    with Karta(api_key=token.token, base_url=served.url, control_url=served.control_url) as user:
        mine = user.projects("support-bot").sessions.create()
        assert mine.metadata["user_id"] == "user-7"
        reply = user.projects("support-bot").sessions.messages.send(mine.id, "hello")
        # The end user speaks as themself, alone in the session: the harness reads it as it is.
        assert reply.text == "hello"
        assert [s.id for s in user.projects("support-bot").sessions.list()] == [mine.id]
        with pytest.raises(AuthenticationError):
            user.sessions.create()  # a session token is no key for the flat routes
        with pytest.raises(NotFoundError):
            user.projects("support-bot").sessions.get(session.id)  # another user's


def test_credentials_and_scopes_fail_with_their_types(karta: Karta, served: FakeServer):
    with (
        Karta(api_key="kt_live_" + "0" * 32, base_url=served.url) as bad,
        pytest.raises(AuthenticationError) as refused,
    ):
        bad.sessions.list()
    assert refused.value.status_code == 401 and refused.value.code == "unauthorized"
    reader = karta.keys.create("reader", scopes=["read"])
    with (
        Karta(api_key=reader.secret, base_url=served.url) as read_only,
        pytest.raises(PermissionDeniedError) as denied,
    ):
        read_only.sessions.create()
    assert denied.value.body["scope"] == "write"
    capped = karta.keys.create("capped", scopes=["write"], monthly_token_limit=0)
    with Karta(api_key=capped.secret, base_url=served.url) as spent:
        session = spent.sessions.create()
        with pytest.raises(BudgetExhaustedError) as exhausted:
            spent.sessions.messages.send(session.id, "hi")
    assert exhausted.value.status_code == 402 and exhausted.value.reason
    with pytest.raises(UnprocessableEntityError) as invalid:
        karta.sessions.list(limit=0)
    assert invalid.value.code == "validation_error"


class DropOnce(httpx.HTTPTransport):
    """Cuts the first streamed turn's connection after `keep` lines (0: before any event)."""

    def __init__(self, keep: int) -> None:
        super().__init__()
        self.keep = keep
        self.dropped = False
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        response = super().handle_request(request)
        if self.dropped or request.method != "POST" or not request.url.path.endswith("/messages"):
            return response
        self.dropped = True
        return httpx.Response(
            response.status_code, headers=response.headers, stream=Cut(response, self.keep)
        )


class Cut(httpx.SyncByteStream):
    def __init__(self, response: httpx.Response, keep: int) -> None:
        self.response, self.keep = response, keep

    def __iter__(self):  # type: ignore[no-untyped-def]
        lines = 0
        for chunk in self.response.stream:
            for line in chunk.splitlines(keepends=True):
                if lines >= self.keep:
                    self.response.close()
                    raise httpx.ReadError("the network went away")
                lines += 1
                yield line


@pytest.mark.parametrize("keep", [0, 9])  # lines: before any event, in the third frame
def test_a_dropped_stream_resumes_with_last_event_id(served: FakeServer, keep: int):
    transport = DropOnce(keep)
    gate = asyncio.Event()
    with served.client(http_client=httpx.Client(transport=transport)) as client:
        session = client.sessions.create()
        served.fake.enqueue(
            Say("before the drop, ", chunk=4), Wait(until=gate), Say("after it"), session=session.id
        )
        with client.sessions.messages.stream(session.id, "go") as stream:
            seqs = []
            for event in stream:
                seqs.append(event.seq)
                if len(seqs) == 1:
                    served.set_soon(gate)  # the turn goes on; its connection drops regardless
    assert transport.dropped
    resumed = [r for r in transport.requests if r.url.path.endswith("/events")]
    assert len(resumed) == 1 and resumed[0].method == "GET"
    assert resumed[0].headers["last-event-id"].isdigit()
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # nothing lost, nothing twice
    assert stream.get_final_text() == "before the drop, \n\nafter it"
    assert stream.status == "completed"


def test_keys_budget_usage_and_releases(karta: Karta):
    made = karta.keys.create("ci", scopes=["write"], monthly_cost_limit_cents=500)
    assert made.secret.startswith("kt_live_") and made.api_key.scopes == ["write"]
    assert made.api_key.id in [k.id for k in karta.keys.list()]
    assert (
        karta.keys.update(made.api_key.id, monthly_cost_limit_cents=None).monthly_cost_limit_cents
        is None
    )
    assert karta.keys.revoke(made.api_key.id).revoked_at is not None
    budget = karta.budget.set(monthly_token_limit=1_000_000, monthly_cost_limit_cents=None)
    assert budget.monthly_token_limit == 1_000_000 and budget.state == "ok"
    assert karta.budget.get().monthly_token_limit == 1_000_000
    karta.budget.set(monthly_token_limit=None, monthly_cost_limit_cents=None)
    usage = karta.usage.get()
    assert usage.period.start <= usage.period.end and usage.totals.turns >= 0
    archive = io.BytesIO()
    pack(SUPPORT_BOT, archive)
    releases = karta.projects("support-bot").releases
    published = releases.publish(archive.getvalue(), activate=False)
    assert published.created and published.status == "ready" and not published.active
    assert releases.get(published.name).digest == published.digest
    assert published.version in [r.version for r in releases.list()]
    assert releases.activate(published.version).active
    rows = list(karta.audit.list())
    assert any(row.action.startswith("release") for row in rows)

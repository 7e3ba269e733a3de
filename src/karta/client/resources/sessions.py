"""The session API on the data plane, on the flat routes (`/v1/…`) or a project's
(`/v1/projects/{ref}/…`): the app, sessions, their messages (turns and the transcript), their
inputs (approvals) and their event log."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any, Literal

from karta.client.base import Call, Page, drop_none, list_call, nothing
from karta.client.models import (
    AppInfo,
    Decided,
    Interrupted,
    Session,
    TranscriptMessage,
    Turn,
)
from karta.client.resource import (
    Resource,
    astreamed,
    awaiting,
    blocking,
    segment,
    streamed,
)
from karta.client.streaming import StreamCall

DecisionName = Literal["approve_once", "approve_session", "deny"]


class AppCalls(Resource):
    def _get(self) -> Call[AppInfo]:
        """The app a new session runs (on a project's routes: its active release): its name,
        harness, agents and skills."""
        return Call("GET", f"{self._root}/app", AppInfo.model_validate)


class App(AppCalls):
    get = blocking(AppCalls._get)


class AsyncApp(AppCalls):
    get = awaiting(AppCalls._get)


class _SessionPaths(Resource):
    def _session(self, session_id: str, tail: str = "") -> str:
        return f"{self._root}/sessions/{segment(session_id)}{tail}"


class SessionCalls(_SessionPaths):
    def _create(
        self, *, metadata: Mapping[str, Any] | None = None, session_id: str | None = None
    ) -> Call[Session]:
        """A new session (with `session_id`: that existing one, resumed)."""
        body = drop_none(metadata=dict(metadata or {}), session_id=session_id)
        return Call("POST", f"{self._root}/sessions", Session.model_validate, json=body)

    def _get(self, session_id: str) -> Call[Session]:
        return Call("GET", self._session(session_id), Session.model_validate)

    def _list(
        self,
        *,
        limit: int | None = None,
        after: str | None = None,
        status: Literal["active", "ended"] | None = None,
        active: bool | None = None,
        agent: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Call[Page[Session]]:
        """The caller's sessions, newest first: a page, which iterates every later page too.
        `active=True` keeps sessions with a turn running or awaiting a decision; `metadata`
        keeps sessions with those string values."""
        params: dict[str, Any] = drop_none(
            limit=limit,
            after=after,
            status=status,
            agent=agent,
            active=None if active is None else str(active).lower(),
        )
        params.update({f"metadata.{k}": v for k, v in (metadata or {}).items()})
        return list_call(f"{self._root}/sessions", Session.model_validate, params)

    def _delete(self, session_id: str) -> Call[None]:
        """End the session: its harness stops and its workspace is deleted."""
        return Call("DELETE", self._session(session_id), nothing)

    def _interrupt(self, session_id: str) -> Call[Interrupted]:
        """Stop the running turn (it ends `cancelled`); `NoTurnRunningError` when none runs."""
        return Call("POST", self._session(session_id, "/interrupt"), Interrupted.model_validate)

    def _events(
        self, session_id: str, *, after: int | None = None, follow: bool = False
    ) -> StreamCall:
        """The session's events after `after` (a seq), then the running turn's live tail (with
        `follow`, every later turn's): a stream that ends when the server closes it."""
        path = self._session(session_id, "/events")
        params = drop_none(after=after, follow=str(follow).lower() if follow else None)
        call = Call("GET", path, nothing, params=params or None)
        return StreamCall(call, path, until_done=False)


class MessageCalls(_SessionPaths):
    @staticmethod
    def _body(text: str, stream: bool, options: dict[str, Any]) -> dict[str, Any]:
        return {"text": text, "stream": stream, **drop_none(**options)}

    def _send(
        self,
        session_id: str,
        text: str,
        *,
        agent: str | None = None,
        participant_name: str | None = None,
        participant_type: Literal["human", "ai"] | None = None,
        thinking: bool | None = None,
    ) -> Call[Turn]:
        """One turn, answered when it ends or pauses for a decision (`status` `paused`).
        `agent` routes the turn to that agent (a handoff)."""
        options = {
            "agent": agent,
            "participant_name": participant_name,
            "participant_type": participant_type,
            "thinking": thinking,
        }
        body = self._body(text, False, options)
        return Call("POST", self._session(session_id, "/messages"), Turn.model_validate, json=body)

    def _stream(
        self,
        session_id: str,
        text: str,
        *,
        agent: str | None = None,
        participant_name: str | None = None,
        participant_type: Literal["human", "ai"] | None = None,
        thinking: bool | None = None,
    ) -> StreamCall:
        """One turn as its typed events arrive; the stream ends after the turn's `done` and
        accumulates the final message (`get_final_message()`, `get_final_text()`)."""
        options = {
            "agent": agent,
            "participant_name": participant_name,
            "participant_type": participant_type,
            "thinking": thinking,
        }
        body = self._body(text, True, options)
        call = Call("POST", self._session(session_id, "/messages"), nothing, json=body)
        return StreamCall(call, self._session(session_id, "/events"), until_done=True)

    def _list(
        self, session_id: str, *, limit: int | None = None, after: str | None = None
    ) -> Call[Page[TranscriptMessage]]:
        """The conversation, oldest first, from the harness's own transcript: a page, which
        iterates every later page too."""
        params = drop_none(limit=limit, after=after)
        path = self._session(session_id, "/messages")
        return list_call(path, TranscriptMessage.model_validate, params)


class InputCalls(_SessionPaths):
    def _decide(self, session_id: str, request_id: str, decision: DecisionName) -> Call[Decided]:
        """Answer a pending approval; the answer holds the turn's events that followed (up to
        its end or the next decision). A stream of the turn that is open gets them too."""
        path = self._session(session_id, f"/inputs/{segment(request_id)}")
        return Call("PUT", path, Decided.model_validate, json={"decision": decision})


class Messages(MessageCalls):
    send = blocking(MessageCalls._send)
    stream = streamed(MessageCalls._stream)
    list = blocking(MessageCalls._list)


class AsyncMessages(MessageCalls):
    send = awaiting(MessageCalls._send)
    stream = astreamed(MessageCalls._stream)
    list = awaiting(MessageCalls._list)


class Inputs(InputCalls):
    decide = blocking(InputCalls._decide)


class AsyncInputs(InputCalls):
    decide = awaiting(InputCalls._decide)


class Sessions(SessionCalls):
    create = blocking(SessionCalls._create)
    get = blocking(SessionCalls._get)
    list = blocking(SessionCalls._list)
    delete = blocking(SessionCalls._delete)
    interrupt = blocking(SessionCalls._interrupt)
    events = streamed(SessionCalls._events)

    @cached_property
    def messages(self) -> Messages:
        return Messages(self._client, self._root)

    @cached_property
    def inputs(self) -> Inputs:
        return Inputs(self._client, self._root)


class AsyncSessions(SessionCalls):
    create = awaiting(SessionCalls._create)
    get = awaiting(SessionCalls._get)
    list = awaiting(SessionCalls._list)
    delete = awaiting(SessionCalls._delete)
    interrupt = awaiting(SessionCalls._interrupt)
    events = astreamed(SessionCalls._events)

    @cached_property
    def messages(self) -> AsyncMessages:
        return AsyncMessages(self._client, self._root)

    @cached_property
    def inputs(self) -> AsyncInputs:
        return AsyncInputs(self._client, self._root)

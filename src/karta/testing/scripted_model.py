"""A scripted model server speaking the Anthropic Messages API, for deterministic offline tests.

It runs in a background thread with its own event loop, so sync tests, async tests and servers
can all use it. Replies come from FIFO scripts (global, or per harness session via the
`X-Claude-Code-Session-Id` header); when a script runs dry a default responder answers with
plain text, never a tool call, so a looping harness always terminates.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from karta.testing import anthropic_wire, openai_wire
from karta.testing.blocks import ModelRequest, Reply, text
from karta.testing.loopback import LoopbackServer

Script = Reply | list[dict[str, Any]] | Callable[[ModelRequest], "Reply | list[dict[str, Any]]"]
COMPACTION_SUMMARY = "<summary>The conversation so far, summarised by the scripted model.</summary>"
CALL_LIMIT_TEXT = "(scripted model: call limit reached)"
TITLE = "Scripted session"
# The name the built-in scripted model (and `karta mock-model`) answers as, so its turns are
# metered under it: the price book prices it at zero.
BUILTIN_MODEL_NAME = "karta-scripted"


def echo(request: ModelRequest) -> Reply:
    return Reply([text(f"(scripted model) You said: {request.prompt}")])


def _as_reply(item: Reply | list[dict[str, Any]]) -> Reply:
    return item if isinstance(item, Reply) else Reply(list(item))


class ScriptedModel:
    def __init__(
        self, max_calls: int = 500, chunk_size: int = 24, model_name: str | None = None
    ) -> None:
        """`model_name`: the model every reply says it came from; None answers as whatever
        model the request named (a test then sees the real model's name, and price)."""
        self.max_calls = max_calls
        self.chunk_size = chunk_size
        self.model_name = model_name
        self.default: Callable[[ModelRequest], Reply | list[dict[str, Any]]] = echo
        self.url = ""
        self._lock = threading.Lock()
        self._global: deque[Script] = deque()
        self._sessions: dict[str, deque[Script]] = {}
        self._requests: list[ModelRequest] = []
        self._server: LoopbackServer | None = None

    # --- scripting ----------------------------------------------------------------------------

    def enqueue(self, reply: Script, *, session: str | None = None) -> None:
        with self._lock:
            queue = self._global if session is None else self._sessions.setdefault(session, deque())
            queue.append(reply)

    def enqueue_text(self, value: str, *, session: str | None = None, **reply: Any) -> None:
        self.enqueue(Reply([text(value)], **reply), session=session)

    def pending(self) -> int:
        with self._lock:
            return len(self._global) + sum(len(q) for q in self._sessions.values())

    @property
    def requests(self) -> list[ModelRequest]:
        with self._lock:
            return list(self._requests)

    def requests_for(self, session_id: str) -> list[ModelRequest]:
        return [r for r in self.requests if r.session_id == session_id]

    @property
    def calls_exhausted(self) -> bool:
        with self._lock:
            return len(self._requests) > self.max_calls

    def reset(self) -> None:
        with self._lock:
            self._global.clear()
            self._sessions.clear()
            self._requests.clear()
            self.default = echo

    def next_reply(self, request: ModelRequest) -> Reply:
        with self._lock:
            self._requests.append(request)
            over_limit = len(self._requests) > self.max_calls
            item: Script | None = None
            if not over_limit and request.kind in ("prompt", "tool_result"):
                queue = self._sessions.get(request.session_id or "")
                if queue:
                    item = queue.popleft()
                elif self._global:
                    item = self._global.popleft()
        if over_limit:
            return Reply([text(CALL_LIMIT_TEXT)])
        if request.kind == "compaction":
            return Reply([text(COMPACTION_SUMMARY)])
        if request.kind == "task_notification":
            return Reply([text("(scripted model) noted.")])
        if request.kind == "title":
            return Reply([text(TITLE)])
        if item is None:
            item = self.default
        return _as_reply(item(request) if callable(item) else item)

    # --- HTTP ---------------------------------------------------------------------------------

    async def _answer(self, request: Request, wire: str) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse(
                {
                    "type": "error",
                    "error": {"type": "invalid_request_error", "message": "body must be JSON"},
                },
                400,
            )
        seen = ModelRequest(
            body, {k.lower(): v for k, v in request.headers.items()}, request.url.path, wire
        )
        reply = self.next_reply(seen)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        # Both codecs offer message(), stream() and error_body() for their API.
        codec = openai_wire if wire == "openai" else anthropic_wire
        if reply.status is not None:
            return JSONResponse(codec.error_body(reply), status_code=reply.status)
        model = self.model_name or str(body.get("model", "scripted"))
        if not body.get("stream"):
            return JSONResponse(codec.message(reply, model))
        return StreamingResponse(
            codec.stream(reply, model, self.chunk_size), media_type="text/event-stream"
        )

    async def _messages(self, request: Request) -> Response:
        return await self._answer(request, "anthropic")

    async def _chat_completions(self, request: Request) -> Response:
        return await self._answer(request, "openai")

    async def _count_tokens(self, request: Request) -> Response:
        return JSONResponse({"input_tokens": 10})

    async def _not_found(self, request: Request) -> Response:
        with self._lock:
            self._requests.append(ModelRequest({}, dict(request.headers), request.url.path))
        return JSONResponse(
            {
                "type": "error",
                "error": {"type": "not_found_error", "message": f"no route {request.url.path}"},
            },
            404,
        )

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route(
                    "/{prefix:path}/v1/messages/count_tokens", self._count_tokens, methods=["POST"]
                ),
                Route("/v1/messages/count_tokens", self._count_tokens, methods=["POST"]),
                Route("/{prefix:path}/v1/messages", self._messages, methods=["POST"]),
                Route("/v1/messages", self._messages, methods=["POST"]),
                Route(
                    "/{prefix:path}/v1/chat/completions", self._chat_completions, methods=["POST"]
                ),
                Route("/v1/chat/completions", self._chat_completions, methods=["POST"]),
                Route(
                    "/{rest:path}",
                    self._not_found,
                    methods=["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH"],
                ),
            ]
        )

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._server = LoopbackServer(self.app(), "scripted-model", host, port)
        self.url = self._server.url
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
        self._server = None

    def __enter__(self) -> ScriptedModel:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_forever(port: int, host: str = "127.0.0.1") -> None:
    """`karta mock-model`: the echoing scripted model in the foreground until Ctrl-C."""
    model = ScriptedModel(model_name=BUILTIN_MODEL_NAME)
    uvicorn.run(model.app(), host=host, port=port, log_level="warning")

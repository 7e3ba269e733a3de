"""The OpenCode adapter: one `opencode serve` per live Karta session, driven over its HTTP API
and event stream (never a process per turn). The server runs in the session's workspace with
private HOME/XDG folders, fully offline (`opencode_server.py` starts it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import shutil
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from karta.app.loader import OPENCODE
from karta.core import events as ev
from karta.core.events import Event, done_event
from karta.core.sse import aiter_frames
from karta.dataplane.harness.base import (
    HarnessFailure,
    HarnessGone,
    SessionSpec,
    ToolRequest,
    TurnContext,
    Verdict,
)
from karta.dataplane.harness.opencode_events import OpenCodeEventMapper
from karta.dataplane.harness.opencode_server import (
    PROVIDER,
    START_TIMEOUT,
    drain,
    find_binary,
    listening_url,
    model_of,
    server_env,
)
from karta.dataplane.harness.opencode_transcript import messages_from
from karta.dataplane.harness.processes import kill_descendants, kill_tree
from karta.dataplane.harness.transcript import Message
from karta.dataplane.harness.turns import NOBODY_WAITS, RunningTurn

log = logging.getLogger(__name__)

_END = object()  # the event stream ended: the server is gone
# How long priming a pooled server may take (a second or two of CPU, at the pool's low weight).
PRIME_TIMEOUT = 30.0


@dataclass
class _Running(RunningTurn):
    # Whether OpenCode has stored the turn's message: events before it are a previous turn's.
    started: bool = False


class OpenCodeSession:
    def __init__(
        self,
        spec: SessionSpec,
        process: asyncio.subprocess.Process,
        url: str,
        password: str | None = None,
    ) -> None:
        self.agent = spec.agent
        self.harness_session_id = spec.harness_session_id
        self._spec = spec
        self._process = process
        # Sandboxed, the server listens in the sandbox's own network namespace: Karta reaches
        # it through a UNIX socket only the server can open. Either way it wants a password.
        socket = spec.sandbox.harness_socket if spec.sandbox is not None else None
        reach: dict[str, Any] = {"auth": ("opencode", password)} if password else {}
        if socket is not None:
            reach["transport"] = httpx.AsyncHTTPTransport(uds=str(socket))
        self._http = httpx.AsyncClient(
            base_url=url, timeout=30, params={"directory": str(spec.workspace)}, **reach
        )
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._listener: asyncio.Task[None] | None = None
        self._replies: set[asyncio.Task[None]] = set()  # permission answers under way
        self._running: _Running | None = None
        self._prompts: set[str] = set()  # ids of the user messages seen on the event stream
        self._children: set[str] = set()  # sessions OpenCode started under this one
        self._closed = False
        self._drain = asyncio.create_task(drain(process))

    @property
    def running(self) -> bool:
        """Whether this session's server is up and serving."""
        return not self._closed and self._process.returncode is None

    async def start(self) -> None:
        connected = asyncio.Event()
        self._listener = asyncio.create_task(self._listen(connected))
        waiter = asyncio.create_task(connected.wait())
        finished, _ = await asyncio.wait(
            {waiter, self._listener}, timeout=START_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
        )
        if waiter not in finished:
            waiter.cancel()
            raise HarnessFailure("OpenCode's event stream did not connect")
        if self._spec.resume:
            found = await self._http.get(f"/session/{self.harness_session_id}")
            if found.status_code == 200:
                return
            log.warning("OpenCode session %s is gone; starting a new one", self.harness_session_id)
        created = await self._http.post("/session", json={})
        created.raise_for_status()
        self.harness_session_id = created.json()["id"]

    async def prime(self) -> None:
        """Have OpenCode do ahead what it does lazily on its first prompt, through calls that
        only read: load its provider catalogue (most of it), build the agent's tools for its
        model, scan for skills, and list and search the workspace. A first turn that took
        about two seconds then takes well under one. A failure here is the first turn's to
        report."""
        reads: list[tuple[str, dict[str, str]]] = [
            ("/config/providers", {}),
            ("/experimental/tool", {"provider": PROVIDER, "model": model_of(self._spec)}),
            ("/skill", {}),
            ("/file", {"path": "."}),
            ("/find/file", {"query": "."}),
        ]
        try:
            async with asyncio.timeout(PRIME_TIMEOUT):
                for path, params in reads:
                    (await self._http.get(path, params=params)).raise_for_status()
        except (httpx.HTTPError, TimeoutError) as exc:
            log.info("priming OpenCode failed: %r", exc)

    async def _listen(self, connected: asyncio.Event) -> None:
        try:
            async with self._http.stream("GET", "/event", timeout=None) as response:
                response.raise_for_status()
                async for frame in aiter_frames(response.aiter_lines()):
                    try:
                        event = json.loads(frame.data)
                    except ValueError:
                        log.warning("OpenCode sent an unreadable event: %.200s", frame.data)
                        continue
                    if isinstance(event, dict):
                        self._dispatch(event, connected)
        except httpx.HTTPError as exc:
            log.info("OpenCode event stream ended: %s", exc)
        finally:
            self._queue.put_nowait(_END)

    def _dispatch(self, event: dict[str, Any], connected: asyncio.Event) -> None:
        kind, props = event.get("type", ""), event.get("properties") or {}
        session = props.get("sessionID")
        if kind == "server.connected":
            connected.set()
        elif kind in ("session.created", "session.updated"):
            self._adopt_child(props.get("info") or {})
        elif kind == "permission.asked" and self._in_family(session):
            self._ask(props)  # at once: the turn's queue may be waiting on its consumer
        elif session == self.harness_session_id:
            self._queue.put_nowait((kind, props))

    def _adopt_child(self, info: dict[str, Any]) -> None:
        """A session OpenCode started under this one (a subagent of the `task` tool, or one of
        its own subagents): its permission requests are this session's turn's to decide. Its
        other events stay OpenCode's: the task's result reaches this session as a tool part."""
        if info.get("parentID") and self._in_family(info["parentID"]):
            self._children.add(str(info.get("id")))

    def _in_family(self, session_id: str | None) -> bool:
        return session_id == self.harness_session_id or session_id in self._children

    def _ask(self, props: dict[str, Any]) -> None:
        """Decide a permission request by the turn running as it arrives (never a later one),
        and always answer OpenCode: an unanswered request keeps its session busy."""
        task = asyncio.create_task(self._decide(self._running, props))
        self._replies.add(task)
        task.add_done_callback(self._replies.discard)

    async def _decide(self, running: _Running | None, props: dict[str, Any]) -> None:
        request = ToolRequest(
            props.get("permission", "tool"),
            dict(props.get("metadata") or {}),
            (props.get("tool") or {}).get("callID"),
            {"patterns": props.get("patterns", [])},
        )
        answer = NOBODY_WAITS if running is None else await running.decide(request)
        # A bare reject stops OpenCode's turn; with a message it tells the model and goes on.
        body: dict[str, Any] = {"reply": "reject"}
        if answer.verdict is Verdict.ALLOW:
            body = {"reply": "once"}
        elif answer is not NOBODY_WAITS and running is not None and not running.stopping:
            body["message"] = answer.message or "The user denied this."
        try:
            await self._http.post(f"/permission/{props['id']}/reply", json=body)
        except httpx.HTTPError as exc:
            log.info("could not answer OpenCode's permission request: %s", exc)

    def _is_new_prompt(self, kind: str, props: dict[str, Any]) -> bool:
        """Whether the event stores a user message not seen before: the running turn's own.
        OpenCode stores it before it accepts `prompt_async`, ahead of all the turn's events."""
        info = props.get("info") or {}
        if kind != "message.updated" or info.get("role") != "user":
            return False
        prompt_id = str(info.get("id"))
        new = prompt_id not in self._prompts
        self._prompts.add(prompt_id)
        return new

    async def turn(self, ctx: TurnContext) -> AsyncIterator[Event]:
        mapper = OpenCodeEventMapper(thinking=ctx.thinking)
        body: dict[str, Any] = {"parts": [{"type": "text", "text": ctx.text}]}
        if not self.agent.is_builtin:
            body["agent"] = self.agent.name  # OpenCode switches agents per message natively
        while not self._queue.empty():  # stragglers of the previous turn
            item = self._queue.get_nowait()
            if item is _END:
                raise HarnessGone("the OpenCode server had stopped")
            self._is_new_prompt(*item)
        running = self._running = _Running(ctx)
        try:
            await self._send(running, body)
            async for event in self._events(running, mapper):
                # A stopped turn ends `cancelled`; OpenCode's "aborted" error is that stop.
                if not (running.stopping and event.type == ev.ERROR):
                    yield event
        finally:
            self._running = None
            await running.end()
        status = "cancelled" if running.stopping else "failed" if mapper.errors else "completed"
        yield done_event(mapper.usage(), status=status)

    async def _send(self, running: _Running, body: dict[str, Any]) -> None:
        try:
            sent = await self._http.post(
                f"/session/{self.harness_session_id}/prompt_async", json=body
            )
        except httpx.TransportError as exc:
            raise HarnessGone(f"the OpenCode server is unreachable: {exc}") from exc
        if sent.is_error:
            raise HarnessFailure(f"OpenCode refused the message: {sent.status_code} {sent.text}")
        if running.message_sent():
            await self._abort()

    async def _events(self, running: _Running, mapper: OpenCodeEventMapper) -> AsyncIterator[Event]:
        """The turn's events, until OpenCode is idle again (or refused the message)."""
        while True:
            item = await self._queue.get()
            if item is _END:
                raise HarnessFailure(
                    f"the OpenCode server stopped (exit {self._process.returncode})"
                )
            kind, props = item
            new_prompt = self._is_new_prompt(kind, props)
            if not running.started:
                running.started = new_prompt
                if kind == "session.error":
                    # No message stored, yet an error: OpenCode refused this one (an unknown
                    # agent, say), and no `session.idle` follows.
                    for event in mapper.map(kind, props):
                        yield event
                    return
                if not running.started:
                    continue
            if kind == "session.idle":
                return
            for event in mapper.map(kind, props):
                yield event

    async def interrupt(self) -> None:
        running = self._running
        if running is not None and running.stop_now():
            await self._abort()

    async def _abort(self) -> None:
        await self._http.post(f"/session/{self.harness_session_id}/abort")

    async def messages(self, session_id: str) -> list[Message]:
        """The conversation as OpenCode stored it."""
        try:
            response = await self._http.get(f"/session/{session_id}/message")
        except httpx.HTTPError as exc:
            raise HarnessFailure(f"OpenCode did not list the messages: {exc}") from exc
        if response.status_code == 404:
            return []  # OpenCode no longer has it
        if response.is_error:
            raise HarnessFailure(
                f"OpenCode did not list the messages: {response.status_code} {response.text}"
            )
        return messages_from(response.json())

    async def close(self, *, force: bool = False) -> None:
        self._closed = True
        for task in (self._listener, self._drain, *self._replies):
            if task is not None:
                task.cancel()
        if self._process.returncode is None:
            if force:
                kill_tree(self._process.pid)
            else:
                # The server exits on SIGTERM but leaves the shells of running tools behind.
                kill_descendants(self._process.pid)
                self._process.terminate()
            try:
                await asyncio.wait_for(self._process.wait(), 5)
            except TimeoutError:
                self._process.kill()
                await self._process.wait()
        await self._http.aclose()


class OpenCodeHarness:
    kind = OPENCODE

    def __init__(self, home: Path, *, binary: str | None = None) -> None:
        self.home = home
        self.binary = binary or find_binary()
        # The open sessions by state folder, for reading a transcript from the server already
        # running on it; a session nobody holds any more drops out by itself.
        self._live: weakref.WeakValueDictionary[Path, OpenCodeSession] = (
            weakref.WeakValueDictionary()
        )

    def available(self) -> bool:
        return Path(self.binary).is_file()

    def has_transcript(self, spec: SessionSpec) -> bool:
        """OpenCode names its sessions itself (`ses_…`); Karta stores that id after the first
        open, and OpenCode's database lives in the session's own state folder."""
        return spec.harness_session_id.startswith("ses_")

    async def _serve(self, spec: SessionSpec) -> OpenCodeSession:
        """A server on the session's own state (its database), not yet on a conversation."""
        env = await asyncio.to_thread(server_env, spec)
        password = secrets.token_urlsafe(24)
        env["OPENCODE_SERVER_PASSWORD"] = password
        command, port = self.binary, 0
        if spec.sandbox is not None:
            rg = shutil.which("rg", path=env["PATH"])
            readonly = [Path(rg)] if rg else []
            launcher = spec.sandbox.launcher(self.binary, env, readonly=readonly)
            command, port = str(launcher), spec.sandbox.harness_port
        try:
            process = await asyncio.create_subprocess_exec(
                command,
                "serve",
                "--port",
                str(port),
                "--hostname",
                "127.0.0.1",
                cwd=spec.workspace,
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise HarnessFailure(f"cannot start OpenCode ({self.binary}): {exc}") from exc
        try:
            url = await listening_url(process)
        except BaseException:  # failed, or cancelled (a server stopping): nothing may stay
            kill_tree(process.pid)
            await process.wait()
            raise
        return OpenCodeSession(spec, process, url, password)

    async def open(self, spec: SessionSpec) -> OpenCodeSession:
        session = await self._serve(spec)
        try:
            await session.start()
            if spec.pooled:
                await session.prime()
        except BaseException as exc:
            await session.close(force=True)
            if isinstance(exc, Exception):
                raise HarnessFailure(f"OpenCode did not start a session: {exc}") from exc
            raise
        self._live[spec.state_dir] = session
        return session

    async def transcript(self, spec: SessionSpec) -> list[Message]:
        """Read from the session's running server, or else from one started for the read on the
        session's state (the conversation is in its database) and stopped right after."""
        if not self.has_transcript(spec):
            return []
        live = self._live.get(spec.state_dir)
        if live is not None and live.running:
            with contextlib.suppress(HarnessFailure):  # closing under us: read anew below
                return await live.messages(spec.harness_session_id)
        reader = await self._serve(spec)
        try:
            return await reader.messages(spec.harness_session_id)
        finally:
            await reader.close()

"""Resources: each API route family is written once, as methods that build a `Call` (or a
`StreamCall`), and served twice by binding those builders to a transport — `blocking` and
`streamed` for `Karta`, `awaiting` and `astreamed` for `AsyncKarta`:

    class SessionCalls(Resource):
        def _get(self, session_id: str) -> Call[Session]: ...

    class Sessions(SessionCalls):
        get = blocking(SessionCalls._get)        # -> Session

    class AsyncSessions(SessionCalls):
        get = awaiting(SessionCalls._get)        # -> Awaitable[Session]

The bound methods keep the builder's signature and docstring.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar, cast
from urllib.parse import quote

from karta.client.base import AsyncAPIClient, BaseClient, Call, SyncAPIClient
from karta.client.streaming import AsyncStream, Stream, StreamCall

P = ParamSpec("P")
T = TypeVar("T")
R = TypeVar("R", bound="Resource")


def segment(value: str | int) -> str:
    """A path segment, escaped (ids come from callers)."""
    return quote(str(value), safe="")


class Resource:
    """A route family under `root` (`/v1`, or `/v1/projects/{ref}` for a project's); `org`
    names the organization for the control plane's calls (a user in several)."""

    def __init__(self, client: BaseClient, root: str = "/v1", org: str | None = None) -> None:
        self._client = client
        self._root = root
        self._org = org

    def _control_headers(self) -> dict[str, str]:
        return {"Karta-Org": self._org} if self._org else {}


def blocking(build: Callable[Concatenate[R, P], Call[T]]) -> Callable[Concatenate[R, P], T]:
    @functools.wraps(build)
    def run(self: R, *args: P.args, **kwargs: P.kwargs) -> T:
        return cast(SyncAPIClient, self._client).execute(build(self, *args, **kwargs))

    return run


def awaiting(
    build: Callable[Concatenate[R, P], Call[T]],
) -> Callable[Concatenate[R, P], Coroutine[Any, Any, T]]:
    @functools.wraps(build)
    async def run(self: R, *args: P.args, **kwargs: P.kwargs) -> T:
        return await cast(AsyncAPIClient, self._client).execute(build(self, *args, **kwargs))

    return run


def streamed(build: Callable[Concatenate[R, P], StreamCall]) -> Callable[Concatenate[R, P], Stream]:
    @functools.wraps(build)
    def run(self: R, *args: P.args, **kwargs: P.kwargs) -> Stream:
        return Stream(cast(SyncAPIClient, self._client), build(self, *args, **kwargs))

    return run


def astreamed(
    build: Callable[Concatenate[R, P], StreamCall],
) -> Callable[Concatenate[R, P], AsyncStream]:
    @functools.wraps(build)
    def run(self: R, *args: P.args, **kwargs: P.kwargs) -> AsyncStream:
        return AsyncStream(cast(AsyncAPIClient, self._client), build(self, *args, **kwargs))

    return run

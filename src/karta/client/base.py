"""The one base of `Karta` and `AsyncKarta`: a request as data (`Call`), how it becomes an HTTP
request (URL, credentials, headers), when it is tried again, how an error answer becomes an
exception and how a good one becomes a model. The two clients differ only in the transport call
and the sleep between attempts (`SyncAPIClient`, `AsyncAPIClient`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Generic, Literal, Self, TypeVar

import httpx

from karta import __version__
from karta.client.config import ClientConfig
from karta.client.errors import APIConnectionError, APITimeoutError, status_error
from karta.client.retries import RetryPolicy

T = TypeVar("T")
M = TypeVar("M")
Plane = Literal["data", "control"]
# A unary turn answers when the turn ends; a stream waits across approvals (keep-alives come
# every 15 s), so only connecting is quick.
DEFAULT_TIMEOUT = httpx.Timeout(600.0, connect=10.0)


def drop_none(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


@dataclass(frozen=True)
class Call(Generic[T]):
    """One API request and how to read its answer: `parse` turns the JSON body (None for an
    empty one) into the result."""

    method: str
    path: str
    parse: Callable[[Any], T]
    plane: Plane = "data"
    params: Mapping[str, Any] | None = None
    json: Any = None
    content: bytes | Iterable[bytes] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float | None = None

    @property
    def replayable(self) -> bool:
        """An upload read from a stream cannot be sent twice."""
        return self.content is None or isinstance(self.content, bytes)


def nothing(_: Any) -> None:
    return None


class Page(Generic[M]):
    """One page of a list, and (iterated) every item from it to the last page: `for item in
    page` with `Karta`, `async for item in page` with `AsyncKarta`."""

    def __init__(
        self, data: list[M], body: dict[str, Any], next_call: Call[Page[M]] | None
    ) -> None:
        self.data = data
        self.body = body  # the page's other fields, as sent
        self.has_more = next_call is not None
        self._next = next_call
        self._client: BaseClient | None = None

    def next_page(self) -> Page[M] | None:
        """The page after this one (`Karta` only), or None on the last."""
        if self._next is None:
            return None
        if not isinstance(self._client, SyncAPIClient):
            raise TypeError("a page of AsyncKarta: use `await page.anext_page()`")
        return self._client.execute(self._next)

    async def anext_page(self) -> Page[M] | None:
        if self._next is None:
            return None
        if not isinstance(self._client, AsyncAPIClient):
            raise TypeError("a page of Karta: use `page.next_page()`")
        return await self._client.execute(self._next)

    def __iter__(self) -> Iterator[M]:
        page: Page[M] | None = self
        while page is not None:
            yield from page.data
            page = page.next_page()

    async def __aiter__(self) -> AsyncIterator[M]:
        page: Page[M] | None = self
        while page is not None:
            for item in page.data:
                yield item
            page = await page.anext_page()


def pager(
    call: Call[Any], item: Callable[[Any], M], cursor: str = "next_cursor"
) -> Callable[[Any], Page[M]]:
    """`parse` for a list route: the page's items, and the call for the next page (the same
    call, `after` the page's `cursor`) while there is one."""

    def parse(body: Any) -> Page[M]:
        after = body.get(cursor)
        following = None
        if after is not None and body.get("has_more", True):
            params = {**(call.params or {}), "after": after}
            following = replace(call, params=params, parse=pager(call, item, cursor))
        rest = {k: v for k, v in body.items() if k != "data"}
        return Page([item(x) for x in body["data"]], rest, following)

    return parse


def list_call(
    path: str,
    item: Callable[[Any], M],
    params: Mapping[str, Any] | None = None,
    *,
    plane: Plane = "data",
    headers: Mapping[str, str] | None = None,
    cursor: str = "next_cursor",
) -> Call[Page[M]]:
    """A GET of a list route, answered as a `Page` that knows how to fetch the next one."""
    first: Call[Any] = Call("GET", path, nothing, plane=plane, params=params, headers=headers or {})
    return Call(
        "GET", path, pager(first, item, cursor), plane=plane, params=params, headers=headers or {}
    )


class BaseClient:
    def __init__(
        self,
        config: ClientConfig,
        *,
        timeout: float | httpx.Timeout,
        max_retries: int,
    ) -> None:
        self.config = config
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self.retry = RetryPolicy(max_retries=max_retries)

    @property
    def base_url(self) -> str:
        return self.config.base_url

    @property
    def control_url(self) -> str:
        return self.config.control_url

    def _headers(self, plane: Plane) -> dict[str, str]:
        config = self.config
        key = config.api_key if plane == "data" else config.control_key
        headers = {"User-Agent": f"karta-python/{__version__}", "Accept": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        if plane == "control" and config.org:
            headers["Karta-Org"] = config.org
        return headers

    def _build(self, http: httpx.Client | httpx.AsyncClient, call: Call[Any]) -> httpx.Request:
        base = self.config.base_url if call.plane == "data" else self.config.control_url
        timeout = self.timeout if call.timeout is None else httpx.Timeout(call.timeout)
        return http.build_request(
            call.method,
            base + call.path,
            params=call.params,
            json=call.json,
            content=call.content,
            headers={**self._headers(call.plane), **call.headers},
            timeout=timeout,
        )

    def _wait_after_answer(self, attempt: int, call: Call[Any], answer: httpx.Response) -> float:
        """The wait before trying an error answer's request again; raises its exception when
        it is not retried."""
        wait = None
        if call.replayable and self.retry.retries_status(answer.status_code):
            wait = self.retry.wait(attempt, answer)
        if wait is None:
            raise status_error(answer)
        return wait

    def _wait_after_error(
        self, attempt: int, call: Call[Any], request: httpx.Request, error: httpx.TransportError
    ) -> float:
        """The same for a request that got no answer: APITimeoutError or APIConnectionError."""
        wait = None
        if call.replayable and self.retry.retries_error(error, call.method):
            wait = self.retry.wait(attempt, None)
        if wait is None:
            kind = (
                APITimeoutError if isinstance(error, httpx.TimeoutException) else APIConnectionError
            )
            raise kind(request, error) from error
        return wait

    def _result(self, call: Call[T], response: httpx.Response) -> T:
        body = response.json() if response.content else None
        result = call.parse(body)
        if isinstance(result, Page):
            result._client = self
        return result


class SyncAPIClient(BaseClient):
    def __init__(
        self,
        config: ClientConfig,
        *,
        timeout: float | httpx.Timeout,
        max_retries: int,
        http_client: httpx.Client | None = None,
    ) -> None:
        super().__init__(config, timeout=timeout, max_retries=max_retries)
        self._http = http_client or httpx.Client()
        self._sleep: Callable[[float], None] = time.sleep

    def send(self, call: Call[Any], *, stream: bool = False) -> httpx.Response:
        """The call's successful answer (retried as the policy says), else its exception; with
        `stream`, the answer's body is left to read."""
        attempt = 0
        while True:
            request = self._build(self._http, call)
            try:
                response = self._http.send(request, stream=stream)
            except httpx.TransportError as error:
                wait = self._wait_after_error(attempt, call, request, error)
            else:
                if response.is_success:
                    return response
                response.read()
                response.close()
                wait = self._wait_after_answer(attempt, call, response)
            self._sleep(wait)
            attempt += 1

    def execute(self, call: Call[T]) -> T:
        return self._result(call, self.send(call))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncAPIClient(BaseClient):
    def __init__(
        self,
        config: ClientConfig,
        *,
        timeout: float | httpx.Timeout,
        max_retries: int,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(config, timeout=timeout, max_retries=max_retries)
        self._http = http_client or httpx.AsyncClient()
        self._sleep: Callable[[float], Any] = asyncio.sleep

    async def send(self, call: Call[Any], *, stream: bool = False) -> httpx.Response:
        attempt = 0
        while True:
            request = self._build(self._http, call)
            try:
                response = await self._http.send(request, stream=stream)
            except httpx.TransportError as error:
                wait = self._wait_after_error(attempt, call, request, error)
            else:
                if response.is_success:
                    return response
                await response.aread()
                await response.aclose()
                wait = self._wait_after_answer(attempt, call, response)
            await self._sleep(wait)
            attempt += 1

    async def execute(self, call: Call[T]) -> T:
        return self._result(call, await self.send(call))

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

"""The request limits both planes install: oversized bodies (declared or streamed) get 413 before
they are read, too many or too large headers 431, and JSON that cannot be written back 422 —
all in Karta's JSON error shape, before any route runs."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from karta.app import load_app
from karta.core import http_errors, http_limits
from karta.core.http_limits import Limits, Route
from karta.core.json_text import unwritable
from karta.dataplane.app import create_app
from karta.dataplane.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
LIMITS = Limits(max_body_bytes=1_000, max_header_bytes=2_000, max_headers=20)


def _app() -> tuple[FastAPI, list[Any]]:
    api = FastAPI()
    seen: list[Any] = []

    @api.post("/echo")
    async def echo(body: dict[str, Any]) -> dict[str, Any]:
        seen.append(body)
        return body

    @api.post("/upload")
    async def upload(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    http_errors.install(api)
    http_limits.install(api, LIMITS, self_bounded=[Route("POST", re.compile("/upload"))])
    return api, seen


def _client(api: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://t")


async def test_a_body_within_the_limit_reaches_the_route_whole() -> None:
    api, seen = _app()
    async with _client(api) as c:
        r = await c.post("/echo", json={"text": "x" * 900})
    assert r.status_code == 200 and r.json() == {"text": "x" * 900} == seen[0]


async def test_a_declared_oversized_body_is_refused_unread() -> None:
    api, seen = _app()
    async with _client(api) as c:
        r = await c.post("/echo", json={"text": "x" * 1_000})
    assert r.status_code == 413 and r.headers["connection"] == "close"
    assert r.json() == {
        "error": "request_too_large",
        "message": "the request body is larger than 1000 bytes",
    }
    assert seen == []


async def test_a_streamed_body_is_cut_off_at_the_limit() -> None:
    api, seen = _app()
    pulled = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(1_000):  # 100 kB in all, with no Content-Length
            pulled += 1
            yield b"x" * 100

    async with _client(api) as c:
        r = await c.post("/echo", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"] == "request_too_large"
    assert pulled <= 12 and seen == []  # read only until it went past 1,000 bytes


async def test_a_self_bounded_route_streams_past_the_limit() -> None:
    api, _ = _app()
    async with _client(api) as c:
        r = await c.post("/upload", content=b"x" * 5_000)
    assert r.status_code == 200 and r.json() == {"size": 5_000}


@pytest.mark.parametrize(
    "headers",
    [
        {f"x-h{n}": "v" for n in range(25)},  # too many
        {"x-big": "v" * 2_100},  # too large in all
    ],
)
async def test_too_many_or_too_large_headers_get_431(headers: dict[str, str]) -> None:
    api, seen = _app()
    async with _client(api) as c:
        r = await c.post("/echo", json={}, headers=headers)
    assert r.status_code == 431 and r.json()["error"] == "headers_too_large"
    assert "at most 20 headers of 2000 bytes" in r.json()["message"] and seen == []


@pytest.mark.parametrize(
    ("raw", "field", "problem"),
    [
        (rb'{"metadata": {"a": "\ud800"}}', "metadata.a", "unpaired UTF-16 surrogate"),
        (rb'{"items": [1, "ok", "tail \udfff"]}', "items.2", "unpaired UTF-16 surrogate"),
        (rb'{"tags": {"\udc00": 1}}', "tags", "a key holds an unpaired"),
        (rb'{"score": NaN}', "score", "not a finite number"),
        (rb'{"score": -Infinity}', "score", "not a finite number"),
        (rb'{"score": 1e999}', "score", "not a finite number"),
    ],
)
async def test_json_that_cannot_be_written_back_is_a_422_naming_the_field(
    raw: bytes, field: str, problem: str
) -> None:
    api, seen = _app()
    async with _client(api) as c:
        r = await c.post("/echo", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] == "validation_error" and body["message"].startswith(f"{field}: ")
    assert body["fields"][0]["field"] == field and problem in body["fields"][0]["message"]
    assert seen == []


def test_writable_json_and_non_json_pass_the_text_check() -> None:
    assert unwritable(rb'{"emoji": "\ud83d\ude00", "n": 1e300, "big": 123456789}') is None
    assert unwritable(rb'{"escaped": "\\ud800"}') is None  # a backslash, then "ud800"
    assert unwritable(b'{"truncated": "\\ud800') is None  # not JSON: the route says so
    assert unwritable(b"[" * 100_000) is None


async def test_the_data_plane_installs_the_limits(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, open_auth=True)
    api = create_app(load_app(ROOT / "examples" / "support-bot"), settings, {})
    async with _client(api) as c:  # no lifespan: the answers come before any route
        surrogate = await c.post(
            "/v1/sessions",
            content=rb'{"metadata": {"a": "\ud800"}}',
            headers={"content-type": "application/json"},
        )
        large = await c.post("/v1/sessions", json={"metadata": {"a": "x" * (8 << 20)}})
    assert surrogate.status_code == 422 and surrogate.json()["fields"][0]["field"] == "metadata.a"
    assert large.status_code == 413 and large.json()["error"] == "request_too_large"

"""The model proxy against a local fake provider (the scripted model): it authenticates the
per-session credential, injects the platform's key, forwards only model calls, streams the
answer through while metering it, limits each organization, and never logs keys or prompts."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx
import pytest

from karta.dataplane.sandbox.meter import CallUsage
from karta.dataplane.sandbox.proxy import Admit, ModelProxy, OrgLimits, Refusal, Usage
from karta.dataplane.sandbox.upstreams import platform_upstreams
from karta.testing import Reply, ScriptedModel, text

PLATFORM_KEY = "sk-platform-test-key"
PROMPT = "a prompt nobody may log"


@pytest.fixture
async def proxy(scripted_model: ScriptedModel) -> AsyncIterator[ModelProxy]:
    env = {
        "ANTHROPIC_BASE_URL": scripted_model.url,
        "ANTHROPIC_API_KEY": PLATFORM_KEY,
        "OPENAI_BASE_URL": f"{scripted_model.url}/v1",
        "OPENAI_API_KEY": "sk-openai-platform",
    }
    proxy = ModelProxy(env, OrgLimits(concurrency=4, per_minute=5))
    await proxy.start(tcp=True)
    yield proxy
    await proxy.stop()


def messages(stream: bool = True) -> dict:
    return {
        "model": "claude-test",
        "max_tokens": 100,
        "stream": stream,
        "messages": [{"role": "user", "content": PROMPT}],
    }


async def call(proxy: ModelProxy, path: str, headers: dict, body: dict) -> httpx.Response:
    async with httpx.AsyncClient(base_url=proxy.url or "") as client:
        return await client.post(path, json=body, headers=headers)


async def test_a_call_without_a_valid_credential_is_refused(proxy, scripted_model):
    grant = proxy.grant("sess_1", 1, 2)
    for headers in ({}, {"x-api-key": "kps_forged"}, {"x-api-key": PLATFORM_KEY}):
        answer = await call(proxy, "/v1/messages", headers, messages())
        assert answer.status_code == 401
        assert answer.json()["error"]["type"] == "authentication_error"
    proxy.revoke(grant)
    answer = await call(proxy, "/v1/messages", {"x-api-key": grant.credential}, messages())
    assert answer.status_code == 401
    assert scripted_model.requests == []


def metered_into(seen: list[CallUsage]) -> Admit:
    """Admit every call; its usage goes to `seen`."""

    async def admit() -> Refusal | Usage:
        return seen.append

    return admit


async def test_only_model_calls_are_forwarded(proxy, scripted_model):
    grant = proxy.grant("sess_1", 1, 2)
    auth = {"x-api-key": grant.credential}
    async with httpx.AsyncClient(base_url=proxy.url or "") as client:
        for method, path in (
            ("GET", "/v1/models"),
            ("POST", "/v1/messages/count_tokens"),
            ("POST", "/api/hello"),
            ("GET", "/v1/messages"),
            ("POST", "/v1/files"),
        ):
            answer = await client.request(method, path, headers=auth)
            assert answer.status_code in (404, 405), (method, path)
    assert scripted_model.requests == []


async def test_the_platform_key_replaces_the_credential_and_the_stream_is_metered(
    proxy, scripted_model
):
    seen: list[CallUsage] = []
    grant = proxy.grant("sess_1", 1, 2, admit=metered_into(seen))
    scripted_model.enqueue(Reply([text("hello")], usage={"input_tokens": 11, "output_tokens": 3}))
    headers = {"x-api-key": grant.credential, "anthropic-version": "2023-06-01"}
    headers["x-claude-code-session-id"] = "routing-kept"
    answer = await call(proxy, "/v1/messages?beta=true", headers, messages())
    assert answer.status_code == 200 and answer.headers["content-type"].startswith(
        "text/event-stream"
    )
    assert "hello" in answer.text and "message_stop" in answer.text
    upstream = scripted_model.requests[-1]
    assert upstream.headers["x-api-key"] == PLATFORM_KEY
    assert grant.credential not in str(upstream.headers)
    assert upstream.headers["x-claude-code-session-id"] == "routing-kept"
    assert upstream.headers["anthropic-version"] == "2023-06-01"
    assert [u.as_dict() for u in seen] == [
        {
            "model": "claude-test",
            "provider": "anthropic",
            "key_owner": "platform",
            "input_tokens": 11,
            "output_tokens": 3,
            "cache_read_tokens": 0,
            "cache_write_tokens": 0,
        }
    ]


async def test_openai_chat_is_forwarded_with_usage_asked_for(proxy, scripted_model):
    seen: list[CallUsage] = []
    grant = proxy.grant("sess_1", 1, 2, admit=metered_into(seen))
    scripted_model.enqueue(Reply([text("hi")], usage={"input_tokens": 4, "output_tokens": 2}))
    body = {"model": "gpt-test", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    answer = await call(
        proxy, "/v1/chat/completions", {"authorization": f"Bearer {grant.credential}"}, body
    )
    assert answer.status_code == 200 and "[DONE]" in answer.text
    upstream = scripted_model.requests[-1]
    assert upstream.headers["authorization"] == "Bearer sk-openai-platform"
    assert upstream.body["stream_options"] == {"include_usage": True}
    assert (seen[0].input_tokens, seen[0].output_tokens, seen[0].wire) == (4, 2, "openai")


async def test_each_organization_is_rate_limited_on_its_own(proxy, scripted_model):
    busy = proxy.grant("sess_1", 1, None)
    other = proxy.grant("sess_2", 2, None)
    statuses = []
    for _ in range(7):
        answer = await call(proxy, "/v1/messages", {"x-api-key": busy.credential}, messages(False))
        statuses.append(answer.status_code)
    assert statuses == [200] * 5 + [429] * 2
    answer = await call(proxy, "/v1/messages", {"x-api-key": other.credential}, messages(False))
    assert answer.status_code == 200


async def test_a_refused_call_stops_before_the_provider(proxy, scripted_model):
    async def over_budget() -> Refusal | Usage:
        return Refusal(402, "budget_exhausted", "the organization's monthly cap is spent")

    grant = proxy.grant("sess_1", 1, None, admit=over_budget)
    answer = await call(proxy, "/v1/messages", {"x-api-key": grant.credential}, messages())
    assert answer.status_code == 402 and answer.json()["error"]["type"] == "budget_exhausted"
    assert scripted_model.requests == []


async def test_keys_and_prompts_are_never_logged(proxy, scripted_model, caplog):
    caplog.set_level(logging.DEBUG)
    grant = proxy.grant("sess_1", 1, None)
    await call(proxy, "/v1/messages", {"x-api-key": grant.credential}, messages())
    await call(proxy, "/v1/messages", {"x-api-key": "kps_forged"}, messages())
    logged = caplog.text
    for secret in (PLATFORM_KEY, grant.credential, "kps_forged", PROMPT):
        assert secret not in logged


def test_upstreams_follow_the_operators_settings():
    found = platform_upstreams(
        {"ANTHROPIC_AUTH_TOKEN": "tok", "ANTHROPIC_BASE_URL": "http://m/prefix/"}
    )
    assert found["anthropic"].url == "http://m/prefix/v1/messages"
    assert found["anthropic"].headers == {"authorization": "Bearer tok"}
    assert "openai" not in found
    assert platform_upstreams({"OPENAI_API_KEY": "k"})["openai"].url == (
        "https://api.openai.com/v1/chat/completions"
    )


async def test_a_pooled_harness_calls_nothing_until_a_session_adopts_it(proxy, scripted_model):
    grant = proxy.grant("sess_pooled", None, None, bound=False)
    answer = await call(proxy, "/v1/messages", {"x-api-key": grant.credential}, messages())
    assert answer.status_code == 409 and answer.json()["error"]["type"] == "permission_error"
    assert scripted_model.requests == []
    grant.bind(7, 8)
    answer = await call(proxy, "/v1/messages", {"x-api-key": grant.credential}, messages())
    assert answer.status_code == 200 and (grant.organization_id, grant.project_id) == (7, 8)

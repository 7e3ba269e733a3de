"""The model proxy with organizations' own provider keys, against local fake providers that
check every credential they receive: each call reaches the account of the caller's own key (the
project's, else the org's, else the platform's), in each provider's own authentication (bearer
keys, SigV4 recomputed with botocore, Vertex service-account tokens), Bedrock's event stream
comes back as Anthropic SSE, a rejected key ends the turn with `byok_key_rejected` and is never
retried with the platform's key, and no key reaches a log."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from karta.core import internal_api as api
from karta.dataplane.control.client import ControlPlaneUnavailable
from karta.dataplane.sandbox.meter import CallUsage
from karta.dataplane.sandbox.proxy import Admit, Grant, ModelProxy, OrgLimits, Refusal, Usage
from karta.dataplane.sandbox.upstreams import Upstreams
from karta.testing import Reply, ScriptedModel, text
from karta.testing.fake_providers import FakeProviders

PLATFORM_KEY = "sk-platform-never-elsewhere"


class Access:
    """What the control plane would answer per (org, project); `down` fakes an outage."""

    def __init__(self) -> None:
        self.answers: dict[tuple[int, int | None], api.ModelAccess] = {}
        self.down = False

    def set(
        self, org: int, *keys: api.ProviderCredential, project: int | None = None, **settings: str
    ) -> None:
        self.answers[(org, project)] = api.ModelAccess(keys=list(keys), **settings)

    async def get(self, organization_id: int | None, project_id: int | None) -> api.ModelAccess:
        if self.down:
            raise ControlPlaneUnavailable("the control plane is unreachable")
        assert organization_id is not None
        return (
            self.answers.get((organization_id, project_id))
            or self.answers.get((organization_id, None))
            or api.ModelAccess()
        )


def credential(
    provider: str, material: dict[str, str], key_id: int, owner: str = "org"
) -> api.ProviderCredential:
    return api.ProviderCredential(provider=provider, owner=owner, key_id=key_id, material=material)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def providers() -> Iterator[FakeProviders]:
    with FakeProviders() as fake:
        yield fake


@pytest.fixture
def access() -> Access:
    return Access()


@pytest.fixture
async def proxy(
    scripted_model: ScriptedModel, providers: FakeProviders, access: Access
) -> AsyncIterator[ModelProxy]:
    env = {"ANTHROPIC_BASE_URL": scripted_model.url, "ANTHROPIC_API_KEY": PLATFORM_KEY}
    upstreams = Upstreams(env, providers.urls(), access)
    proxy = ModelProxy(env, OrgLimits(concurrency=8, per_minute=1000), upstreams=upstreams)
    await proxy.start(tcp=True)
    yield proxy
    await proxy.stop()


def messages(prompt: str, stream: bool = True, model: str = "claude-test") -> dict:
    return {
        "model": model,
        "max_tokens": 100,
        "stream": stream,
        "messages": [{"role": "user", "content": prompt}],
    }


async def call(
    proxy: ModelProxy, grant: Grant, body: dict, path: str = "/v1/messages"
) -> httpx.Response:
    headers = {"x-api-key": grant.credential, "anthropic-version": "2023-06-01"}
    async with httpx.AsyncClient(base_url=proxy.url or "") as client:
        return await client.post(path, json=body, headers=headers)


def metered_into(seen: list[CallUsage]) -> Admit:
    async def admit() -> Usage:
        return seen.append

    return admit


def prompts_of(calls: list) -> list[str]:
    return [c.body["messages"][0]["content"] for c in calls]


async def test_interleaved_calls_of_three_orgs_each_reach_their_own_account(
    proxy: ModelProxy, providers: FakeProviders, access: Access, scripted_model: ScriptedModel
) -> None:
    acme = providers.api_key_account("anthropic", "acme")
    globex = providers.api_key_account("anthropic", "globex")
    access.set(1, credential("anthropic", {"api_key": acme}, 11))
    access.set(2, credential("anthropic", {"api_key": globex}, 21))
    grants = {org: proxy.grant(f"sess_{org}", org, None) for org in (1, 2, 3)}
    before = len(providers.calls)

    async def one(org: int, n: int) -> httpx.Response:
        return await call(proxy, grants[org], messages(f"org-{org} call-{n}"))

    answers = await asyncio.gather(*(one(org, n) for n in range(8) for org in (1, 2, 3)))
    assert all(a.status_code == 200 and "message_stop" in a.text for a in answers)
    reached = providers.calls[before:]
    by_account = {
        name: sorted(prompts_of([c for c in reached if c.account == name]))
        for name in ("acme", "globex")
    }
    assert by_account["acme"] == sorted(f"org-1 call-{n}" for n in range(8))
    assert by_account["globex"] == sorted(f"org-2 call-{n}" for n in range(8))
    assert all(c.account for c in reached)  # nothing reached a provider unauthenticated
    platform = [r for r in scripted_model.requests if r.body]
    assert sorted(r.prompt for r in platform) == sorted(f"org-3 call-{n}" for n in range(8))
    assert all(r.headers["x-api-key"] == PLATFORM_KEY for r in platform)


async def test_each_provider_gets_its_own_credential_and_usage_says_who_served(
    proxy: ModelProxy, providers: FakeProviders, access: Access
) -> None:
    providers.model.enqueue(
        Reply([text("from bedrock")], usage={"input_tokens": 7, "output_tokens": 3})
    )
    providers.model.enqueue(
        Reply([text("from vertex")], usage={"input_tokens": 5, "output_tokens": 2})
    )
    providers.model.enqueue(Reply([text("from openrouter")]))
    bedrock = providers.bedrock_account("aws-acct")
    vertex = providers.vertex_account("gcp-acct")
    router = {"api_key": providers.api_key_account("openrouter", "or-acct")}
    access.set(
        4, credential("bedrock", bedrock, 41), provider="bedrock", model="anthropic.claude-x-v2:0"
    )
    access.set(
        5,
        credential("vertex", vertex, 51, owner="project"),
        provider="vertex",
        model="claude-x@20250101",
    )
    access.set(6, credential("openrouter", router, 61), provider="openrouter")
    seen: list[CallUsage] = []
    before = len(providers.calls)
    for org in (4, 5, 6):
        grant = proxy.grant(f"sess_{org}", org, 9, admit=metered_into(seen))
        answer = await call(proxy, grant, messages(f"to {org}"))
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("text/event-stream")
        assert "message_stop" in answer.text
    reached = [c for c in providers.calls[before:] if c.path != "/token"]
    assert [(c.provider, c.account) for c in reached] == [
        ("bedrock", "aws-acct"),
        ("vertex", "gcp-acct"),
        ("openrouter", "or-acct"),
    ]
    signed = reached[0]
    assert signed.path == "/us-east-1/model/anthropic.claude-x-v2:0/invoke-with-response-stream"
    assert signed.body["anthropic_version"] == "bedrock-2023-05-31" and "model" not in signed.body
    assert bedrock["secret_access_key"] not in json.dumps(signed.headers)
    assert reached[1].path.endswith(
        "/publishers/anthropic/models/claude-x@20250101:streamRawPredict"
    )
    assert reached[1].body["anthropic_version"] == "vertex-2023-10-16"
    assert reached[2].headers["authorization"] == f"Bearer {router['api_key']}"
    assert [(u.provider, u.key_owner) for u in seen] == [
        ("bedrock", "org"),
        ("vertex", "project"),
        ("openrouter", "org"),
    ]
    assert (seen[0].input_tokens, seen[0].output_tokens) == (7, 3)  # metered from the event stream
    assert (seen[1].input_tokens, seen[1].output_tokens) == (5, 2)


async def test_unary_bedrock_and_openai_wire_keys(
    proxy: ModelProxy, providers: FakeProviders, access: Access
) -> None:
    providers.model.enqueue(Reply([text("whole")]))
    access.set(
        7, credential("bedrock", providers.bedrock_account("aws-unary"), 71), provider="bedrock"
    )
    grant = proxy.grant("sess_7", 7, None)
    answer = await call(proxy, grant, messages("unary", stream=False, model="anthropic.m"))
    assert answer.status_code == 200 and answer.json()["content"][0]["text"] == "whole"
    assert providers.calls[-1].path == "/us-east-1/model/anthropic.m/invoke"
    openai_key = providers.api_key_account("openai", "oa")
    access.set(8, credential("openai", {"api_key": openai_key}, 81))
    chat = {"model": "gpt-x", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    grant = proxy.grant("sess_8", 8, None)
    async with httpx.AsyncClient(base_url=proxy.url or "") as client:
        r = await client.post(
            "/v1/chat/completions",
            json=chat,
            headers={"authorization": f"Bearer {grant.credential}"},
        )
    assert r.status_code == 200 and "[DONE]" in r.text
    assert (providers.calls[-1].provider, providers.calls[-1].account) == ("openai", "oa")


async def test_a_rejected_key_ends_the_turn_and_is_never_retried_with_the_platform_key(
    proxy: ModelProxy, providers: FakeProviders, access: Access, scripted_model: ScriptedModel
) -> None:
    refusals: list[Refusal] = []
    access.set(10, credential("anthropic", {"api_key": "sk-anthropic-revoked-upstream"}, 101))
    access.set(
        11,
        credential(
            "vertex",
            providers.vertex_account("x")
            | {
                "service_account": json.dumps(
                    {
                        "type": "service_account",
                        "client_email": "nobody@x",
                        "private_key": "bad",
                        "private_key_id": "k",
                    }
                )
            },
            111,
        ),
        provider="vertex",
    )
    access.set(
        12,
        credential(
            "bedrock", {**providers.bedrock_account("y"), "secret_access_key": "forged"}, 121
        ),
        provider="bedrock",
    )
    for org in (10, 11, 12):
        grant = proxy.grant(f"sess_{org}", org, None, on_refusal=refusals.append)
        answer = await call(proxy, grant, messages("refused"))
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["type"] == "byok_key_rejected"
        assert "sk-anthropic-revoked" not in answer.text and "forged" not in answer.text
    assert [r.kind for r in refusals] == ["byok_key_rejected"] * 3
    assert [r for r in scripted_model.requests if r.body] == []  # never the platform


async def test_settings_that_name_another_provider_or_endpoint_never_get_the_platform_key(
    proxy: ModelProxy, access: Access, scripted_model: ScriptedModel
) -> None:
    access.set(13, provider="bedrock")
    access.set(14, endpoint_url="https://gateway.example.com", provider="anthropic")
    for org in (13, 14):
        answer = await call(proxy, proxy.grant(f"sess_{org}", org, None), messages("x"))
        assert answer.status_code == 403 and "no " in answer.json()["error"]["message"]
    access.down = True
    answer = await call(proxy, proxy.grant("sess_15", 15, None), messages("x"))
    assert answer.status_code == 503
    assert [r for r in scripted_model.requests if r.body] == []


async def test_an_org_endpoint_and_model_setting_are_used_with_the_orgs_key(
    proxy: ModelProxy, providers: FakeProviders, access: Access
) -> None:
    key = providers.api_key_account("anthropic", "gateway")
    access.set(
        16,
        credential("anthropic", {"api_key": key}, 161),
        provider="anthropic",
        endpoint_url=f"{providers.url}/anthropic",
        model="claude-pinned",
    )
    answer = await call(
        proxy, proxy.grant("sess_16", 16, None), messages("x", model="claude-asked")
    )
    assert answer.status_code == 200
    assert (providers.calls[-1].account, providers.calls[-1].body["model"]) == (
        "gateway",
        "claude-pinned",
    )


async def test_keys_never_reach_a_log(
    proxy: ModelProxy, providers: FakeProviders, access: Access, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    good = providers.api_key_account("anthropic", "logged")
    bedrock = providers.bedrock_account("logged")
    access.set(17, credential("anthropic", {"api_key": good}, 171))
    access.set(
        18,
        credential("bedrock", {**bedrock, "secret_access_key": "wrong-secret-value"}, 181),
        provider="bedrock",
    )
    access.set(19, credential("anthropic", {"api_key": "sk-anthropic-bad-bad-bad"}, 191))
    for org in (17, 18, 19):
        await call(proxy, proxy.grant(f"sess_{org}", org, None), messages("x"))
    for secret in (
        good,
        bedrock["secret_access_key"],
        "wrong-secret-value",
        "sk-anthropic-bad-bad-bad",
        PLATFORM_KEY,
    ):
        assert secret not in caplog.text
    assert "refused the key of organization 18" in caplog.text


async def test_a_model_setting_applies_to_calls_on_the_platforms_key_too(
    proxy: ModelProxy, access: Access, scripted_model: ScriptedModel
) -> None:
    access.set(20, model="claude-chosen-by-the-org")
    answer = await call(proxy, proxy.grant("sess_20", 20, None), messages("x", model="asked"))
    assert answer.status_code == 200
    (request,) = [r for r in scripted_model.requests if r.body]
    assert request.body["model"] == "claude-chosen-by-the-org"
    assert request.headers["x-api-key"] == PLATFORM_KEY

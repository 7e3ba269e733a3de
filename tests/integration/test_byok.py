"""Bring your own key, end to end: a real `karta serve` (both planes, SQLite or PostgreSQL), the
real Claude Code harness in its sandbox, and local fake providers that check every credential.
Organizations with their own keys (Anthropic; Bedrock, signed with SigV4 and answering in AWS
event-stream framing) and one without (the platform's scripted model) run turns side by side:
every model call reaches the right account. A key rotated mid-session serves the session's next
turn (the control plane's push, no harness restart); a rejected key ends the turn with
`byok_key_rejected` and never falls back; no key reaches a log line, a harness process's
environment or the session's files; usage says who served each call and whose key paid."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from karta.testing import ScriptedModel
from karta.testing.fake_providers import FakeProviders
from tests.conftest import SUPPORT_BOT, Database, KartaServer
from tests.integration.test_planes import bearer, eventually, signup

pytestmark = pytest.mark.harness


@pytest.fixture(scope="module")
def providers() -> Iterator[FakeProviders]:
    with FakeProviders() as fake:
        yield fake


@pytest.fixture(scope="module")
def karta(
    model: ScriptedModel,
    providers: FakeProviders,
    database: Database,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[KartaServer]:
    home = tmp_path_factory.mktemp("karta-byok")
    server = KartaServer(SUPPORT_BOT, home, model, database, env=providers.env()).start()
    yield server
    server.stop()


def set_key(server: KartaServer, key: str, provider: str, credential: dict[str, str]) -> None:
    with httpx.Client(base_url=server.control_url, headers=bearer(key), timeout=30) as control:
        body = {"provider": provider, "label": provider, "credential": credential}
        r = control.post("/v1/provider_keys", json=body)
        assert r.status_code == 201, r.text
        if provider == "bedrock":
            settings = {"provider": "bedrock", "model": "anthropic.claude-sonnet-4-5-v1:0"}
            assert control.put("/v1/model_settings", json=settings).status_code == 200


def turn(server: KartaServer, key: str, session: str, text: str) -> httpx.Response:
    with httpx.Client(base_url=server.url, headers=bearer(key), timeout=180) as api:
        return api.post(f"/v1/sessions/{session}/messages", json={"text": text})


def new_session(server: KartaServer, key: str) -> str:
    with httpx.Client(base_url=server.url, headers=bearer(key), timeout=30) as api:
        r = api.post("/v1/sessions", json={})
        assert r.status_code == 201, r.text
        return str(r.json()["id"])


def prompts(calls: list[Any]) -> set[str]:
    found = set()
    for call in calls:
        for message in call.body.get("messages", []):
            content = message.get("content")
            blocks = [content] if isinstance(content, str) else content or []
            found |= {b if isinstance(b, str) else str(b.get("text", "")) for b in blocks}
    return found


def harness_environments(server: KartaServer) -> list[str]:
    assert server.proc is not None
    found = []
    for child in psutil.Process(server.proc.pid).children(recursive=True):
        try:
            found.append("\n".join(f"{k}={v}" for k, v in child.environ().items()))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def test_orgs_turns_side_by_side_each_reach_their_own_account(
    karta: KartaServer, providers: FakeProviders, model: ScriptedModel
) -> None:
    acme, globex, initech = (
        signup(karta.control_url, f"{n}-{secrets.token_hex(3)}")
        for n in ("acme", "globex", "initech")
    )
    anthropic_key = providers.api_key_account("anthropic", "acme")
    bedrock = providers.bedrock_account("globex")
    set_key(karta, acme, "anthropic", {"api_key": anthropic_key})
    set_key(karta, globex, "bedrock", bedrock)
    sessions = {key: new_session(karta, key) for key in (acme, globex, initech)}
    asks = {
        acme: "Which roast is light? (acme)",
        globex: "Do you ship abroad? (globex)",
        initech: "Hello (initech)",
    }
    before = len(providers.calls)
    with ThreadPoolExecutor(2) as pool:  # at most two real harness turns at once
        answers = dict(
            zip(asks, pool.map(lambda k: turn(karta, k, sessions[k], asks[k]), asks), strict=True)
        )
    for key, answer in answers.items():
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "completed", answer.text
        assert asks[key] in answer.json()["text"]
    reached = [c for c in providers.calls[before:] if c.body]
    by_account: dict[str, set[str]] = {}
    for call in reached:
        by_account.setdefault(call.account, set()).update(prompts([call]))
    assert "" not in by_account, "a call reached a provider without a valid credential"
    assert any(asks[acme] in p for p in by_account["acme"])
    assert any(asks[globex] in p for p in by_account["globex"])
    assert not any(asks[initech] in p for p in set().union(*by_account.values()))
    assert not any(
        asks[globex] in p or asks[acme] in p for p in prompts([r for r in model.requests if r.body])
    )
    assert any(asks[initech] in r.prompt for r in model.requests if r.body)
    bedrock_calls = [c for c in reached if c.provider == "bedrock"]
    assert bedrock_calls and all(
        c.path.startswith("/us-east-1/model/anthropic.claude-sonnet-4-5-v1:0/")
        for c in bedrock_calls
    )

    def usage_rows() -> list[dict]:
        r = httpx.get(f"{karta.control_url}/v1/usage", headers=bearer(globex), timeout=5)
        return list(r.json()["by_model"])

    rows = eventually(usage_rows, "globex's usage to reach the ledger")
    assert {(r["provider"], r["key_owner"]) for r in rows} == {("bedrock", "org")}


def test_a_rotated_key_serves_the_next_turn_and_a_rejected_one_ends_it(
    karta: KartaServer, providers: FakeProviders, model: ScriptedModel
) -> None:
    org = signup(karta.control_url, f"rotor-{secrets.token_hex(3)}")
    first = providers.api_key_account("anthropic", "first")
    set_key(karta, org, "anthropic", {"api_key": first})
    session = new_session(karta, org)
    assert turn(karta, org, session, "one").json()["status"] == "completed"
    second = providers.api_key_account("anthropic", "second")
    set_key(karta, org, "anthropic", {"api_key": second})  # rotation: the push evicts at once
    mark = len(providers.calls)
    assert turn(karta, org, session, "two").json()["status"] == "completed"
    assert {c.account for c in providers.calls[mark:] if c.body} == {"second"}
    environments = harness_environments(karta)  # the session's harness is still warm
    assert environments
    for environ in environments:
        for secret in (first, second, "test-key"):
            assert secret not in environ

    with httpx.Client(base_url=karta.control_url, headers=bearer(org), timeout=30) as control:
        body = {
            "provider": "anthropic",
            "label": "closed",
            "credential": {"api_key": "sk-anthropic-account-closed-0000"},
        }
        assert (
            control.post("/v1/provider_keys", json=body, params={"validate": "false"}).status_code
            == 201
        )
    platform_before = len([r for r in model.requests if r.body])
    refused = turn(karta, org, session, "three")
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"] == "byok_key_rejected"
    assert "account-closed" not in refused.text
    assert len([r for r in model.requests if r.body]) == platform_before, (
        "no fallback to the platform"
    )

    log = karta.log.read_text()
    for secret in (first, second, "sk-anthropic-account-closed-0000", "test-key"):
        assert secret not in log
    for path in Path(karta.home, "sessions").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert first.encode() not in data and second.encode() not in data, path

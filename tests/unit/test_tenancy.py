"""Default deny: another organization's session is indistinguishable from a missing one, and a
session token sees only its own end user's sessions."""

from __future__ import annotations

import pytest

from karta.app import load_app
from karta.core.errors import IdentityMismatch, InvalidEndUserId, SessionNotFound
from karta.dataplane.principal import OPEN, Principal
from karta.dataplane.runtime.factory import open_runtime
from karta.dataplane.runtime.queries import SessionFilter
from karta.dataplane.settings import Settings
from tests.conftest import SUPPORT_BOT

ORG_A = Principal(kind="api_key", organization_id=1)
ORG_B = Principal(kind="api_key", organization_id=2)
EVERYTHING = SessionFilter(organization_id=None)


async def test_sessions_are_invisible_across_organizations(tmp_path):
    settings = Settings(home=tmp_path, open_auth=False)
    async with open_runtime(load_app(SUPPORT_BOT), settings, {}) as runtime:
        session, created = await runtime.create_session(ORG_A, {"owner": "a"})
        assert created and (await session.view()).metadata == {"owner": "a"}
        for attempt in (
            runtime.session(ORG_B, session.id),
            runtime.create_session(ORG_B, {}, session_id=session.id),
        ):
            with pytest.raises(SessionNotFound):
                await attempt
        listed, _ = await runtime.list_sessions(ORG_B, EVERYTHING, 50)
        assert listed == []
        assert (await (await runtime.session(ORG_A, session.id)).view()).status == "active"
        # Open mode (karta serve --open) is unscoped by design; it sees every session.
        assert (await runtime.session(OPEN, session.id)).id == session.id


async def test_project_routes_see_their_project_and_tokens_only_their_end_user(tmp_path):
    in_project = Principal(kind="api_key", organization_id=1, project_id=7)
    other_project = Principal(kind="api_key", organization_id=1, project_id=8)
    alice = Principal(kind="session", organization_id=1, project_id=7, sub="alice")
    anonymous = Principal(kind="session", organization_id=1, project_id=7)
    settings = Settings(home=tmp_path, open_auth=False)
    async with open_runtime(load_app(SUPPORT_BOT), settings, {}) as runtime:
        flat, _ = await runtime.create_session(ORG_A, {})
        bobs, _ = await runtime.create_session(in_project, {"user_id": "bob"})
        shared, _ = await runtime.create_session(in_project, {})
        own, _ = await runtime.create_session(alice, {"plan": "pro"})
        assert (await own.view()).metadata == {"plan": "pro", "user_id": "alice"}

        assert (await runtime.session(ORG_A, bobs.id)).id == bobs.id
        denied = [
            (in_project, flat),
            (other_project, bobs),
            (alice, bobs),
            (alice, flat),
            (alice, shared),  # an end user's token never reads a session of nobody
            (anonymous, bobs),  # a token without `sub` never reads an end user's session
            (anonymous, own),
        ]
        for caller, session in denied:
            with pytest.raises(SessionNotFound):
                await runtime.session(caller, session.id)
        assert (await runtime.session(alice, own.id)).id == own.id
        assert (await runtime.session(anonymous, shared.id)).id == shared.id

        async def listed(caller: Principal) -> set[str]:
            handles, _ = await runtime.list_sessions(caller, EVERYTHING, 50)
            return {h.id for h in handles}

        assert await listed(alice) == {own.id}
        assert await listed(anonymous) == {shared.id}
        assert await listed(in_project) == {bobs.id, shared.id, own.id}
        assert await listed(ORG_A) == {flat.id, bobs.id, shared.id, own.id}


@pytest.mark.parametrize("bad", ["", "a b", "x" * 129, "-lead", "é", "a/b", True, 1.5])
async def test_end_user_ids_are_validated(tmp_path, bad):
    settings = Settings(home=tmp_path, open_auth=False)
    async with open_runtime(load_app(SUPPORT_BOT), settings, {}) as runtime:
        with pytest.raises(InvalidEndUserId):
            await runtime.create_session(ORG_A, {"user_id": bad})


async def test_an_anonymous_token_cannot_claim_an_end_user(tmp_path):
    anonymous = Principal(kind="session", organization_id=1, project_id=7)
    settings = Settings(home=tmp_path, open_auth=False)
    async with open_runtime(load_app(SUPPORT_BOT), settings, {}) as runtime:
        with pytest.raises(IdentityMismatch):
            await runtime.create_session(anonymous, {"end_user_id": "alice"})

"""Default deny: another organization's session is indistinguishable from a missing one."""

from __future__ import annotations

import pytest

from karta.app import load_app
from karta.config import Settings
from karta.errors import SessionNotFound
from karta.principal import OPEN, Principal
from karta.runtime.factory import open_runtime
from karta.runtime.service import TurnRequest
from tests.conftest import SUPPORT_BOT

ORG_A = Principal(kind="api_key", organization_id=1)
ORG_B = Principal(kind="api_key", organization_id=2)


async def test_sessions_are_invisible_across_organizations(tmp_path):
    settings = Settings(home=tmp_path, open_auth=False)
    async with open_runtime(load_app(SUPPORT_BOT), settings, {}) as runtime:
        session, created = await runtime.create_session(ORG_A, {"owner": "a"})
        sid = session["id"]
        assert created
        assert (await runtime.get_session(ORG_A, sid))["metadata"] == {"owner": "a"}
        attempts = [
            runtime.get_session(ORG_B, sid),
            runtime.create_session(ORG_B, {}, session_id=sid),
            runtime.start_turn(ORG_B, sid, TurnRequest(text="hi")),
            runtime.decide(ORG_B, sid, "req_x", "deny"),
            runtime.end_session(ORG_B, sid),
        ]
        for attempt in attempts:
            with pytest.raises(SessionNotFound):
                await attempt
        assert (await runtime.get_session(ORG_A, sid))["status"] == "active"
        assert runtime.running_turn(sid) is None
        # Open mode (karta serve --open) is unscoped by design; it sees every session.
        assert (await runtime.get_session(OPEN, sid))["id"] == sid


async def test_project_routes_see_their_project_and_tokens_their_end_user(tmp_path):
    in_project = Principal(kind="api_key", organization_id=1, project_id=7)
    other_project = Principal(kind="api_key", organization_id=1, project_id=8)
    alice = Principal(kind="session", organization_id=1, project_id=7, sub="alice")
    settings = Settings(home=tmp_path, open_auth=False)
    async with open_runtime(load_app(SUPPORT_BOT), settings, {}) as runtime:
        flat, _ = await runtime.create_session(ORG_A, {})
        bobs, _ = await runtime.create_session(in_project, {"user_id": "bob"})
        shared, _ = await runtime.create_session(in_project, {})
        own, _ = await runtime.create_session(alice, {"plan": "pro"})
        assert own["metadata"] == {"plan": "pro", "user_id": "alice"}

        assert (await runtime.get_session(ORG_A, bobs["id"]))["id"] == bobs["id"]
        for caller, sid in [
            (in_project, flat["id"]),
            (other_project, bobs["id"]),
            (alice, bobs["id"]),
            (alice, flat["id"]),
        ]:
            with pytest.raises(SessionNotFound):
                await runtime.get_session(caller, sid)
        for sid in (shared["id"], own["id"]):
            assert (await runtime.get_session(alice, sid))["id"] == sid

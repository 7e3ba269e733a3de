"""Which release a session runs, against a fake control plane on an injected clock: active
pointers cached per project until a push, the local project's working copy, the stale grace,
env vars, and releases materialized once and run by the harness their kind names."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from karta.app import load_app
from karta.config import Settings
from karta.dataplane.breaker import CircuitBreaker
from karta.dataplane.control import ControlPlaneClient, ControlPlaneUnavailable
from karta.dataplane.releases import ControlPlaneReleases, LocalProject
from karta.errors import NoActiveRelease, ProjectNotFound
from karta.principal import Principal
from karta.releases.archive import pack_bytes
from karta.releases.store import ReleaseStore
from karta.runtime.apps import WORKING_COPY, Apps, Pin
from karta.runtime.factory import harness_for
from tests.conftest import SUPPORT_BOT
from tests.unit.control_fakes import Clock, FakeControlPlane

BOT = Principal(
    kind="api_key", organization_id=1, organization_slug="org1", project_id=11, project_slug="bot"
)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake() -> FakeControlPlane:
    return FakeControlPlane()


def source(fake: FakeControlPlane, clock: Clock, local: LocalProject | None = None):  # type: ignore[no-untyped-def]
    breaker = CircuitBreaker(threshold=3, window=2.0, clock=clock)
    control = ControlPlaneClient("http://control", "svc", breaker=breaker, transport=fake)
    return ControlPlaneReleases(control, ttl=5, stale=300, max_entries=16, local=local, clock=clock)


def archive(tmp_path: Path, claude_md: str) -> tuple[str, bytes]:
    root = tmp_path / f"src-{hashlib.sha1(claude_md.encode()).hexdigest()[:8]}"
    shutil.copytree(SUPPORT_BOT, root)
    (root / "CLAUDE.md").write_text(claude_md)
    data = pack_bytes(root)
    return hashlib.sha256(data).hexdigest(), data


async def test_active_pointers_are_cached_per_project_until_a_push(fake, clock):
    releases = source(fake, clock)
    fake.active[(1, 11)] = (1, "a" * 64)
    assert await releases.active(BOT) == Pin(1, "a" * 64)
    fake.active[(1, 11)] = (2, "b" * 64)
    assert await releases.active(BOT) == Pin(1, "a" * 64), "cached within the window"
    assert fake.calls.count("/internal/projects/11/active_release") == 1
    assert releases.evict(1) == (1, 0)
    assert await releases.active(BOT) == Pin(2, "b" * 64), "the push drops it at once"
    fake.active[(1, 11)] = (3, "c" * 64)
    clock.advance(5)
    assert await releases.active(BOT) == Pin(3, "c" * 64), "and the window ends it anyway"


async def test_refusals_and_the_local_projects_working_copy(fake, clock):
    with pytest.raises(NoActiveRelease):
        await source(fake, clock).active(BOT)
    with pytest.raises(ProjectNotFound):
        await source(fake, clock).active(
            Principal(kind="api_key", organization_id=1, project_id=99)
        )
    elsewhere = LocalProject("org2", "bot")  # the same slug in another organization
    with pytest.raises(NoActiveRelease):
        await source(fake, clock, elsewhere).active(BOT)
    local = source(fake, clock, LocalProject("org1", "bot"))
    assert await local.active(BOT) == WORKING_COPY
    fake.active[(1, 11)] = (1, "a" * 64)
    local.evict(1)
    assert await local.active(BOT) == Pin(1, "a" * 64), "a published release takes over"


async def test_flat_callers_run_the_working_copy_without_asking(fake, clock):
    flat = Principal(kind="api_key", organization_id=1)
    assert await source(fake, clock).active(flat) == WORKING_COPY
    assert fake.calls == []


async def test_an_outage_keeps_recent_answers_and_refuses_the_rest(fake, clock):
    releases = source(fake, clock)
    fake.active[(1, 11)] = (1, "a" * 64)
    fake.env[(1, 11)] = {"PROBE": "x"}
    await releases.active(BOT)
    assert await releases.env(1, 11) == {"PROBE": "x"}
    clock.advance(60)
    fake.down = True
    assert await releases.active(BOT) == Pin(1, "a" * 64)
    assert await releases.env(1, 11) == {"PROBE": "x"}
    with pytest.raises(ControlPlaneUnavailable):
        await releases.env(1, 12)


async def test_env_vars_are_cached_and_dropped_by_the_push(fake, clock):
    releases = source(fake, clock)
    fake.env[(1, 11)] = {"PROBE": "one"}
    assert await releases.env(1, 11) == {"PROBE": "one"}
    fake.env[(1, 11)] = {"PROBE": "two"}
    assert await releases.env(1, 11) == {"PROBE": "one"}
    assert releases.evict(1) == (0, 1)
    assert await releases.env(1, 11) == {"PROBE": "two"}


async def test_releases_are_materialized_once_and_run_by_their_harness(fake, clock, tmp_path):
    settings = Settings(home=tmp_path / "home")
    apps = Apps(
        load_app(SUPPORT_BOT),
        source(fake, clock),
        ReleaseStore(settings.releases),
        lambda kind: harness_for(kind, settings),
    )
    claude, data = archive(tmp_path, "release one")
    oc_root = tmp_path / "opencode-app"
    oc_root.mkdir()
    (oc_root / "AGENTS.md").write_text("An OpenCode app.")
    oc_data = pack_bytes(oc_root)
    opencode = hashlib.sha256(oc_data).hexdigest()
    fake.artifacts.update({claude: data, opencode: oc_data})

    async with apps.checkout(Pin(1, claude), 1, "bot") as app:
        assert (app.root / "CLAUDE.md").read_text() == "release one"
        assert app.root == settings.releases / claude
        assert app.name == "bot", "named after the project when karta.toml does not say"
    assert await apps.app(Pin(1, claude), 1, "bot") is app
    assert fake.calls.count(f"/internal/artifacts/{claude}") == 1
    assert await apps.app(WORKING_COPY, 1, "bot") is apps.working_copy

    other = await apps.app(Pin(2, opencode), 1, "bot")
    assert other.harness == "opencode"
    assert apps.harness(other.harness).kind == "opencode"
    assert apps.harness(app.harness).kind == "claude-code"
    assert apps.harness("claude-code") is apps.harness(app.harness), "one harness per kind"

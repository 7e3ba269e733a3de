"""Which release a session runs, against the real control plane on a fake clock: active
pointers cached per project until a push, the local project's working copy, the stale grace,
env vars, and releases materialized once and run by the harness their kind names."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from karta.app import load_app
from karta.core.errors import NoActiveRelease, ProjectNotFound
from karta.dataplane.control.client import ControlPlaneUnavailable
from karta.dataplane.control.releases import ControlPlaneReleases, LocalProject
from karta.dataplane.principal import Principal
from karta.dataplane.runtime.apps import WORKING_COPY, Apps, Pin
from karta.dataplane.runtime.factory import harness_for
from karta.dataplane.settings import Settings
from karta.releases.archive import pack_bytes
from karta.releases.store import ReleaseStore
from karta.testing import FakeClock
from tests.conftest import SUPPORT_BOT
from tests.unit.control_plane_double import ControlPlaneDouble, Tenant


def source(
    control: ControlPlaneDouble, clock: FakeClock, local: LocalProject | None = None
) -> ControlPlaneReleases:
    return ControlPlaneReleases(
        control.client(clock), ttl=5, stale=300, max_entries=16, local=local, clock=clock
    )


def archive(tmp_path: Path, claude_md: str) -> bytes:
    root = tmp_path / f"src-{hashlib.sha1(claude_md.encode()).hexdigest()[:8]}"
    shutil.copytree(SUPPORT_BOT, root)
    (root / "CLAUDE.md").write_text(claude_md)
    return pack_bytes(root)


@pytest.fixture
async def acme(control: ControlPlaneDouble) -> Tenant:
    return await control.signup("acme")


@pytest.fixture
async def bot(control: ControlPlaneDouble, acme: Tenant) -> Principal:
    """An API key's caller on acme's project `bot`."""
    project = await control.project(acme, "bot")
    return Principal(
        kind="api_key",
        organization_id=acme.id,
        organization_slug=acme.slug,
        project_id=project,
        project_slug="bot",
    )


async def test_active_pointers_are_cached_per_project_until_a_push(
    control, clock, acme, bot, tmp_path
):
    releases = source(control, clock)
    first = await control.publish(acme, "bot", archive(tmp_path, "one"))
    assert await releases.active(bot) == Pin(1, first)
    second = await control.publish(acme, "bot", archive(tmp_path, "two"))
    assert await releases.active(bot) == Pin(1, first), "cached within the window"
    assert control.faults.calls.count(f"/internal/projects/{bot.project_id}/active_release") == 1
    assert releases.evict(acme.id) == (1, 0)
    assert await releases.active(bot) == Pin(2, second), "the push drops it at once"
    third = await control.publish(acme, "bot", archive(tmp_path, "three"))
    clock.advance(5)
    assert await releases.active(bot) == Pin(3, third), "and the window ends it anyway"


async def test_refusals_and_the_local_projects_working_copy(control, clock, acme, bot, tmp_path):
    with pytest.raises(NoActiveRelease):
        await source(control, clock).active(bot)
    with pytest.raises(ProjectNotFound):
        await source(control, clock).active(
            Principal(kind="api_key", organization_id=acme.id, project_id=bot.project_id + 1)
        )
    elsewhere = LocalProject("globex", "bot")  # the same slug in another organization
    with pytest.raises(NoActiveRelease):
        await source(control, clock, elsewhere).active(bot)
    local = source(control, clock, LocalProject(acme.slug, "bot"))
    assert await local.active(bot) == WORKING_COPY
    published = await control.publish(acme, "bot", archive(tmp_path, "one"))
    local.evict(acme.id)
    assert await local.active(bot) == Pin(1, published), "a published release takes over"


async def test_flat_callers_run_the_working_copy_without_asking(control, clock, acme):
    flat = Principal(kind="api_key", organization_id=acme.id)
    assert await source(control, clock).active(flat) == WORKING_COPY
    assert control.faults.calls == []


async def test_an_outage_keeps_recent_answers_and_refuses_the_rest(
    control, clock, acme, bot, tmp_path
):
    releases = source(control, clock)
    published = await control.publish(acme, "bot", archive(tmp_path, "one"))
    await control.set_env(acme, "bot", "PROBE", "x")
    other = await control.project(acme, "other")
    await releases.active(bot)
    assert await releases.env(acme.id, bot.project_id) == {"PROBE": "x"}
    clock.advance(60)
    control.faults.down = True
    assert await releases.active(bot) == Pin(1, published)
    assert await releases.env(acme.id, bot.project_id) == {"PROBE": "x"}
    with pytest.raises(ControlPlaneUnavailable):
        await releases.env(acme.id, other)


async def test_env_vars_are_cached_and_dropped_by_the_push(control, clock, acme, bot):
    releases = source(control, clock)
    await control.set_env(acme, "bot", "PROBE", "one")
    assert await releases.env(acme.id, bot.project_id) == {"PROBE": "one"}
    await control.set_env(acme, "bot", "PROBE", "two")
    assert await releases.env(acme.id, bot.project_id) == {"PROBE": "one"}
    assert releases.evict(acme.id) == (0, 1)
    assert await releases.env(acme.id, bot.project_id) == {"PROBE": "two"}


async def test_releases_are_materialized_once_and_run_by_their_harness(
    control, clock, acme, bot, tmp_path
):
    settings = Settings(home=tmp_path / "home")
    apps = Apps(
        load_app(SUPPORT_BOT),
        source(control, clock),
        ReleaseStore(settings.releases),
        lambda kind: harness_for(kind, settings),
    )
    claude = await control.publish(acme, "bot", archive(tmp_path, "release one"))
    oc_root = tmp_path / "opencode-app"
    oc_root.mkdir()
    (oc_root / "AGENTS.md").write_text("An OpenCode app.")
    opencode = await control.publish(acme, "bot", pack_bytes(oc_root))

    async with apps.checkout(Pin(1, claude), acme.id, "bot") as app:
        assert (app.root / "CLAUDE.md").read_text() == "release one"
        assert app.root == settings.releases / claude
        assert app.name == "bot", "named after the project when karta.toml does not say"
    assert await apps.app(Pin(1, claude), acme.id, "bot") is app
    assert control.faults.calls.count(f"/internal/artifacts/{claude}") == 1
    assert await apps.app(WORKING_COPY, acme.id, "bot") is apps.working_copy

    other = await apps.app(Pin(2, opencode), acme.id, "bot")
    assert other.harness == "opencode"
    assert apps.harness(other.harness).kind == "opencode"
    assert apps.harness(app.harness).kind == "claude-code"
    assert apps.harness("claude-code") is apps.harness(app.harness), "one harness per kind"

"""A release that cannot be materialized surfaces through the data plane's HTTP API as its
documented error (docs/api.md, "Errors"), and nothing of it is kept: in-process, against the
real control plane."""

from __future__ import annotations

import pytest

from karta.releases.archive import pack_bytes
from tests.conftest import SUPPORT_BOT
from tests.unit.control_plane_double import ControlPlaneDouble, Tenant, data_plane


@pytest.fixture
async def acme(control: ControlPlaneDouble) -> Tenant:
    tenant = await control.signup("acme")
    await control.project(tenant, "bot")
    return tenant


async def test_an_archive_that_does_not_match_its_digest_is_a_502(control, acme, tmp_path):
    digest = await control.publish(acme, "bot", pack_bytes(SUPPORT_BOT))
    archive = control.artifact(digest)
    published = archive.read_bytes()
    archive.write_bytes(published[:-10] + b"corrupted!")  # the bytes rotted on its disk
    home = tmp_path / "data"
    async with data_plane(control, home) as (_, plane):
        refused = await plane.post("/v1/projects/bot/sessions", json={}, headers=acme.admin)
        assert refused.status_code == 502, refused.text
        body = refused.json()
        assert body["error"] == "release_digest_mismatch" and digest[:12] in body["message"]
        assert not (home / "releases" / digest).exists(), "a mismatched archive is not used"

        archive.write_bytes(published)
        created = await plane.post("/v1/projects/bot/sessions", json={}, headers=acme.admin)
        assert created.status_code == 201, "the failure was not remembered"
        assert (home / "releases" / digest).is_dir()


async def test_an_archive_the_control_plane_no_longer_has_is_a_409(control, acme, tmp_path):
    digest = await control.publish(acme, "bot", pack_bytes(SUPPORT_BOT))
    control.artifact(digest).unlink()
    async with data_plane(control, tmp_path / "data") as (_, plane):
        refused = await plane.post("/v1/projects/bot/sessions", json={}, headers=acme.admin)
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"] == "release_unavailable"
    assert isinstance(refused.json()["message"], str)

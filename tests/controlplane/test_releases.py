"""Releases on the control plane: publish as a stream, content addressing, validation that
records failures without activating them, activation and rollback, env vars at rest."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import io
import secrets
import shutil
import tarfile
from pathlib import Path

from sqlalchemy import select

from karta.controlplane.models import ProjectEnvVar
from karta.releases.archive import pack_bytes
from tests.conftest import SUPPORT_BOT
from tests.controlplane.conftest import ControlPlane, Org


async def _publish(
    control: ControlPlane, org: Org, data: bytes, project: str = "bot", **params: str
) -> tuple[int, dict]:
    r = await control.client.post(
        f"/v1/projects/{project}/releases",
        headers={**org.admin, "Content-Type": "application/gzip"},
        content=data,
        params=params,
    )
    return r.status_code, r.json()


def _app(tmp_path: Path, claude_md: str, **files: str) -> bytes:
    root = tmp_path / f"app-{hashlib.sha1(claude_md.encode()).hexdigest()[:6]}"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(SUPPORT_BOT, root)
    (root / "CLAUDE.md").write_text(claude_md)
    for name, text in files.items():
        (root / name).write_text(text)
    return pack_bytes(root)


async def _project(control: ControlPlane) -> Org:
    org = await control.signup()
    r = await control.client.post("/v1/projects", headers=org.admin, json={"slug": "bot"})
    assert r.status_code == 201
    return org


async def test_publish_activate_rollback(control: ControlPlane, tmp_path: Path) -> None:
    org = await _project(control)
    v1 = _app(tmp_path, "You are v1.")
    status, first = await _publish(control, org, v1)
    assert status == 201, first
    assert first["version"] == 1 and first["status"] == "ready" and first["active"]
    assert first["digest"] == "sha256:" + hashlib.sha256(v1).hexdigest()
    assert first["harness"] == "claude-code" and "triage" in first["agents"]
    assert first["app_name"] == "bot"  # no name in karta.toml: the project's
    # The same content again is recognised, not a new version.
    status, again = await _publish(control, org, v1)
    assert status == 200 and again["version"] == 1 and not again["created"]
    assert first["created"]
    status, second = await _publish(control, org, _app(tmp_path, "You are v2."), activate="false")
    assert status == 201 and second["version"] == 2 and not second["active"]
    c = control.client
    r = await c.post("/v1/projects/bot/releases/v2/activate", headers=org.admin)
    assert r.status_code == 200 and r.json()["active"]
    active = await c.get(
        f"/internal/projects/bot/active_release?organization_id={org.id}", headers=control.service
    )
    assert active.json()["version"] == 2
    r = await c.post("/v1/projects/bot/rollback", headers=org.admin)
    assert r.status_code == 200 and r.json()["version"] == 1
    r = await c.post("/v1/projects/bot/rollback", headers=org.admin, json={"to": "v2"})
    assert r.json()["version"] == 2
    r = await c.post("/v1/projects/bot/rollback", headers=org.admin, json={"to": "v9"})
    assert r.status_code == 404 and r.json()["error"] == "release_not_found"
    listed = (await c.get("/v1/projects/bot/releases", headers=org.admin)).json()["data"]
    assert [(x["name"], x["active"]) for x in listed] == [("v1", False), ("v2", True)]
    log = (await c.get("/v1/audit?limit=1000", headers=org.admin)).json()["data"]
    actions = [row["action"] for row in log]
    assert actions.count("release.published") == 2
    assert actions[-3:] == ["release.activated", "release.rolled_back", "release.rolled_back"]
    # The artifact is served to the data plane only for an org that published it.
    digest = first["digest"].removeprefix("sha256:")
    r = await c.get(
        f"/internal/artifacts/{digest}?organization_id={org.id}", headers=control.service
    )
    assert r.status_code == 200 and r.content == v1
    other = await control.signup()
    r = await c.get(
        f"/internal/artifacts/{digest}?organization_id={other.id}", headers=control.service
    )
    assert r.status_code == 404
    # Publishing v1's content again while v2 is active redeploys v1: no new version.
    status, redeployed = await _publish(control, org, v1)
    assert status == 200 and redeployed["version"] == 1 and redeployed["active"]
    assert not redeployed["created"]


async def test_invalid_release_is_recorded_never_activated(
    control: ControlPlane, tmp_path: Path
) -> None:
    org = await _project(control)
    await _publish(control, org, _app(tmp_path, "good"))
    status, body = await _publish(control, org, _app(tmp_path, "bad", **{"karta.jsonc": "{oops"}))
    assert status == 422 and body["error"] == "release_invalid"
    assert "karta.jsonc" in body["message"]
    assert body["release"]["status"] == "failed" and body["release"]["version"] == 2
    assert "karta.jsonc" in body["release"]["build_log"]
    r = await control.client.post("/v1/projects/bot/releases/v2/activate", headers=org.admin)
    assert r.status_code == 409 and r.json()["error"] == "release_failed"
    r = await control.client.post("/v1/projects/bot/rollback", headers=org.admin, json={"to": 2})
    assert r.status_code == 409
    active = await control.client.get(
        f"/internal/projects/bot/active_release?organization_id={org.id}", headers=control.service
    )
    assert active.json()["version"] == 1


async def test_required_env_must_be_bound(control: ControlPlane, tmp_path: Path) -> None:
    org = await _project(control)
    toml = '[env]\nSTRIPE_KEY = { required = true, description = "payments" }\n'
    data = _app(tmp_path, "needs env", **{"karta.toml": toml})
    status, body = await _publish(control, org, data)
    assert status == 422 and "STRIPE_KEY" in body["message"]
    r = await control.client.put(
        "/v1/projects/bot/env/STRIPE_KEY", headers=org.admin, json={"value": "sk_live_abcdefghij42"}
    )
    assert r.status_code == 200 and r.json()["value_hint"] == "…42"
    status, body = await _publish(control, org, data)
    assert status == 201 and body["version"] == 2 and body["active"]


async def test_env_vars_are_encrypted_and_never_shown(control: ControlPlane) -> None:
    org = await _project(control)
    secret = "super-secret-value-9876"
    c = control.client
    await c.put("/v1/projects/bot/env/API_TOKEN", headers=org.admin, json={"value": secret})
    await c.put("/v1/projects/bot/env/SHORT", headers=org.admin, json={"value": "abc"})
    listed = (await c.get("/v1/projects/bot/env", headers=org.admin)).json()
    assert secret not in str(listed) and "abc" not in str(listed)
    assert [v["name"] for v in listed["data"]] == ["API_TOKEN", "SHORT"]
    async with control.app.state.db() as session:
        rows = (await session.scalars(select(ProjectEnvVar))).all()
    assert rows and all(secret.encode() not in row.ciphertext for row in rows)
    r = await c.get(f"/internal/projects/bot/env?organization_id={org.id}", headers=control.service)
    assert r.json()["env"] == {"API_TOKEN": secret, "SHORT": "abc"}
    for bad in ("KARTA_HOME", "ANTHROPIC_BASE_URL", "LD_PRELOAD", "PATH", "1BAD", "with-dash"):
        r = await c.put(f"/v1/projects/bot/env/{bad}", headers=org.admin, json={"value": "x"})
        assert r.status_code == 422 and r.json()["error"] == "invalid_env_name"
    assert (await c.delete("/v1/projects/bot/env/SHORT", headers=org.admin)).status_code == 204
    assert (await c.delete("/v1/projects/bot/env/SHORT", headers=org.admin)).status_code == 404
    log = (await c.get("/v1/audit?limit=1000", headers=org.admin)).json()
    assert secret not in str(log)


async def test_concurrent_publishes_get_distinct_versions(
    control: ControlPlane, tmp_path: Path
) -> None:
    org = await _project(control)
    archives = [_app(tmp_path, f"content {n}") for n in range(4)]
    results = await asyncio.gather(*(_publish(control, org, a) for a in archives))
    assert sorted(body["version"] for _, body in results) == [1, 2, 3, 4]


async def test_hostile_uploads(control: ControlPlane, tmp_path: Path) -> None:
    org = await _project(control)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("../../escape")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    status, body = await _publish(control, org, buffer.getvalue())
    assert status == 422 and "escapes" in body["message"]
    status, body = await _publish(control, org, b"definitely not gzip")
    assert status == 422 and body["release"]["status"] == "failed"
    settings = control.app.state.settings
    control.app.state.settings = dataclasses.replace(settings, release_max_bytes=1_000)
    status, body = await _publish(control, org, _app(tmp_path, secrets.token_hex(4_000)))
    assert status == 413 and body["error"] == "archive_too_large"
    status, body = await _publish(control, org, b"x", project="nope")
    assert status == 404

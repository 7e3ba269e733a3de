"""`/readyz` of a data plane whose control plane dies and comes back, on real processes (no
harness runs): degraded, naming the control plane, then ready again without a restart."""

from __future__ import annotations

import httpx

from tests.conftest import Database
from tests.integration.test_planes import SplitPlanes, eventually

READY = {"database": "ok", "coordinator": "ok", "control_plane": "ok", "harness": "ok"}


def readiness(url: str) -> tuple[int, dict]:
    """The status and the answer, without its `sandbox` line (see tests/sandbox) and its
    harness counts (tests/unit/test_readiness.py)."""
    response = httpx.get(f"{url}/readyz", timeout=5)
    body = response.json()
    assert isinstance(body.pop("sandbox"), str)
    assert set(body.pop("harnesses")) == {"live", "pooled", "starting", "queued"}
    return response.status_code, body


def test_readiness_follows_the_control_plane(model, tmp_path):
    planes = SplitPlanes(tmp_path, model, Database("sqlite"))
    try:
        planes.start_control()
        planes.start_data()
        assert readiness(planes.url) == (200, {"status": "ready", "checks": READY})

        planes.kill_control()
        down = (503, {"status": "degraded", "checks": {**READY, "control_plane": "unreachable"}})
        eventually(lambda: readiness(planes.url) == down, "the data plane to report the outage")
        assert httpx.get(f"{planes.url}/healthz").status_code == 200, "still alive"

        planes.start_control()
        eventually(lambda: readiness(planes.url)[0] == 200, "the data plane to be ready again")
    finally:
        planes.stop()

"""Liveness and readiness probes (no auth).

`/healthz` says the process serves HTTP. `/readyz` says whether it can serve sessions: its
database answers, its coordinator answers (Redis, for replicas; always, in one process), the
control plane answers (keys, budgets and releases come from it), and the served app's harness
binary is installed. Anything else is 503 with the checks that failed.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from karta.dataplane.control.readiness import OK, ControlPlaneProbe

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)

DISABLED = "disabled"  # `--open`: no control plane by design, nothing to wait for
HEALTHY = {OK, DISABLED}


@router.get("/healthz")
async def healthz() -> dict[str, object]:
    return {"status": "ok", "api_version": 1}


async def _control_plane(probe: ControlPlaneProbe | None) -> str:
    return DISABLED if probe is None else await probe.state()


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    runtime = request.app.state.runtime
    problem = await runtime.database_ok()
    if problem is not None:
        log.warning("readiness: the database does not answer: %s", problem)
    coordinator = await runtime.coordinator_ok()
    if coordinator is not None:
        log.warning("readiness: the coordinator does not answer: %s", coordinator)
    checks = {
        "database": OK if problem is None else "unavailable",
        "coordinator": OK if coordinator is None else "unavailable",
        "control_plane": await _control_plane(request.app.state.control_probe),
        "harness": OK if runtime.ready() else "missing",
    }
    # Whether harnesses are isolated is part of being ready to serve: say it, in plain words.
    body = {"checks": checks, "sandbox": runtime.sandbox, "harnesses": runtime.harnesses()}
    if all(value in HEALTHY for value in checks.values()):
        return JSONResponse({"status": "ready", **body})
    return JSONResponse({"status": "degraded", **body}, 503)

"""Liveness and readiness probes (no auth)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, object]:
    return {"status": "ok", "api_version": 1}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    runtime = request.app.state.runtime
    problem = await runtime.database_ok()
    if problem is not None:
        return JSONResponse({"error": "unavailable", "message": f"database: {problem}"}, 503)
    if not runtime.ready():
        return JSONResponse({"error": "unavailable", "message": "harness binary not found"}, 503)
    # Whether harnesses are isolated is part of being ready to serve: say it, in plain words.
    return JSONResponse({"status": "ready", "sandbox": runtime.sandbox})

"""Liveness and readiness probes (no auth)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, object]:
    return {"status": "ok", "api_version": 1}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    try:
        async with request.app.state.db() as db:
            await db.execute(text("SELECT 1"))
    except Exception as exc:
        return JSONResponse({"error": "unavailable", "message": f"database: {exc}"}, 503)
    if not request.app.state.runtime.apps.ready():
        return JSONResponse({"error": "unavailable", "message": "harness binary not found"}, 503)
    return JSONResponse({"status": "ready"})

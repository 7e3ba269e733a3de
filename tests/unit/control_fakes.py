"""Test doubles for the data plane's side of the control plane: a clock to move by hand and a
fake control plane (a tiny FastAPI app behind an httpx transport that can fail like a dead
network)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse, Response


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def key(n: int) -> str:
    return f"kt_live_{n:032d}"


class FakeControlPlane(httpx.AsyncBaseTransport):
    def __init__(self) -> None:
        self.keys: dict[str, int] = {key(1): 1, key(2): 2}
        self.projects = {(1, "bot"): 11}
        self.budget_ok = True
        self.down = False
        self.calls: list[str] = []
        self.gate: asyncio.Event | None = None
        self.usage: dict[str, dict[str, Any]] = {}
        self.poison: set[str] = set()  # event ids whose batch is refused as malformed (422)
        # Releases: the active (version, digest) per (org, project id), archives by digest, env.
        self.active: dict[tuple[int, int], tuple[int, str]] = {}
        self.artifacts: dict[str, bytes] = {}
        self.env: dict[tuple[int, int], dict[str, str]] = {}
        api = FastAPI()

        def project_id(organization_id: int, ref: str) -> int:
            for (org, slug), pid in self.projects.items():
                if org == organization_id and ref in (slug, str(pid)):
                    return pid
            raise HTTPException(404)

        @api.post("/internal/keys/validate")
        async def validate(body: dict[str, Any]) -> dict[str, Any]:
            if self.gate is not None:
                await self.gate.wait()
            org = self.keys.get(body["key"])
            if org is None:
                return {"valid": False}
            return {
                "valid": True,
                "organization_id": org,
                "organization_slug": f"org{org}",
                "api_key_id": org * 10,
                "api_key_prefix": body["key"][:14],
                "scopes": ["write"],
                "budget_ok": True,
                "budget_reason": None,
            }

        @api.get("/internal/projects/{ref}")
        async def project(ref: str, organization_id: int) -> dict[str, Any]:
            found = self.projects.get((organization_id, ref))
            if found is None:
                raise HTTPException(404)
            return {"id": found, "slug": ref, "organization_id": organization_id}

        @api.get("/internal/projects/{ref}/active_release")
        async def active_release(ref: str, organization_id: int) -> Any:
            pid = project_id(organization_id, ref)
            if (organization_id, pid) not in self.active:
                return JSONResponse({"error": "no_active_release"}, 409)
            version, digest = self.active[(organization_id, pid)]
            return {
                "project_id": pid,
                "project_slug": ref,
                "organization_id": organization_id,
                "version": version,
                "digest": digest,
                "harness": "claude-code",
                "status": "ready",
            }

        @api.get("/internal/projects/{ref}/env")
        async def env(ref: str, organization_id: int) -> dict[str, Any]:
            return {"env": self.env.get((organization_id, project_id(organization_id, ref)), {})}

        @api.get("/internal/artifacts/{digest}")
        async def artifact(digest: str, organization_id: int) -> Response:
            if digest not in self.artifacts:
                raise HTTPException(404)
            return Response(self.artifacts[digest], media_type="application/gzip")

        @api.post("/internal/budget/reserve")
        async def reserve(body: dict[str, Any]) -> Any:
            if not self.budget_ok:
                return JSONResponse({"error": "budget_exhausted", "reason": "tokens"}, 402)
            return {"reservation_id": body["reservation_id"], "tokens": 1, "cost_micros": 1}

        @api.post("/internal/usage/events")
        async def usage(body: dict[str, Any]) -> Any:
            if any(e["event_id"] in self.poison for e in body["events"]):
                return JSONResponse({"error": "validation_error"}, 422)
            fresh = [e for e in body["events"] if e["event_id"] not in self.usage]
            self.usage.update({e["event_id"]: e for e in fresh})
            return {"accepted": len(fresh), "duplicates": len(body["events"]) - len(fresh)}

        self.asgi = httpx.ASGITransport(app=api)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request.url.path)
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        return await self.asgi.handle_async_request(request)

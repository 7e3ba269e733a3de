"""Pushing cache invalidations to the data planes, so a revoked key or a changed budget takes
effect at once instead of after the data plane's cache window."""

from __future__ import annotations

import asyncio
import logging

import httpx

from karta.core import internal_api as api
from karta.core.http_keepalive import karta_client

log = logging.getLogger(__name__)
PUSH_TIMEOUT = 2.0


class DataPlanes:
    def __init__(self, urls: tuple[str, ...], token: str | None) -> None:
        self.urls = urls
        self.token = token
        self._client = karta_client(timeout=PUSH_TIMEOUT)

    async def invalidate(self, organization_id: int) -> None:
        """Tell every data plane to drop the org's cached principals. Best effort: a plane that
        misses the push still expires its cache within its window."""
        if not self.urls or self.token is None:
            return
        await asyncio.gather(*(self._push(url, organization_id) for url in self.urls))

    async def _push(self, url: str, organization_id: int) -> None:
        try:
            response = await self._client.post(
                url + api.INVALIDATE,
                json=api.Invalidate(organization_id=organization_id).model_dump(mode="json"),
                headers={"Authorization": f"Bearer {self.token}"},
            )
            if response.status_code != 200:
                log.warning("invalidation push to %s answered %s", url, response.status_code)
        except httpx.HTTPError as exc:
            log.warning("invalidation push to %s failed: %s", url, type(exc).__name__)

    async def close(self) -> None:
        await self._client.aclose()

"""The SDK against a real server: both planes of `karta serve` (built by `cli.serve.embedded`,
on loopback ports, over real HTTP) with a `FakeHarness` playing the harness, run on an event
loop of their own in a background thread, so sync and async clients alike talk to them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from karta.cli.serve import Embedded, embedded
from karta.client import AsyncKarta, Karta
from karta.testing import FakeHarness
from tests.conftest import SUPPORT_BOT, free_port

GUARD = 30.0  # how long start-up may take before the test fails instead of hanging


class FakeServer:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.fake = FakeHarness()
        self._stack = contextlib.ExitStack()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._served: Embedded | None = None
        self.key = ""

    @property
    def url(self) -> str:
        assert self._served is not None
        return self._served.url

    @property
    def control_url(self) -> str:
        assert self._served is not None
        return self._served.control_url

    def start(self) -> FakeServer:
        env = {"KARTA_HOME": str(self.home), "KARTA_SANDBOX": "none", "KARTA_APPROVAL_TTL": "600"}
        with pytest.MonkeyPatch.context() as patch:
            for name in [n for n in os.environ if n.startswith("KARTA_")]:
                patch.delenv(name)
            for name, value in env.items():
                patch.setenv(name, value)
            self._served = embedded(
                SUPPORT_BOT,
                self._stack,
                host="127.0.0.1",
                port=free_port(),
                control_port=free_port(),
                open_auth=False,
                log_level="warning",
                model_env={},
                harnesses=lambda kind: self.fake,
            )
        self._thread.start()
        for plane in self._served.planes:
            started = asyncio.run_coroutine_threadsafe(self._start(plane), self._loop)
            started.result(GUARD)
        self.key = self._served.record()
        return self

    async def _start(self, plane) -> None:  # type: ignore[no-untyped-def]
        plane.task = asyncio.get_running_loop().create_task(plane.serve(sockets=[plane.sock]))
        await asyncio.wait_for(plane.up.wait(), GUARD)

    async def _stop(self) -> None:
        assert self._served is not None
        for plane in reversed(self._served.planes):
            plane.should_exit = True
            await plane.task

    def stop(self) -> None:
        if self._served is not None:
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(GUARD)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(GUARD)
        self._stack.close()

    def set_soon(self, event: asyncio.Event) -> None:
        """Set an event a `Wait` step waits on (it belongs to the server's loop)."""
        self._loop.call_soon_threadsafe(event.set)

    def client(self, **options) -> Karta:  # type: ignore[no-untyped-def]
        options = {"api_key": self.key, **options}
        return Karta(base_url=self.url, control_url=self.control_url, **options)

    def async_client(self, **options) -> AsyncKarta:  # type: ignore[no-untyped-def]
        options = {"api_key": self.key, **options}
        return AsyncKarta(base_url=self.url, control_url=self.control_url, **options)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeServer]:
    server = FakeServer(tmp_path_factory.mktemp("karta-sdk")).start()
    yield server
    server.stop()


@pytest.fixture
def karta(served: FakeServer) -> Iterator[Karta]:
    with served.client() as client:
        yield client


@pytest.fixture
async def akarta(served: FakeServer):  # type: ignore[no-untyped-def]
    async with served.async_client() as client:
        yield client

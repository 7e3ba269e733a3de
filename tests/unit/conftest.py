"""Fixtures of the data plane's unit tests: one fake clock, and the real control plane (see
`control_plane_double.py`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from karta.testing import FakeClock
from tests.unit.control_plane_double import ControlPlaneDouble, control_plane


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def control(tmp_path: Path) -> AsyncIterator[ControlPlaneDouble]:
    async with control_plane(tmp_path / "control") as double:
        yield double

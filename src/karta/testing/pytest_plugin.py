"""pytest plugin (registered as `karta`): the `scripted_model` fixture."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def scripted_model() -> Iterator[Any]:
    """A running ScriptedModel; point ANTHROPIC_BASE_URL at `scripted_model.url`."""
    from karta.testing import ScriptedModel

    with ScriptedModel() as model:
        yield model

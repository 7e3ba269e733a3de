"""Schemathesis over the management API's OpenAPI document, in process (ASGI, no network), as
the owner of a real organization: whatever it generates — valid and invalid ids, bodies, query
strings — the answer is never a 5xx and always matches the schema the document declares.

Each operation gets a bounded, derandomized run, so the test is deterministic and quick; the
internal API (another surface, not in the document) is excluded explicitly all the same.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis.generation.modes import GenerationMode
from schemathesis.python import asgi

from karta.controlplane.app import create_control_app
from karta.controlplane.settings import ControlSettings
from karta.core.internal_auth import InternalAccess
from tests.conftest import Database
from tests.fuzzing import CHECKS, coverage_failures, generated_failures

EXAMPLES = 6  # generated per operation, for valid and for invalid input each


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Any, dict[str, str]]]:
    """The app, and the login headers of the owner of its first organization."""
    db = Database(request.param)
    home: Path = tmp_path_factory.mktemp("fuzzed-control-plane")
    settings_ = ControlSettings(
        home=home,
        database_url=db.url,
        internal=InternalAccess.build([secrets.token_hex(8)]),
        session_token_secret=secrets.token_hex(32),
    )
    app = create_control_app(settings_)
    email, password = "owner@fuzz.example", "correct horse"
    # Schemathesis's client runs the app (and its lifespan) on its own event loop; setting up
    # through it keeps every connection on that loop.
    with asgi.get_client(app) as client:
        signup = {"email": email, "password": password, "org_name": "Fuzz"}
        slug = client.post("/v1/signup", json=signup).json()["organization"]["slug"]
        login = client.post("/v1/auth/login", json={"email": email, "password": password})
    headers = {"Authorization": f"Bearer {login.json()['token']}", "Karta-Org": slug}
    try:
        yield app, headers
    finally:
        asgi.shutdown_lifespans()
        db.drop()


def _operations(app: Any) -> list[Any]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app).exclude(path_regex="^/internal/")
    return [result.ok() for result in schema.get_all_operations()]


def _check(headers: dict[str, str]) -> Any:
    # A copy: the transport adds its own headers to the dict it is given.
    return lambda case: case.call_and_validate(headers=dict(headers), checks=CHECKS)


def test_boundaries_and_malformed_input(target: tuple[Any, dict[str, str]]) -> None:
    app, headers = target
    failures = coverage_failures(_operations(app), _check(headers))
    assert failures == [], "\n\n".join(failures)


@pytest.mark.parametrize("mode", list(GenerationMode))
def test_generated_input(target: tuple[Any, dict[str, str]], mode: GenerationMode) -> None:
    app, headers = target
    failures = generated_failures(_operations(app), mode, _check(headers), lambda _: EXAMPLES)
    assert failures == [], "\n\n".join(failures)

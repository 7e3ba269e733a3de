"""Schemathesis over the data plane's OpenAPI document, against a real `karta serve` (both
planes, the real Claude Code binary, the scripted model), authenticated with the local key:
whatever it generates, the answer is never a 5xx and always matches the declared schema.

Operations that can start a harness turn (messages, the adapters, Managed-Agents events) get
two examples per generation mode and no coverage phase, so the run stays within a few turns;
every other operation gets the coverage phase and six examples per mode. Streams that never
end by design (`follow=true`) are not generated.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from schemathesis.generation.modes import GenerationMode

from karta.testing import Reply, text
from tests.fuzzing import CHECKS, coverage_failures, generated_failures

pytestmark = [pytest.mark.harness]

EXAMPLES, TURN_EXAMPLES = 6, 2
TIMEOUT = 60  # seconds per request: a turn on a loaded machine, never an endless stream
TURN_PATHS = ("/messages", "/chat/completions", "/responses", "/sessions/{session_id}/events")


def starts_turns(operation: Any) -> bool:
    return operation.method.upper() == "POST" and operation.path.endswith(TURN_PATHS)


def endless(case: Any) -> bool:
    follow = (case.query or {}).get("follow")
    return follow is True or str(follow).lower() in ("true", "1", "yes", "on")


@pytest.fixture(scope="module")
def target(server: Any) -> tuple[list[Any], dict[str, str]]:
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json").exclude(
        path_regex="^/v1/internal/"
    )
    operations = [result.ok() for result in schema.get_all_operations()]
    return operations, {"Authorization": f"Bearer {server.api_key}"}


def checker(headers: dict[str, str]) -> Any:
    def check(case: Any) -> None:
        if not endless(case):
            case.call_and_validate(headers=dict(headers), checks=CHECKS, timeout=TIMEOUT)

    return check


@pytest.fixture(autouse=True)
def _answers(model: Any) -> None:
    for _ in range(40):  # whatever turns the run starts have a reply waiting
        model.enqueue(Reply([text("Fuzzed.")]))


def test_boundaries_and_malformed_input(target: tuple[list[Any], dict[str, str]]) -> None:
    operations, headers = target
    cheap = [op for op in operations if not starts_turns(op)]
    failures = coverage_failures(cheap, checker(headers))
    assert failures == [], "\n\n".join(failures)


@pytest.mark.parametrize("mode", list(GenerationMode))
def test_generated_input(target: tuple[list[Any], dict[str, str]], mode: GenerationMode) -> None:
    operations, headers = target
    failures = generated_failures(
        operations,
        mode,
        checker(headers),
        lambda op: TURN_EXAMPLES if starts_turns(op) else EXAMPLES,
    )
    assert failures == [], "\n\n".join(failures)

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
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance

from karta.testing import Reply, text

pytestmark = [pytest.mark.harness]

CHECKS = [not_a_server_error, response_schema_conformance]
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


def check(case: Any, headers: dict[str, str]) -> None:
    if endless(case):
        return
    case.call_and_validate(headers=dict(headers), checks=CHECKS, timeout=TIMEOUT)


@pytest.fixture(autouse=True)
def _answers(model: Any) -> None:
    for _ in range(40):  # whatever turns the run starts have a reply waiting
        model.enqueue(Reply([text("Fuzzed.")]))


def test_boundaries_and_malformed_input(target: tuple[list[Any], dict[str, str]]) -> None:
    operations, headers = target
    failures: list[str] = []
    for operation in operations:
        if starts_turns(operation):
            continue
        config = operation.schema.config.generation_for(operation=operation)
        cases = operation.schema.iter_coverage_cases(
            operation, generation_modes=list(GenerationMode), generation_config=config
        )
        for case in cases:
            try:
                check(case, headers)
            except Exception as exc:  # every case runs; all failures are reported at once
                failures.append(f"{operation.label}: {exc}")
    assert failures == [], "\n\n".join(failures)


@pytest.mark.parametrize("mode", list(GenerationMode))
def test_generated_input(target: tuple[list[Any], dict[str, str]], mode: GenerationMode) -> None:
    operations, headers = target
    failures: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=TURN_EXAMPLES if starts_turns(operation) else EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],
        )
        def call(case: Any) -> None:
            check(case, headers)

        try:
            call()
        except Unsatisfiable:  # nothing to make invalid: an operation without parameters
            assert mode is GenerationMode.NEGATIVE, operation.label
        except Exception as exc:
            failures.append(f"{operation.label}: {exc}")
    assert failures == [], "\n\n".join(failures)

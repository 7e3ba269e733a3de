"""Schemathesis driven the same way for both planes' fuzz tests: every operation's coverage
cases, and a bounded, derandomized number of generated ones per mode, every failure collected
before the test fails."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance

CHECKS = [not_a_server_error, response_schema_conformance]
Check = Callable[[Any], None]  # calls a case and validates the answer; raises on a failure


def coverage_failures(operations: Iterable[Any], check: Check) -> list[str]:
    """Schemathesis's coverage phase: deterministic edge cases of every parameter and body —
    each bound and one past it, wrong types, missing and unknown fields."""
    failures: list[str] = []
    for operation in operations:
        config = operation.schema.config.generation_for(operation=operation)
        cases = operation.schema.iter_coverage_cases(
            operation, generation_modes=list(GenerationMode), generation_config=config
        )
        for case in cases:
            try:
                check(case)
            except Exception as exc:  # every case runs; all failures are reported at once
                failures.append(f"{operation.label}: {exc}")
    return failures


def generated_failures(
    operations: Iterable[Any], mode: GenerationMode, check: Check, examples: Callable[[Any], int]
) -> list[str]:
    """Hypothesis-generated requests that fit the schema (positive) or break it (negative),
    `examples(operation)` of them per operation."""
    failures: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=examples(operation),
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],  # no shrinking: report, don't minimize
        )
        def call(case: Any) -> None:
            check(case)

        try:
            call()
        except Unsatisfiable:  # nothing to make invalid: an operation without parameters
            assert mode is GenerationMode.NEGATIVE, operation.label
        except Exception as exc:
            failures.append(f"{operation.label}: {exc}")
    return failures

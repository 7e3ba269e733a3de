"""The management API's OpenAPI document describes every answer: each success names a model
(or is a 204 with no body) and each declared error has Karta's error shape — never FastAPI's
default `{"detail": …}`, which Karta does not send."""

from __future__ import annotations

from typing import Any

from tests.controlplane.conftest import ControlPlane


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
    ]


async def test_every_response_has_a_schema(control: ControlPlane) -> None:
    spec = (await control.client.get("/openapi.json")).json()
    operations = _operations(spec)
    assert len(operations) > 30
    for method, path, op in operations:
        for status, response in op["responses"].items():
            where = (method, path, status)
            if status == "204":
                assert "content" not in response, where
                continue
            schema = response["content"]["application/json"]["schema"]
            named = [schema] if "$ref" in schema else schema.get("oneOf", [])
            assert named and all("$ref" in s for s in named), where  # models, not `object`
            if status.startswith(("4", "5")):
                name = schema["$ref"].rsplit("/", 1)[-1]
                assert name != "HTTPValidationError", where
                assert {"error", "message"} <= set(spec["components"]["schemas"][name]["required"])
        assert any(s.startswith("2") for s in op["responses"]), (method, path)


async def test_the_internal_api_stays_out_of_the_document(control: ControlPlane) -> None:
    spec = (await control.client.get("/openapi.json")).json()
    assert not [path for path in spec["paths"] if path.startswith("/internal")]

"""The lint behind default-deny: only the org-scoped repository queries tenant tables (those with
an `organization_id`). Credential resolution may look keys and memberships up to learn *which*
org a caller belongs to; nothing else may name a tenant model in a query."""

from __future__ import annotations

import ast
from pathlib import Path

from karta.controlplane import models

PACKAGE = Path(models.__file__).resolve().parent
ALLOWED = {
    "repository.py",
    "repository_base.py",
    "repository_identity.py",
    "repository_money.py",
    "repository_releases.py",
    "repository_providers.py",
    "credentials.py",
}
QUERY_CALLS = {"select", "update", "delete", "insert", "get", "with_for_update"}
TENANT_MODELS = {
    name
    for name, obj in vars(models).items()
    if isinstance(obj, type)
    and issubclass(obj, models.Base)
    and obj is not models.Base
    and "organization_id" in obj.__table__.c
    and name != "Organization"
}


def _queries_in(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name not in QUERY_CALLS:
            continue
        for arg in node.args:
            if isinstance(arg, ast.Name) and arg.id in TENANT_MODELS:
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {name}({arg.id})")
    return found


def test_the_lint_sees_tenant_models() -> None:
    assert {"ApiKey", "Project", "Budget", "UsageEvent", "AuditEvent"} <= TENANT_MODELS
    assert _queries_in(PACKAGE / "repository.py")  # it does recognise a query


def test_only_the_repository_queries_tenant_tables() -> None:
    offenders = [
        hit
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name not in ALLOWED and "migrations" not in path.parts
        for hit in _queries_in(path)
    ]
    assert offenders == []

"""The architecture as a test: routes reach sessions only through `SessionHandle`s.

No module that serves HTTP on the data plane may touch the event log, the runtime's repository
or the database directly; that is what keeps every read and write scoped to its caller."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "karta"
ROUTE_MODULES = sorted(
    [*(SRC / "dataplane" / "routes").glob("*.py"), *(SRC / "dataplane" / "adapters").glob("*.py")]
)
FORBIDDEN_IMPORTS = (
    "sqlalchemy",
    "karta.dataplane.store",
    "karta.dataplane.eventlog",
    "karta.dataplane.runtime.repository",
)
FORBIDDEN_ATTRIBUTES = {"events", "repo", "db", "pipeline", "approvals"}


def offences(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [alias.name for alias in getattr(node, "names", [])]
            found += [f"imports {n}" for n in names if n.startswith(FORBIDDEN_IMPORTS)]
        elif (
            isinstance(node, ast.Attribute)
            and node.attr in FORBIDDEN_ATTRIBUTES
            and "runtime" in ast.unparse(node.value)  # `runtime.events`, `….runtime.db`, …
        ):
            found.append(f"reaches {ast.unparse(node)} (line {node.lineno})")
    return found


def test_route_modules_are_found():
    assert len(ROUTE_MODULES) > 5


@pytest.mark.parametrize("path", ROUTE_MODULES, ids=lambda p: p.name)
def test_routes_reach_sessions_only_through_handles(path):
    assert offences(path) == []


def test_the_check_catches_a_route_reading_the_log(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from karta.dataplane.store.models import SessionRow\n"
        "async def h(request):\n"
        "    return await request.app.state.runtime.events.read('sess_x')\n"
    )
    assert offences(bad) == [
        "imports karta.dataplane.store.models",
        "reaches request.app.state.runtime.events (line 3)",
    ]


def karta_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("karta"):
            found.add(node.module or "")
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("karta")}
    return found


# (package, what it may never import, unless allowed): shared primitives depend on nothing of
# Karta's, and the planes talk over HTTP, never through each other's modules.
BOUNDARIES = [
    ("core", ("karta.",), ("karta.core",)),
    # The SDK talks to the planes over HTTP only: it stands without the server's code.
    ("client", ("karta.",), ("karta.core", "karta.client")),
    ("controlplane", ("karta.dataplane",), ()),
    ("dataplane", ("karta.controlplane",), ()),
]


@pytest.mark.parametrize(("package", "forbidden", "allowed"), BOUNDARIES, ids=lambda b: str(b))
def test_packages_keep_their_boundaries(package, forbidden, allowed):
    crossings = {
        f"{path.relative_to(SRC)} imports {name}"
        for path in (SRC / package).rglob("*.py")
        for name in karta_imports(path)
        if name.startswith(forbidden) and not name.startswith(allowed)
    }
    assert crossings == set()

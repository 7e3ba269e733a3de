"""`karta init [DIR]`: scaffold a Claude Code harness app from the packaged template."""

from __future__ import annotations

from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

TEMPLATE = "claude-code"


def _target_name(name: str) -> str:
    """Packaged templates avoid dot-names (package data skips them): `dot-x` becomes `.x`."""
    return "." + name[len("dot-") :] if name.startswith("dot-") else name


def _walk(node: Traversable, prefix: Path) -> list[tuple[Path, str]]:
    files: list[tuple[Path, str]] = []
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        target = prefix / _target_name(child.name)
        if child.is_dir():
            files += _walk(child, target)
        else:
            files.append((target, child.read_text()))
    return files


def template_files(name: str) -> list[tuple[Path, str]]:
    root = resources.files("karta.cli") / "templates" / TEMPLATE
    return [(path, text.replace("{name}", name)) for path, text in _walk(root, Path())]


def scaffold(directory: Path, name: str | None = None) -> list[Path]:
    """Write the template into `directory`; refuses (FileExistsError) to overwrite anything."""
    app_name = name or directory.resolve().name
    files = template_files(app_name)
    clashes = [str(path) for path, _ in files if (directory / path).exists()]
    if clashes:
        raise FileExistsError(", ".join(clashes))
    written = []
    for path, text in files:
        target = directory / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        written.append(target)
    return written

"""Every command's help fits an 80-column terminal and shows no value placeholder after a
flag: `--open`, not `--open <bool>` (a flag takes no value)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from karta.cli.main import app


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    for name, sub in getattr(command, "commands", {}).items():  # a group's subcommands
        yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(typer.main.get_command(app)))


def test_the_walk_finds_the_commands() -> None:
    assert {("serve",), ("members", "invite"), ("invitations", "accept"), ("projects", "show")} <= (
        set(COMMANDS)
    )


@pytest.mark.parametrize("path", COMMANDS, ids=lambda path: " ".join(path) or "karta")
def test_help_has_no_bool_placeholders(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80

"""Help without a value placeholder after flags.

Typer's rich help prints each option's value type (`--port <int>`), and in this version it
prints one after flags too (`--open <bool>`, `--help <bool>`), though a flag takes no value:
`--open true` is an error. Typer's plain-text help already leaves flags bare; `install` makes
the rich help agree, for every command at once, `--help` included.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperOption

_typed = TyperOption.display_type_rich


def _display_type(option: TyperOption, ctx: Any) -> str | None:
    return None if option.is_flag else _typed(option, ctx)


def install() -> None:
    TyperOption.display_type_rich = _display_type  # type: ignore[method-assign,assignment]

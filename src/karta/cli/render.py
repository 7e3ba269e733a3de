"""Render a turn's events in the terminal as they arrive, and ask for approvals."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.status import Status

from karta.client.resources.sessions import DecisionName
from karta.core import events as ev
from karta.core.events import Event

CHOICES: dict[str, DecisionName] = {"y": "approve_once", "a": "approve_session", "n": "deny"}
WAITING = "waiting for the reply…"


class EventRenderer:
    """Streams text deltas inline; shows tool calls, handoffs, errors and a usage line."""

    def __init__(self, console: Console, *, thinking: bool = False, verbose: bool = False):
        self.console = console
        self.thinking = thinking
        self.verbose = verbose
        self._open_part: str | None = None
        self._status: Status | None = None

    def wait(self) -> None:
        """Show a spinner until this renderer next prints or asks something: the reply's first
        token, a tool call, an approval request, the end of the turn."""
        self.settle()
        self._status = self.console.status(WAITING)
        self._status.start()

    def settle(self) -> None:
        """Take the spinner down, if it is up."""
        if self._status is not None:
            self._status.stop()
            self._status = None

    def _print(self, *objects: object, **options: Any) -> None:
        # Every line goes through here, so the spinner is never drawn over the reply.
        self.settle()
        self.console.print(*objects, **options)

    def _end_line(self) -> None:
        if self._open_part is not None:
            self._print()
            self._open_part = None

    def render(self, event: Event) -> Event | None:
        """Show one event; returns it when it asks for a decision (`input_required`)."""
        part = event.part
        if event.type == ev.TEXT:
            if self._open_part not in (None, part.get("id")):
                self._print()
            self._print(part.get("text", ""), end="", markup=False, highlight=False)
            self._open_part = part.get("id")
        elif event.type == ev.REASONING and self.thinking:
            self._end_line()
            self._print(f"[dim italic]Thinking: {escape(part.get('text', ''))}[/]")
        elif event.type == ev.TOOL_USE:
            self._tool(part)
        elif event.type == ev.INPUT_REQUIRED:
            self._end_line()
            self.settle()
            return event
        elif event.type == ev.ERROR:
            self._end_line()
            self._print(f"[bold red]Error:[/] {escape(event.data.get('message', ''))}")
        elif event.type == ev.SYSTEM and event.data.get("subtype") == "handoff":
            self._end_line()
            self._print(f"[cyan]→ handed off to {escape(str(event.data.get('to')))}[/]")
        elif event.type == ev.DONE:
            self._end_line()
            self._usage(event)
        elif self.verbose:
            self._end_line()
            self._print(f"[dim]• {event.type} {escape(str(event.data))[:200]}[/]")
        return None

    def _tool(self, part: dict[str, object]) -> None:
        state = part.get("state") if isinstance(part.get("state"), dict) else {}
        assert isinstance(state, dict)
        status = state.get("status")
        self._end_line()
        if status == "running":
            tool_input = state.get("input") if isinstance(state.get("input"), dict) else {}
            assert isinstance(tool_input, dict)
            target = next(
                (
                    str(v)
                    for k, v in tool_input.items()
                    if k in ("file_path", "path", "command", "pattern", "url")
                ),
                "",
            )
            self._print(f"[magenta]⚙ {escape(str(part.get('tool')))}[/] {escape(target)}")
        else:
            output = str(state.get("output") or "").strip().splitlines()
            excerpt = " ".join(output[:2])[:160]
            style = "red" if status == "error" else "dim"
            self._print(f"[{style}]  ↳ {escape(excerpt) or status}[/]")

    def _usage(self, event: Event) -> None:
        usage = event.data.get("usage") or {}
        status = event.data.get("status")
        tokens = usage.get("total_tokens")
        summary = f"{tokens} tokens" if tokens is not None else "no usage reported"
        note = "" if status == "completed" else f" · {status}"
        self._print(f"[dim]({summary}{note})[/]")


def ask_decision(console: Console, event: Event, ask: Callable[[str], str] = input) -> DecisionName:
    """Show an approval request and read `y` (once), `a` (always) or `n` (deny, the default)."""
    data = event.data
    console.print(f"[bold yellow]Approval required:[/] {escape(str(data.get('message', '')))}")
    while True:
        answer = ask("[y] once / [a] always / [n] deny: ").strip().lower() or "n"
        if answer[:1] in CHOICES:
            return CHOICES[answer[:1]]
        console.print("please answer y, a or n")

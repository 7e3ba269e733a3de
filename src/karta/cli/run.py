"""`karta run DIR "prompt"`: one turn without a server, in a throw-away Karta home."""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from karta.app import load_app
from karta.cli.render import EventRenderer, ask_decision
from karta.dataplane.modelenv import resolve_model_endpoint
from karta.dataplane.principal import OPEN
from karta.dataplane.runtime.factory import open_runtime
from karta.dataplane.runtime.lifecycle import Decision
from karta.dataplane.runtime.turns import TurnRequest
from karta.dataplane.settings import Settings


def decider(console: Console, yes: bool, ask: Callable[[str], str]) -> Callable[..., str]:
    def decide(event: object) -> str:
        if yes:
            return "approve_once"
        if not sys.stdin.isatty() and ask is input:
            console.print(
                "[yellow]Approval required, but there is no terminal to ask: denied "
                "(pass --yes to approve).[/]"
            )
            return "deny"
        return ask_decision(console, event, ask)  # type: ignore[arg-type]

    return decide


async def run_once(
    directory: Path,
    prompt: str,
    console: Console,
    *,
    agent: str | None,
    thinking: bool,
    yes: bool,
    ask: Callable[[str], str] = input,
) -> int:
    app = load_app(directory)
    model = resolve_model_endpoint()
    decide = decider(console, yes, ask)
    renderer = EventRenderer(console, thinking=thinking)
    status = "failed"
    try:
        with tempfile.TemporaryDirectory(prefix="karta-run-") as home:
            settings = Settings(home=Path(home), open_auth=True)
            async with open_runtime(app, settings, model.env) as runtime:
                session, _ = await runtime.create_session(OPEN, {})
                handle = await session.send(
                    TurnRequest(text=prompt, agent=agent, thinking=thinking)
                )
                async for event in session.subscribe(handle.after):
                    if event is None or event.turn_id != handle.turn_id:
                        continue
                    request = renderer.render(event)
                    if request is not None:
                        choice = await asyncio.to_thread(decide, request)
                        await session.decide(request.data["request_id"], Decision(choice))
                    if event.type == "done":
                        status = event.data.get("status", "failed")
                        break
    finally:
        model.close()
    return 0 if status == "completed" else 1

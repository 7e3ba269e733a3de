"""The terminal renderer, the approval prompt and `karta init`."""

from __future__ import annotations

from rich.console import Console
from typer.testing import CliRunner

from karta.app import load_app
from karta.cli.main import app as cli
from karta.cli.render import EventRenderer, ask_decision
from karta.core import events as ev
from karta.core.events import Event


def rendered(events: list[Event], **kw: bool) -> tuple[str, list[Event]]:
    console = Console(record=True, width=100, color_system=None)
    renderer = EventRenderer(console, **kw)
    asked = [e for e in events if renderer.render(e) is not None]
    return console.export_text(), asked


def tool(status: str, **state: object) -> Event:
    return Event(
        "tool_use",
        {
            "part": {
                "id": "t1",
                "type": "tool",
                "tool": "Write",
                "state": {"status": status, **state},
            }
        },
    )


def test_deltas_stream_inline_and_other_events_get_their_own_lines():
    out, asked = rendered(
        [
            Event("system", {"subtype": "init"}),
            Event("system", {"subtype": "handoff", "from": "triage", "to": "billing"}),
            Event("step_start", {"part": {"id": "s"}}),
            ev.text_event("p1", "Hel"),
            ev.text_event("p1", "lo!"),
            tool("running", input={"file_path": "notes/a.md"}),
            tool("completed", output="File created successfully"),
            Event("input_required", {"request_id": "req_1", "message": "Allow Write?"}),
            ev.error_event("the model failed", "model_error"),
            ev.done_event({"input_tokens": 1, "output_tokens": 2, "total_tokens": 3}),
        ]
    )
    assert out.splitlines() == [
        "→ handed off to billing",
        "Hello!",
        "⚙ Write notes/a.md",
        "  ↳ File created successfully",
        "Error: the model failed",
        "(3 tokens)",
    ]
    assert [e.data["request_id"] for e in asked] == ["req_1"]


def test_reasoning_shows_only_when_asked():
    thought = ev.text_event("r", "pondering", kind=ev.REASONING)
    assert "pondering" not in rendered([thought])[0]
    assert "Thinking: pondering" in rendered([thought], thinking=True)[0]


def test_ask_decision_maps_answers_and_defaults_to_deny():
    console = Console(record=True)
    request = Event("input_required", {"message": "Allow Bash on ls?"})
    answers = iter(["", "y", "A", "maybe", "n"])
    decisions = [ask_decision(console, request, lambda _: next(answers)) for _ in range(4)]
    assert decisions == ["deny", "approve_once", "approve_session", "deny"]
    assert "please answer y, a or n" in console.export_text()


def test_init_scaffolds_a_loadable_app_and_never_overwrites(tmp_path):
    runner = CliRunner()
    target = tmp_path / "my-bot"
    result = runner.invoke(cli, ["init", str(target)])
    assert result.exit_code == 0, result.output
    app = load_app(target)
    assert app.name == "my-bot" and app.default_agent.name == "assistant"
    assert (target / ".gitignore").read_text().startswith(".env")
    again = runner.invoke(cli, ["init", str(target)])
    assert again.exit_code == 1 and "refusing to overwrite" in again.output

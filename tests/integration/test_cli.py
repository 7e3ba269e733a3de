"""The CLI and the Python client against a real server: `karta chat` with an approval,
`karta run` without a server, and the client's error mapping."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from karta.cli.main import app as cli
from karta.client import KartaAPIError, KartaClient
from karta.testing import text, tool_use
from tests.conftest import SUPPORT_BOT

pytestmark = pytest.mark.harness


def test_client_round_trip(server, model):
    with KartaClient(server.url, server.api_key) as client:
        assert client.app_info()["name"] == "support-bot"
        session = client.create_session(metadata={"via": "client"})
        model.enqueue([text("Streaming hello")])
        events = list(client.stream(session["id"], "hi"))
        assert events[-1].type == "done"
        assert "".join(e.part.get("text", "") for e in events if e.type == "text") == (
            "Streaming hello"
        )
        replay = list(client.events(session["id"], after=0))
        assert [e.seq for e in replay] == [e.seq for e in events]
        assert client.send(session["id"], "again")["status"] == "completed"
        with pytest.raises(KartaAPIError) as missing:
            client.get_session("sess_nope")
        assert missing.value.status == 404 and missing.value.code == "session_not_found"
    with KartaClient(server.url, "kt_live_" + "0" * 32) as bad, pytest.raises(KartaAPIError) as err:
        bad.create_session()
    assert err.value.status == 401


def test_chat_streams_replies_and_asks_for_approvals(server, model, monkeypatch):
    model.enqueue(
        [
            text("Writing it down."),
            tool_use("Write", {"file_path": "notes/chat.md", "content": "from chat\n"}),
        ]
    )
    model.enqueue([text("All noted.")])
    result = CliRunner().invoke(
        cli,
        ["chat", "--url", server.url, "--key", server.api_key],
        input="please note this\ny\nexit\n",
    )
    assert result.exit_code == 0, result.output
    assert "Writing it down." in result.output and "All noted." in result.output
    assert "Approval required: Allow Write on notes/chat.md?" in result.output
    session_id = result.output.split("session ")[1].split()[0]
    assert (server.workspace(session_id) / "notes" / "chat.md").read_text() == "from chat\n"


def test_chat_reports_an_unreachable_server_plainly():
    result = CliRunner().invoke(cli, ["chat", "--url", "http://127.0.0.1:9", "--key", "k"])
    assert result.exit_code == 2 and "cannot reach Karta" in result.output


def test_run_does_one_turn_without_a_server(model, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", model.url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-dummy-key")
    model.enqueue([text("Sunrise, Harbour and Midnight.")])
    result = CliRunner().invoke(cli, ["run", str(SUPPORT_BOT), "Which roasts?"])
    assert result.exit_code == 0, result.output
    assert "Sunrise, Harbour and Midnight." in result.output
    assert model.requests[-1].prompt == "Which roasts?"


def test_run_denies_tools_when_nobody_can_approve(model, monkeypatch, tmp_path):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", model.url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-dummy-key")
    model.enqueue([tool_use("Write", {"file_path": "x.md", "content": "x"})])
    model.enqueue([text("I could not write it.")])
    result = CliRunner().invoke(cli, ["run", str(SUPPORT_BOT), "write x"])
    assert result.exit_code == 0, result.output
    assert "denied" in result.output
    assert model.requests[-1].tool_results[0]["is_error"] is True

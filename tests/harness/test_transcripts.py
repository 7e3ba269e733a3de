"""Reading the harnesses' stored conversations: the records the scripted runs rarely produce."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from karta.dataplane.harness.claude_transcript import read_transcript, with_reminder
from karta.dataplane.harness.opencode_transcript import messages_from

pytestmark = pytest.mark.harness

AT = "2026-12-01T20:20:25.580Z"
_uuids = itertools.count(1)


def record(kind: str, message: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "uuid": f"uuid-{next(_uuids)}",
        "timestamp": AT,
        "message": message,
        **extra,
    }


def assistant(message_id: str, *blocks: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return record(
        "assistant", {"id": message_id, "role": "assistant", "content": list(blocks)}, **extra
    )


def user(content: Any, **extra: Any) -> dict[str, Any]:
    return record("user", {"role": "user", "content": content}, **extra)


def test_claude_code_records_become_messages(tmp_path: Path):
    handoff = with_reminder(['From now on you act as the "billing" agent.'], "Refund me")
    records = [
        {"type": "queue-operation", "operation": "enqueue", "content": "hi"},
        user("hi"),
        {"type": "attachment", "attachment": {"type": "date"}, "uuid": "a-1"},
        assistant("msg_1", {"type": "thinking", "thinking": "Let me see.", "signature": "s"}),
        assistant("msg_1", {"type": "text", "text": "Looking."}),
        assistant(
            "msg_1",
            {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"file_path": "a"}},
        ),
        user(
            [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "is_error": True,
                    "content": [{"type": "text", "text": "no such file"}],
                }
            ]
        ),
        user("Caveat: local command output", isMeta=True),
        assistant("msg_side", {"type": "text", "text": "a subagent's words"}, isSidechain=True),
        user("The summary of what was compacted", isCompactSummary=True),
        assistant("msg_2", {"type": "text", "text": "It is not there."}),
        {"type": "mystery-of-a-later-version", "uuid": "m-1", "message": {"role": "user"}},
        user(handoff),
        assistant("msg_3", {"type": "text", "text": "Let me check."}),
    ]
    lines = [json.dumps(r) for r in records]
    lines.append('{"type": "assistant", "message": {"id": "msg_4", "content": [{"ty')  # torn
    path = tmp_path / "session.jsonl"
    path.write_text("\n".join(lines))

    messages = read_transcript(path)

    assert [(m["role"], m["parts"]) for m in messages] == [
        ("user", [{"type": "text", "text": "hi"}]),
        (
            "assistant",
            [
                {"type": "reasoning", "text": "Let me see."},
                {"type": "text", "text": "Looking."},
                {
                    "type": "tool",
                    "id": "toolu_1",
                    "tool": "Read",
                    "input": {"file_path": "a"},
                    "output": "no such file",
                    "status": "error",
                },
            ],
        ),
        ("assistant", [{"type": "text", "text": "It is not there."}]),
        ("user", [{"type": "text", "text": "Refund me"}]),
        ("assistant", [{"type": "text", "text": "Let me check."}]),
    ]
    assert [m["id"] for m in messages][1:3] == ["msg_1", "msg_2"]
    assert {m["created_at"] for m in messages} == {"2026-12-01T20:20:25.580+00:00"}


def test_a_missing_claude_code_transcript_is_an_empty_conversation(tmp_path: Path):
    assert read_transcript(tmp_path / "nothing.jsonl") == []


def test_opencode_messages_become_messages():
    stored = [
        {
            "info": {"id": "msg_1", "role": "user", "time": {"created": 1796156472144}},
            "parts": [
                {"type": "text", "text": "Fix it"},
                {"type": "text", "text": "Called the Read tool with…", "synthetic": True},
            ],
        },
        {
            "info": {"id": "msg_2", "role": "assistant", "time": {"created": 1796156473305}},
            "parts": [
                {"type": "step-start"},
                {"type": "reasoning", "text": "Hmm."},
                {
                    "type": "tool",
                    "callID": "call_1",
                    "tool": "bash",
                    "state": {"status": "error", "input": {"command": "false"}, "error": "exit 1"},
                },
                {"type": "step-finish", "reason": "tool-calls"},
            ],
        },
        {"info": {"id": "msg_3", "role": "assistant", "time": {}}, "parts": []},  # aborted
    ]

    assert messages_from(stored) == [
        {
            "id": "msg_1",
            "role": "user",
            "parts": [{"type": "text", "text": "Fix it"}],
            "created_at": "2026-12-01T20:21:12.144+00:00",
        },
        {
            "id": "msg_2",
            "role": "assistant",
            "parts": [
                {"type": "reasoning", "text": "Hmm."},
                {
                    "type": "tool",
                    "id": "call_1",
                    "tool": "bash",
                    "input": {"command": "false"},
                    "output": "exit 1",
                    "status": "error",
                },
            ],
            "created_at": "2026-12-01T20:21:13.305+00:00",
        },
    ]

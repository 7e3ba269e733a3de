"""`karta.testing`: drive real harnesses deterministically and offline with a scripted model."""

from karta.testing.blocks import ModelRequest, Reply, error_reply, text, thinking, tool_use
from karta.testing.clock import FakeClock
from karta.testing.scripted_model import ScriptedModel

__all__ = [
    "FakeClock",
    "ModelRequest",
    "Reply",
    "ScriptedModel",
    "error_reply",
    "text",
    "thinking",
    "tool_use",
]

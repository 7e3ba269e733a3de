"""`karta.testing`: drive real harnesses deterministically and offline with a scripted model, or
stand in for them in process with a scripted `FakeHarness`."""

from karta.testing.blocks import ModelRequest, Reply, error_reply, text, thinking, tool_use
from karta.testing.clock import FakeClock
from karta.testing.fake_harness import FakeHarness
from karta.testing.scripted_model import ScriptedModel

__all__ = [
    "FakeClock",
    "FakeHarness",
    "ModelRequest",
    "Reply",
    "ScriptedModel",
    "error_reply",
    "text",
    "thinking",
    "tool_use",
]

"""Typed stream events: one model per event type of the session API, and `UnknownEvent` for
any other type (kept, never an error: harnesses may pass their own types through).

Every event has the envelope — `seq`, `type`, `source`, `session_id`, `turn_id`, `timestamp`
(ms), `raw` — and its `data`, a model of its own per type that keeps unknown fields. Text and
reasoning events are deltas: `event.text` is the new chunk of the part `event.part_id`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from karta.core import events as ev
from karta.core.events import Event


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Part(_Open):
    id: str | None = None
    type: str | None = None
    text: str | None = None
    messageID: str | None = None


class ToolState(_Open):
    status: str | None = None  # running | completed | error
    input: dict[str, Any] = Field(default_factory=dict)
    output: Any = None


class ToolPart(Part):
    tool: str | None = None
    state: ToolState = Field(default_factory=ToolState)


class StepPart(Part):
    reason: str | None = None
    tokens: dict[str, Any] | None = None


class DeltaData(_Open):
    part: Part = Field(default_factory=Part)
    delta: bool = True


class ToolUseData(_Open):
    part: ToolPart = Field(default_factory=ToolPart)
    tool_name: str | None = None
    tool_input: dict[str, Any] | None = None
    tool_use_id: str | None = None


class StepData(_Open):
    part: StepPart = Field(default_factory=StepPart)


class InputRequiredData(_Open):
    request_id: str
    kind: str = "tool_permission"
    tool: str | None = None
    target: str | None = None
    input: dict[str, Any] = Field(default_factory=dict)
    message: str = ""
    options: list[str] = Field(default_factory=list)
    expires_at: str | None = None


class ErrorData(_Open):
    message: str = ""
    code: str | None = None
    details: Any = None


class DoneData(_Open):
    status: str = "completed"  # completed | failed | cancelled
    usage: dict[str, Any] = Field(default_factory=dict)


class SystemData(_Open):
    subtype: str | None = None


class BaseEvent(_Open):
    seq: int | None = None
    type: str
    source: str = "karta"
    session_id: str | None = None
    turn_id: str | None = None
    timestamp: int | None = None
    raw: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_unset=True)


class _Delta(BaseEvent):
    data: DeltaData = Field(default_factory=DeltaData)

    @property
    def text(self) -> str:
        """This event's chunk of the part's text."""
        return self.data.part.text or ""

    @property
    def part_id(self) -> str | None:
        return self.data.part.id


class TextEvent(_Delta):
    type: Literal["text"] = "text"


class ReasoningEvent(_Delta):
    type: Literal["reasoning"] = "reasoning"


class ToolUseEvent(BaseEvent):
    type: Literal["tool_use"] = "tool_use"
    data: ToolUseData = Field(default_factory=ToolUseData)

    @property
    def tool(self) -> str | None:
        return self.data.part.tool or self.data.tool_name

    @property
    def tool_use_id(self) -> str | None:
        return self.data.part.id or self.data.tool_use_id

    @property
    def status(self) -> str | None:
        return self.data.part.state.status

    @property
    def input(self) -> dict[str, Any]:
        return self.data.part.state.input or self.data.tool_input or {}

    @property
    def output(self) -> Any:
        return self.data.part.state.output


class StepStartEvent(BaseEvent):
    type: Literal["step_start"] = "step_start"
    data: StepData = Field(default_factory=StepData)


class StepFinishEvent(BaseEvent):
    type: Literal["step_finish"] = "step_finish"
    data: StepData = Field(default_factory=StepData)


class InputRequiredEvent(BaseEvent):
    type: Literal["input_required"] = "input_required"
    data: InputRequiredData

    @property
    def request_id(self) -> str:
        return self.data.request_id


class ErrorEvent(BaseEvent):
    type: Literal["error"] = "error"
    data: ErrorData = Field(default_factory=ErrorData)

    @property
    def code(self) -> str | None:
        return self.data.code

    @property
    def message(self) -> str:
        return self.data.message


class DoneEvent(BaseEvent):
    type: Literal["done"] = "done"
    data: DoneData = Field(default_factory=DoneData)

    @property
    def status(self) -> str:
        return self.data.status


class SystemEvent(BaseEvent):
    type: Literal["system"] = "system"
    data: SystemData = Field(default_factory=SystemData)

    @property
    def subtype(self) -> str | None:
        return self.data.subtype


class UnknownEvent(BaseEvent):
    """An event of a type this SDK does not know (or whose data it could not read), as sent."""

    data: dict[str, Any] = Field(default_factory=dict)


StreamEvent = (
    TextEvent
    | ReasoningEvent
    | ToolUseEvent
    | StepStartEvent
    | StepFinishEvent
    | InputRequiredEvent
    | ErrorEvent
    | DoneEvent
    | SystemEvent
    | UnknownEvent
)
EVENT_MODELS: dict[str, type[BaseEvent]] = {
    ev.TEXT: TextEvent,
    ev.REASONING: ReasoningEvent,
    ev.TOOL_USE: ToolUseEvent,
    ev.STEP_START: StepStartEvent,
    ev.STEP_FINISH: StepFinishEvent,
    ev.INPUT_REQUIRED: InputRequiredEvent,
    ev.ERROR: ErrorEvent,
    ev.DONE: DoneEvent,
    ev.SYSTEM: SystemEvent,
}


def parse_event(data: dict[str, Any]) -> StreamEvent:
    """The typed event for a wire event; `UnknownEvent` for an unknown type or unreadable data."""
    model = EVENT_MODELS.get(str(data.get("type")), UnknownEvent)
    try:
        return model.model_validate(data)  # type: ignore[return-value]
    except ValidationError:
        return UnknownEvent.model_validate({**data, "type": str(data.get("type"))})


def core_event(event: BaseEvent) -> Event:
    """The event as the wire sent it, as the fold (`karta.core.turn_fold`) and the CLI read it."""
    return Event.from_dict(event.to_dict())

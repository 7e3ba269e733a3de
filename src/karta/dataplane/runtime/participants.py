"""Who is in a session, and who is speaking.

A participant is a human or an AI with an id that is unique in its session, a display name,
and the times it joined and left. Most live in the session itself and read its stream; one
with a `linked_session_id` lives in that session (on this instance, or on the instance of its
`gateway_url`), and the gateway carries messages to it. An AI participant with a `project` is
the agent of that Karta project: a message for it becomes a turn of that project's session.

A message sent as a participant reaches the harness headed by its sender (`attributed`), so
the agent knows who is speaking and can address people by name; a session token's end user
alone in the session is not announced on every message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from karta.dataplane.store.models import ParticipantRow

HUMAN, AI = "human", "ai"
PARTICIPANT_TYPES = (HUMAN, AI)


@dataclass(frozen=True)
class Speaker:
    """The participant a turn's message came from, as its events carry it."""

    id: str
    type: str
    display_name: str

    @classmethod
    def of(cls, row: ParticipantRow) -> Speaker:
        return cls(row.participant_id, row.type, row.display_name)


@dataclass(frozen=True)
class ParticipantSpec:
    """A participant to add (or to find, when one with this id is in the session already)."""

    id: str
    type: str
    display_name: str | None = None
    gateway_url: str | None = None
    linked_session_id: str | None = None
    project: str | None = None

    def row(self, session_id: str) -> ParticipantRow:
        return ParticipantRow(
            session_id=session_id,
            participant_id=self.id,
            type=self.type,
            display_name=self.display_name or self.id,
            gateway_url=self.gateway_url,
            linked_session_id=self.linked_session_id,
            project=self.project,
        )


def attributed(text: str, speaker: Speaker | None) -> str:
    """What the harness reads for a message: the text, headed by its sender
    (`[Alice Chen (@alice, human)]: …`), or the bare text when nobody is named."""
    if speaker is None:
        return text
    return f"[{speaker.display_name} (@{speaker.id}, {speaker.type})]: {text}"


def participant_view(row: ParticipantRow) -> dict[str, Any]:
    return {
        "id": row.participant_id,
        "type": row.type,
        "display_name": row.display_name,
        "joined_at": row.joined_at.isoformat(),
        "left_at": row.left_at.isoformat() if row.left_at else None,
        "gateway_url": row.gateway_url,
        "session_id": row.linked_session_id,
        "project": row.project,
    }

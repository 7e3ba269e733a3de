"""`KartaClient`: sessions, messages, approvals and event streams over HTTP (sync, httpx).

client = KartaClient()                       # url and key from $KARTA_HOME/credentials.json
session = client.create_session(metadata={"customer": "c-42"})
for event in client.stream(session["id"], "Which roast is light?"):
    ...
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from karta.client.base import JSONClient, raise_for
from karta.config import karta_home
from karta.credentials_file import read_credentials
from karta.events import Event
from karta.sse import iter_events


class KartaClient(JSONClient):
    def __init__(
        self, base_url: str | None = None, api_key: str | None = None, timeout: float = 600.0
    ) -> None:
        stored = read_credentials(karta_home())
        base_url = base_url or stored.get("url") or "http://127.0.0.1:8000"
        key = api_key if api_key is not None else stored.get("api_key")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        super().__init__(base_url, headers, timeout)

    def _events(self, method: str, path: str, **kw: Any) -> Iterator[Event]:
        with self._http.stream(method, path, **kw) as response:
            raise_for(response)
            yield from iter_events(response.iter_lines())

    def app_info(self) -> dict[str, Any]:
        return dict(self._json("GET", "/v1/app"))

    def create_session(
        self, metadata: dict[str, Any] | None = None, session_id: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"metadata": metadata or {}}
        if session_id is not None:
            body["session_id"] = session_id
        return dict(self._json("POST", "/v1/sessions", json=body))

    def get_session(self, session_id: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/v1/sessions/{session_id}"))

    def end_session(self, session_id: str) -> None:
        self._json("DELETE", f"/v1/sessions/{session_id}")

    @staticmethod
    def _message(text: str, stream: bool, **options: Any) -> dict[str, Any]:
        return {"text": text, "stream": stream, **{k: v for k, v in options.items() if v}}

    def send(self, session_id: str, text: str, **options: Any) -> dict[str, Any]:
        """One turn, answered when it ends or pauses (options: agent, participant_name,
        participant_type, thinking)."""
        body = self._message(text, False, **options)
        return dict(self._json("POST", f"/v1/sessions/{session_id}/messages", json=body))

    def stream(self, session_id: str, text: str, **options: Any) -> Iterator[Event]:
        """One turn as its events arrive; the iterator ends after the turn's `done`."""
        body = self._message(text, True, **options)
        return self._events("POST", f"/v1/sessions/{session_id}/messages", json=body)

    def decide(self, session_id: str, request_id: str, decision: str) -> dict[str, Any]:
        path = f"/v1/sessions/{session_id}/inputs/{request_id}"
        return dict(self._json("PUT", path, json={"decision": decision}))

    def events(self, session_id: str, after: int = 0, follow: bool = False) -> Iterator[Event]:
        params = {"after": after, "follow": str(follow).lower()}
        return self._events("GET", f"/v1/sessions/{session_id}/events", params=params)

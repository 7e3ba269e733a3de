"""`KartaClient`: sessions, messages, approvals and event streams over HTTP (sync, httpx).

client = KartaClient()                       # url and key from $KARTA_HOME/credentials.json
session = client.create_session(metadata={"customer": "c-42"})
for event in client.stream(session["id"], "Which roast is light?"):
    ...

With `project="web"` every call goes to that project's route family (`/v1/projects/web/…`):
its active release, its sessions, and the only family a session token may use.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

from karta.client.base import JSONClient, raise_for
from karta.core.credentials_file import read_credentials
from karta.core.events import Event
from karta.core.home import karta_home
from karta.core.sse import iter_events


def _drop_none(**params: Any) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


class KartaClient(JSONClient):
    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 600.0,
        project: str | None = None,
    ) -> None:
        stored = read_credentials(karta_home())
        base_url = base_url or stored.get("url") or "http://127.0.0.1:8000"
        key = api_key if api_key is not None else stored.get("api_key")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        super().__init__(base_url, headers, timeout)
        self.project = project
        self._root = f"/v1/projects/{quote(project, safe='')}" if project else "/v1"

    def _session(self, session_id: str, tail: str = "") -> str:
        return f"{self._root}/sessions/{quote(session_id, safe='')}{tail}"

    def _events(self, method: str, path: str, **kw: Any) -> Iterator[Event]:
        with self._http.stream(method, path, **kw) as response:
            raise_for(response)
            yield from iter_events(response.iter_lines())

    def app_info(self) -> dict[str, Any]:
        """The app a new session runs (for a project: its active release): name, harness,
        agents and skills."""
        return dict(self._json("GET", f"{self._root}/app"))

    def create_session(
        self, metadata: dict[str, Any] | None = None, session_id: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"metadata": metadata or {}}
        if session_id is not None:
            body["session_id"] = session_id
        return dict(self._json("POST", f"{self._root}/sessions", json=body))

    def get_session(self, session_id: str) -> dict[str, Any]:
        return dict(self._json("GET", self._session(session_id)))

    def list_sessions(
        self,
        *,
        limit: int | None = None,
        after: str | None = None,
        status: str | None = None,
        active: bool | None = None,
        agent: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """One page of the caller's sessions, newest first: `{"data", "has_more",
        "next_cursor"}`. `status` is `active` or `ended`; `active=True` keeps sessions whose
        turn is running or awaiting input; `metadata` matches string values exactly."""
        params = _drop_none(
            limit=limit,
            after=after,
            status=status,
            agent=agent,
            active=None if active is None else str(active).lower(),
        )
        params.update({f"metadata.{k}": v for k, v in (metadata or {}).items()})
        return dict(self._json("GET", f"{self._root}/sessions", params=params))

    def session_pages(self, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every page of `list_sessions(**filters)`, following `next_cursor` to the end."""
        while True:
            page = self.list_sessions(**filters)
            yield page
            if not page.get("has_more") or not page.get("next_cursor"):
                return
            filters["after"] = page["next_cursor"]

    def end_session(self, session_id: str) -> None:
        self._json("DELETE", self._session(session_id))

    def interrupt(self, session_id: str) -> dict[str, Any]:
        """Stop the running turn: it ends `cancelled`. Answers the turn id, its events since
        the interrupt and the session; `KartaAPIError` 409 `no_turn_running` when none runs."""
        return dict(self._json("POST", self._session(session_id, "/interrupt")))

    def transcript(
        self, session_id: str, *, limit: int | None = None, after: str | None = None
    ) -> dict[str, Any]:
        """One page of the conversation, oldest first, from the harness's own transcript."""
        params = _drop_none(limit=limit, after=after)
        return dict(self._json("GET", self._session(session_id, "/messages"), params=params))

    @staticmethod
    def _message(text: str, stream: bool, **options: Any) -> dict[str, Any]:
        return {"text": text, "stream": stream, **{k: v for k, v in options.items() if v}}

    def send(self, session_id: str, text: str, **options: Any) -> dict[str, Any]:
        """One turn, answered when it ends or pauses (options: agent, participant_name,
        participant_type, thinking)."""
        body = self._message(text, False, **options)
        return dict(self._json("POST", self._session(session_id, "/messages"), json=body))

    def stream(self, session_id: str, text: str, **options: Any) -> Iterator[Event]:
        """One turn as its events arrive; the iterator ends after the turn's `done`."""
        body = self._message(text, True, **options)
        return self._events("POST", self._session(session_id, "/messages"), json=body)

    def decide(self, session_id: str, request_id: str, decision: str) -> dict[str, Any]:
        path = self._session(session_id, f"/inputs/{quote(request_id, safe='')}")
        return dict(self._json("PUT", path, json={"decision": decision}))

    def events(self, session_id: str, after: int = 0, follow: bool = False) -> Iterator[Event]:
        params = {"after": after, "follow": str(follow).lower()}
        return self._events("GET", self._session(session_id, "/events"), params=params)

"""The gateway: participants' messages carried between sessions, across projects and instances.

- `submit` (`POST /v1/gateway/events`): a participant sends a message in a session of the
  caller's organization: to the session's agent (a turn, attributed to the sender), or to one
  of its participants (recorded in the session, and delivered where that participant lives).
- `receive` (`POST /v1/gateway/deliveries`, and local deliveries): an event for a participant
  living on this instance: recorded in its session, or, for a session's agent (a project), a
  turn of that session whose answer goes back to whoever lives elsewhere.
- Deliveries leave through an outbox (`gateway_outbox`) drained by `run`: remote ones are
  POSTed to the peer gateway with the service credential, retried with exponential backoff,
  and given up (recorded in the sending session) after `gateway_max_attempts`.

Event ids are idempotent per sender organization: a replay does nothing and gets the first
answer. An event never crosses organizations unless both allowed each other (`trust`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx

from karta.core import events as ev
from karta.core.errors import (
    EventInProgress,
    KartaError,
    ProjectNotFound,
    RecipientNotFound,
    SessionNotFound,
    UnknownGateway,
)
from karta.core.events import Event
from karta.core.http_keepalive import karta_client
from karta.core.ids import new_id
from karta.core.internal_api import ProjectInfo
from karta.core.turn_fold import TurnOutcome
from karta.dataplane.gateway.store import GatewayStore
from karta.dataplane.principal import OPEN, WRITE, Principal
from karta.dataplane.runtime.handle import SessionHandle
from karta.dataplane.runtime.participants import ParticipantSpec, Speaker
from karta.dataplane.runtime.service import Runtime
from karta.dataplane.runtime.turns import TurnHandle, TurnRequest
from karta.dataplane.schemas import GatewayAccepted, GatewayDelivery, GatewayEvent
from karta.dataplane.settings import base_url
from karta.dataplane.store.models import GatewayOutbox, GatewayReply, ParticipantRow, SessionRow

log = logging.getLogger(__name__)

DELIVERIES = "/v1/gateway/deliveries"
INTERVAL = 1.0
BATCH = 50
LEASE = timedelta(seconds=60)  # an attempt's hold on a delivery (a replica dying mid-POST)
TIMEOUT = 10.0
RETRIED_STATUSES = frozenset({408, 409, 425, 429})  # busy, not wrong: try again later

Projects = Callable[[int, str], Awaitable[ProjectInfo]]


class DeliveryRefused(Exception):
    """The recipient's gateway refused a delivery for good (a 4xx other than busy)."""


def agent_id(row: SessionRow) -> str:
    """How a session's agent is addressed: its project's slug, else its app's name."""
    return row.project_slug or row.app_name


def acting_for(organization_id: int | None, project: ProjectInfo | None = None) -> Principal:
    """Who the gateway acts as in an organization's sessions (open mode: everyone)."""
    if organization_id is None:
        return OPEN
    return Principal(
        kind="gateway",
        organization_id=organization_id,
        scopes=frozenset({WRITE}),
        project_id=project.id if project else None,
        project_slug=project.slug if project else None,
    )


class Gateway:
    def __init__(
        self,
        runtime: Runtime,
        projects: Projects,
        *,
        interval: float = INTERVAL,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.clock = runtime.clock
        self.store = GatewayStore(runtime.db, self.clock)
        self.interval = interval
        self._projects = projects
        self._wake = asyncio.Event()
        self._http = karta_client(timeout=TIMEOUT, transport=transport)
        self._tasks: set[asyncio.Task[Any]] = set()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._http.aclose()

    # --- submitting ----------------------------------------------------------------------------

    async def submit(self, principal: Principal, event: GatewayEvent) -> GatewayAccepted:
        event = event.model_copy(update={"event_id": event.event_id or new_id("gwe")})
        scope = f"events:{principal.organization_id}"
        return await self._once(scope, event, lambda: self._submit(principal, event))

    async def _submit(self, principal: Principal, event: GatewayEvent) -> GatewayAccepted:
        if event.session_id is not None:
            handle = await self.runtime.session(principal, event.session_id)
        else:
            handle, _ = await self.runtime.create_session(principal, {})
        event = event.model_copy(update={"session_id": handle.id})
        sender = await self._sender(handle, event)
        if event.recipient_id is None:
            return await self._answer(handle, event, sender)
        recipient = await self._recipient(handle, event.recipient_id)
        await handle.post(message_of(event, sender))
        if recipient.linked_session_id is not None or recipient.project is not None:
            await self._enqueue(handle, recipient, event)
        return GatewayAccepted(event_id=str(event.event_id), session_id=handle.id, turn_id=None)

    async def _recipient(self, handle: SessionHandle, recipient_id: str) -> ParticipantRow:
        for row in await handle.participants():
            if row.participant_id == recipient_id and row.left_at is None:
                return row
        raise RecipientNotFound(f"no participant {recipient_id!r} in session {handle.id!r}")

    # --- receiving -----------------------------------------------------------------------------

    async def receive(self, principal: Principal, delivery: GatewayDelivery) -> GatewayAccepted:
        """A delivery from a remote gateway (the service credential: the event says whose it
        is) or from an organization's own key (then it is that organization's)."""
        event = delivery.event
        if principal.kind == "service":
            organization_id = event.sender_organization_id
        else:
            organization_id = principal.organization_id
        event = event.model_copy(
            update={
                "event_id": event.event_id or new_id("gwe"),
                "sender_organization_id": organization_id,
            }
        )
        delivery = delivery.model_copy(update={"event": event})
        scope = f"deliveries:{organization_id}"
        return await self._once(scope, event, lambda: self._receive(organization_id, delivery))

    async def _receive(
        self, organization_id: int | None, delivery: GatewayDelivery
    ) -> GatewayAccepted:
        event = delivery.event
        if delivery.session_id is not None:
            handle = await self._session(organization_id, delivery.session_id)
        else:
            handle = await self._project_session(organization_id, delivery.recipient_id)
        sender = await self._sender(handle, event)
        for row in await handle.participants():
            if row.participant_id == delivery.recipient_id and row.left_at is None:
                to = event.model_copy(update={"recipient_id": delivery.recipient_id})
                await handle.post(message_of(to, sender))
                return GatewayAccepted(
                    event_id=str(event.event_id), session_id=handle.id, turn_id=None
                )
        if delivery.recipient_id != agent_id(handle.row):
            raise RecipientNotFound(f"no participant {delivery.recipient_id!r} here")
        if event.event_type == "reply":  # answers are recorded, never answered: no loops
            await handle.post(message_of(event, sender))
            return GatewayAccepted(event_id=str(event.event_id), session_id=handle.id, turn_id=None)
        return await self._answer(handle, event, sender)

    async def _session(self, organization_id: int | None, session_id: str) -> SessionHandle:
        """The session a delivery names, if the sender's organization may reach it."""
        try:
            found = await self.runtime.session(OPEN, session_id)
        except SessionNotFound:
            found = None
        owner = found.row.organization_id if found else None
        if found is None or not await self._reaches(organization_id, owner):
            raise RecipientNotFound(f"no session {session_id!r} here")
        return await self.runtime.session(acting_for(owner), session_id)

    async def _reaches(self, sender: int | None, owner: int | None) -> bool:
        if sender == owner:
            return True
        if sender is None or owner is None:
            return False
        return await self.store.mutual(sender, owner)

    async def _project_session(self, organization_id: int | None, slug: str) -> SessionHandle:
        """A new session of the sender organization's project `slug`, for its agent."""
        if organization_id is None:
            raise RecipientNotFound(f"no project {slug!r} here")
        try:
            project = await self._projects(organization_id, slug)
        except ProjectNotFound:
            raise RecipientNotFound(f"no project {slug!r} here") from None
        handle, _ = await self.runtime.create_session(acting_for(organization_id, project), {})
        return handle

    async def _sender(self, handle: SessionHandle, event: GatewayEvent) -> ParticipantRow:
        """The sender as a participant of the session (joining it if new), living where the
        event came from. An agent answering is known by its project, if not by its id."""
        url = base_url(event.sender_gateway_url)
        known = await handle.participants()
        match = next((p for p in known if p.participant_id == event.sender_id), None)
        match = match or next(
            (p for p in known if p.project == event.sender_id and p.gateway_url == url), None
        )
        linked = event.session_id if event.session_id != handle.id else None
        spec = ParticipantSpec(
            match.participant_id if match else event.sender_id,
            event.sender_type,
            gateway_url=url,
            linked_session_id=linked,
        )
        row, _ = await handle.join(spec)
        return row

    # --- agents' turns and their answers -------------------------------------------------------

    async def _answer(
        self, handle: SessionHandle, event: GatewayEvent, sender: ParticipantRow
    ) -> GatewayAccepted:
        """The session's agent takes the message as a turn; its answer goes back when it ends."""
        request = TurnRequest(
            event.message, participant_name=sender.participant_id, participant_type=sender.type
        )
        turn = await handle.send(request)
        await self.store.expect_reply(
            GatewayReply(
                turn_id=turn.turn_id,
                session_id=handle.id,
                organization_id=handle.row.organization_id,
                in_reply_to=str(event.event_id),
                created_at=self.clock.now(),
            )
        )
        self._track(self._wake_when_done(handle, turn))
        return GatewayAccepted(
            event_id=str(event.event_id), session_id=handle.id, turn_id=turn.turn_id
        )

    async def _wake_when_done(self, handle: SessionHandle, turn: TurnHandle) -> None:
        async for event in handle.subscribe(turn.after):
            if event is not None and event.type == ev.DONE and event.turn_id == turn.turn_id:
                break
        self._wake.set()

    async def send_replies(self) -> None:
        """Every ended gateway turn's answer, to each participant living elsewhere."""
        for reply, turn in await self.store.finished_replies(BATCH):
            handle = await self.runtime.session(acting_for(reply.organization_id), reply.session_id)
            events = [e for e in await handle.read(turn.first_seq - 1) if e.turn_id == turn.id]
            outcome = TurnOutcome.of(events)
            status = outcome.public_status
            answer = GatewayEvent(
                event_id=new_id("gwe"),
                sender_id=agent_id(handle.row),
                sender_type="ai",
                event_type="reply",
                message=outcome.text or f"(no answer: the turn ended {status})",
                session_id=handle.id,
                in_reply_to=reply.in_reply_to,
                metadata={"status": status, "turn_id": turn.id},
            )
            away = [
                p
                for p in await handle.participants()
                if p.left_at is None and p.linked_session_id is not None
            ]
            rows = [self._outbox_row(handle, p, answer) for p in away]
            if await self.store.replied(turn.id, rows) and rows:
                self._wake.set()

    # --- the outbox ----------------------------------------------------------------------------

    async def _enqueue(
        self, handle: SessionHandle, recipient: ParticipantRow, event: GatewayEvent
    ) -> None:
        await self.store.enqueue([self._outbox_row(handle, recipient, event)])
        self._wake.set()

    def _outbox_row(
        self, handle: SessionHandle, recipient: ParticipantRow, event: GatewayEvent
    ) -> GatewayOutbox:
        """A delivery of `event` (sent in `handle`'s session) to where `recipient` lives."""
        remote = recipient.gateway_url is not None
        if remote and self.settings.gateway_url is None:
            raise UnknownGateway("this instance has no KARTA_GATEWAY_URL for answers to reach")
        sent = event.model_copy(
            update={
                "session_id": handle.id,
                "sender_gateway_url": self.settings.gateway_url if remote else None,
                "sender_organization_id": handle.row.organization_id,
                "recipient_id": None,
            }
        )
        delivery = GatewayDelivery(
            recipient_id=recipient.project or recipient.participant_id,
            session_id=recipient.linked_session_id,
            recipient_gateway_url=recipient.gateway_url,
            event=sent,
        )
        now = self.clock.now()
        return GatewayOutbox(
            id=new_id("gwd"),
            organization_id=handle.row.organization_id,
            origin_session_id=handle.id,
            gateway_url=recipient.gateway_url,
            delivery=delivery.model_dump(mode="json", exclude_none=True),
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )

    async def deliver_due(self) -> None:
        for row in await self.store.due(BATCH):
            if await self.store.lease(row.id, self.clock.now() + LEASE):
                await self._attempt(row)

    async def _attempt(self, row: GatewayOutbox) -> None:
        delivery = GatewayDelivery.model_validate(row.delivery)
        try:
            if row.gateway_url is None:
                await self.receive(acting_for(row.organization_id), delivery)
            else:
                await self._post(row.gateway_url, row.delivery)
        except (DeliveryRefused, KartaError) as exc:
            busy = isinstance(exc, KartaError) and (
                exc.status in RETRIED_STATUSES or exc.status >= 500
            )
            if not busy:
                await self._give_up(row, str(exc))
                return
            await self._retry(row, str(exc))
        except httpx.HTTPError as exc:
            await self._retry(row, f"{type(exc).__name__}: {exc}")
        else:
            await self.store.done(row.id)

    async def _post(self, url: str, body: dict[str, Any]) -> None:
        token = self.settings.internal.outbound_token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        answer = await self._http.post(url + DELIVERIES, json=body, headers=headers)
        if answer.is_success:
            return
        if answer.status_code in RETRIED_STATUSES or answer.status_code >= 500:
            raise httpx.HTTPStatusError(
                f"{url} answered {answer.status_code}", request=answer.request, response=answer
            )
        raise DeliveryRefused(
            f"{url} refused the delivery: {answer.status_code} {answer.text[:500]}"
        )

    async def _retry(self, row: GatewayOutbox, error: str) -> None:
        attempts = row.attempts + 1
        if attempts >= self.settings.gateway_max_attempts:
            await self._give_up(row, error)
            return
        delay = min(
            self.settings.gateway_retry_base * 2 ** (attempts - 1), self.settings.gateway_retry_max
        )
        log.info(
            "delivery %s failed (attempt %d), retrying in %.1fs: %s", row.id, attempts, delay, error
        )
        await self.store.failed(
            row.id, attempts, self.clock.now() + timedelta(seconds=delay), error
        )

    async def _give_up(self, row: GatewayOutbox, error: str) -> None:
        """A delivery that cannot be made: the sending session hears of it."""
        log.warning("giving up delivery %s: %s", row.id, error)
        try:
            handle = await self.runtime.session(
                acting_for(row.organization_id), row.origin_session_id
            )
            note = {
                "subtype": "delivery_failed",
                "recipient_id": row.delivery.get("recipient_id"),
                "event_id": row.delivery.get("event", {}).get("event_id"),
                "attempts": row.attempts + 1,
                "error": error[:2000],
            }
            await handle.note(Event(ev.SYSTEM, note))
        except SessionNotFound:
            pass  # the session is gone: nobody to tell
        await self.store.done(row.id)

    # --- trust between organizations -----------------------------------------------------------

    async def trusts(self, organization_id: int) -> list[int]:
        return await self.store.trusts(organization_id)

    async def trust(self, organization_id: int, peer: int) -> None:
        await self.store.trust(organization_id, peer)

    async def distrust(self, organization_id: int, peer: int) -> None:
        await self.store.distrust(organization_id, peer)

    # --- running -------------------------------------------------------------------------------

    async def drain(self) -> None:
        await self.send_replies()
        await self.deliver_due()

    async def run(self) -> None:
        """Answers and deliveries, until cancelled: every `interval`, and at once when there
        is something new. A failure never stops it."""
        while True:
            with contextlib.suppress(TimeoutError):
                await self.clock.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            try:
                await self.drain()
            except Exception:
                log.exception("the gateway's outbox failed; retrying")

    async def _once(
        self,
        scope: str,
        event: GatewayEvent,
        work: Callable[[], Awaitable[GatewayAccepted]],
    ) -> GatewayAccepted:
        """Run `work` for an event id once; a replay gets the first answer."""
        event_id = str(event.event_id)
        first, seen = await self.store.claim(scope, event_id)
        if not first:
            if seen is None:
                raise EventInProgress(f"event {event_id!r} is still being handled")
            return GatewayAccepted.model_validate(seen)
        try:
            accepted = await work()
        except BaseException:
            await self.store.release(scope, event_id)
            raise
        await self.store.settle(scope, event_id, accepted.model_dump(mode="json"))
        return accepted

    def _track(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def message_of(event: GatewayEvent, sender: ParticipantRow) -> tuple[dict[str, Any], Speaker]:
    """A gateway event as the `message` a session records, and who sent it."""
    return {
        "id": new_id("msg"),
        "role": "user",
        "text": event.message,
        "participant_name": sender.participant_id,
        "participant_type": sender.type,
        "recipient_id": event.recipient_id,
        "event_id": event.event_id,
        "event_type": event.event_type,
        "in_reply_to": event.in_reply_to,
        "metadata": event.metadata,
    }, Speaker.of(sender)

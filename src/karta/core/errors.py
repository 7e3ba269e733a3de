"""Business errors: typed exceptions that the HTTP layer maps to one JSON error shape.

Every error renders as `{"error": <code>, "message": <text>, **extra}` with `status`.
"""

from typing import Any


class KartaError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.extra}


class BadRequest(KartaError):
    status = 400
    code = "bad_request"


class Unauthorized(KartaError):
    status = 401
    code = "unauthorized"


class PaymentRequired(KartaError):
    status = 402
    code = "payment_required"


class BudgetExhausted(PaymentRequired):
    """A monthly cap is spent: refused before anything runs. `reason` says which cap."""

    code = "budget_exhausted"

    def __init__(self, reason: str, message: str | None = None) -> None:
        super().__init__(message or f"the budget is exhausted: {reason}", reason=reason)


class Forbidden(KartaError):
    status = 403
    code = "forbidden"


class IdentityMismatch(Forbidden):
    """Session metadata names another end user than the session token's verified `sub`."""

    code = "identity_mismatch"


class ParticipantForbidden(Forbidden):
    """A session token's end user acting as another participant than themself."""

    code = "participant_forbidden"


class NotFound(KartaError):
    status = 404
    code = "not_found"


class ParticipantNotFound(NotFound):
    code = "participant_not_found"


class RecipientNotFound(NotFound):
    """A gateway event for a session or participant this instance cannot find (or that
    belongs to an organization the sender may not reach)."""

    code = "recipient_not_found"


class SessionNotFound(NotFound):
    code = "session_not_found"


class ProjectNotFound(NotFound):
    code = "project_not_found"


class AgentNotFound(NotFound):
    code = "agent_not_found"


class InputNotFound(NotFound):
    code = "input_not_found"


class Conflict(KartaError):
    status = 409
    code = "conflict"


class TurnInProgress(Conflict):
    code = "turn_in_progress"


class PendingInput(Conflict):
    code = "pending_input"


class InputNotPending(Conflict):
    """The approval exists but can no longer be decided (already decided or expired)."""

    code = "input_not_pending"


class NoTurnRunning(Conflict):
    """An interrupt for a session with nothing running."""

    code = "no_turn_running"


class ParticipantConflict(Conflict):
    """A participant named with another type than the one it joined with."""

    code = "participant_conflict"


class EventInProgress(Conflict):
    """A gateway event id whose first submission is still being handled."""

    code = "event_in_progress"


class SessionEnded(Conflict):
    code = "session_ended"


class NoActiveRelease(Conflict):
    """The project exists but has no active release to start a session on."""

    code = "no_active_release"


class ReleaseUnavailable(Conflict):
    """A session's release cannot be fetched from the control plane (retriable)."""

    code = "release_unavailable"


class InvalidCursor(KartaError):
    status = 422
    code = "invalid_cursor"


class UnknownGateway(KartaError):
    """A gateway URL this instance is not configured to deliver to (`KARTA_GATEWAY_PEERS`)."""

    status = 422
    code = "unknown_gateway"


class InvalidEndUserId(KartaError):
    status = 422
    code = "invalid_end_user_id"


class ByokKeyRejected(KartaError):
    """The provider refused the organization's own key (BYOK) during a turn: the turn failed,
    and it was not retried with the platform's key."""

    status = 422
    code = "byok_key_rejected"


class AppConfigError(KartaError):
    """The harness application folder is not usable (bad agents, unknown default agent…)."""

    status = 422
    code = "invalid_app"


class RetryLater(KartaError):
    """An answer that says when to try again (`Retry-After`)."""

    def __init__(self, message: str, retry_after: int = 1, **extra: Any) -> None:
        super().__init__(message, **extra)
        self.retry_after = retry_after


class TooManyRequests(RetryLater):
    status = 429
    code = "too_many_requests"


class Unavailable(RetryLater):
    status = 503
    code = "unavailable"


class HarnessCapacity(Unavailable):
    code = "harness_capacity"


class OwnerMoved(Unavailable):
    """A replica was asked to run a session's action as its owner but no longer owns it."""

    code = "session_owner_moved"


class Relayed(KartaError):
    """Another server's error answer, passed on as it was (a replica relays the answer of a
    session's owner, so the client cannot tell which replica it reached)."""

    def __init__(self, status: int, body: dict[str, Any], retry_after: int | None = None) -> None:
        super().__init__(str(body.get("message", "")))
        self.status = status
        self.relayed = body
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        return dict(self.relayed)

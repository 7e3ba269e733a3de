"""The SDK's exceptions: one class per HTTP status Karta answers, refined by error code, and two
for requests that got no answer.

Every `APIStatusError` carries the status (`status_code`), Karta's error code (`code`, e.g.
`session_not_found`), its `message`, the parsed JSON `body` (extra fields such as `request_id`
or `fields` are there) and the raw `response`. `KartaError` is the base of all of them.
"""

from __future__ import annotations

from typing import Any

import httpx


class KartaError(Exception):
    """Anything the SDK raises."""


class APIError(KartaError):
    def __init__(self, message: str, request: httpx.Request | None) -> None:
        super().__init__(message)
        self.message = message
        self.request = request


class APIConnectionError(APIError):
    """No answer: the server could not be reached, or the connection broke."""

    def __init__(self, request: httpx.Request | None, cause: Exception | None = None) -> None:
        detail = f": {cause}" if cause is not None and str(cause) else ""
        url = f" {request.url}" if request is not None else ""
        super().__init__(f"could not reach Karta at{url}{detail}", request)


class APITimeoutError(APIConnectionError):
    """No answer within the client's timeout."""


class APIStatusError(APIError):
    """An answer with a 4xx or 5xx status."""

    def __init__(self, response: httpx.Response, body: Any) -> None:
        fields = body if isinstance(body, dict) else {}
        self.response = response
        self.status_code = response.status_code
        self.body = body
        self.code: str = str(fields.get("error") or "http_error")
        text = fields.get("message") or (body if isinstance(body, str) else "")
        super().__init__(str(text), response.request)

    def __str__(self) -> str:
        return f"{self.status_code} {self.code}: {self.message}"

    @property
    def retry_after(self) -> float | None:
        """The seconds the server asked to wait (`Retry-After`), when it said."""
        from karta.client.retries import retry_after

        return retry_after(self.response.headers)


class BadRequestError(APIStatusError):  # 400
    pass


class AuthenticationError(APIStatusError):  # 401
    pass


class BudgetExhaustedError(APIStatusError):  # 402
    @property
    def reason(self) -> str | None:
        """Which cap is spent, e.g. `monthly_token_limit`."""
        return self.body.get("reason") if isinstance(self.body, dict) else None


class PermissionDeniedError(APIStatusError):  # 403
    pass


class NotFoundError(APIStatusError):  # 404
    pass


class SessionNotFoundError(NotFoundError):
    pass


class ConflictError(APIStatusError):  # 409
    pass


class TurnInProgressError(ConflictError):
    pass


class PendingInputError(ConflictError):
    """A decision is pending: answer `request_id` before sending a message."""

    @property
    def request_id(self) -> str | None:
        return self.body.get("request_id") if isinstance(self.body, dict) else None


class NoTurnRunningError(ConflictError):
    pass


class InputNotPendingError(ConflictError):
    pass


class SessionEndedError(ConflictError):
    pass


class UnprocessableEntityError(APIStatusError):  # 422
    pass


class RateLimitError(APIStatusError):  # 429
    pass


class InternalServerError(APIStatusError):  # other 5xx
    pass


class ServiceUnavailableError(InternalServerError):  # 503
    pass


class HarnessCapacityError(ServiceUnavailableError):
    pass


class ControlPlaneUnavailableError(ServiceUnavailableError):
    pass


BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: BudgetExhaustedError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}
BY_CODE: dict[str, type[APIStatusError]] = {
    "session_not_found": SessionNotFoundError,
    "turn_in_progress": TurnInProgressError,
    "pending_input": PendingInputError,
    "no_turn_running": NoTurnRunningError,
    "input_not_pending": InputNotPendingError,
    "session_ended": SessionEndedError,
    "harness_capacity": HarnessCapacityError,
    "control_plane_unavailable": ControlPlaneUnavailableError,
}


def status_error(response: httpx.Response) -> APIStatusError:
    """The exception for an error answer (its body already read): the code's class when it
    refines the status's, else the status's."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    status = response.status_code
    cls = BY_STATUS.get(status) or (InternalServerError if status >= 500 else APIStatusError)
    code = body.get("error") if isinstance(body, dict) else None
    refined = BY_CODE.get(code) if isinstance(code, str) else None
    if refined is not None and issubclass(refined, cls):
        cls = refined
    return cls(response, body)

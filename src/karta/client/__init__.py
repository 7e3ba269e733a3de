"""Karta's Python SDK: `Karta` and `AsyncKarta`, typed models and events, streams and errors.

See docs/sdk.md.
"""

from karta.client.base import Page
from karta.client.errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BudgetExhaustedError,
    ConflictError,
    ControlPlaneUnavailableError,
    HarnessCapacityError,
    InputNotPendingError,
    InternalServerError,
    KartaError,
    NotFoundError,
    NoTurnRunningError,
    PendingInputError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
    SessionEndedError,
    SessionNotFoundError,
    TurnInProgressError,
    UnprocessableEntityError,
)
from karta.client.karta import AsyncKarta, Karta
from karta.client.streaming import AsyncStream, Stream

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncKarta",
    "AsyncStream",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExhaustedError",
    "ConflictError",
    "ControlPlaneUnavailableError",
    "HarnessCapacityError",
    "InputNotPendingError",
    "InternalServerError",
    "Karta",
    "KartaError",
    "NoTurnRunningError",
    "NotFoundError",
    "Page",
    "PendingInputError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServiceUnavailableError",
    "SessionEndedError",
    "SessionNotFoundError",
    "Stream",
    "TurnInProgressError",
    "UnprocessableEntityError",
]

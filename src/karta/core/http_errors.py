"""Map every failure to one JSON shape, `{"error": <code>, "message": <text>, …}`, on both
planes' applications."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from karta.core.errors import KartaError, Relayed, RetryLater


class FieldError(BaseModel):
    field: str = Field(description="dotted path of the field, e.g. `metadata.customer`")
    message: str


class ErrorBody(BaseModel):
    """Some errors add fields of their own (a 403's `permission`, a 402's `reason`)."""

    error: str = Field(description="machine-readable error code")
    message: str = Field(description="what went wrong, for people")
    fields: list[FieldError] | None = Field(
        default=None, description="with `validation_error`: each invalid field"
    )


HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    402: "payment_required",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    431: "headers_too_large",
    502: "bad_gateway",
    503: "unavailable",
}


class ValidationFailed(KartaError):
    """422 `validation_error` with each `(field, problem)`: Pydantic's findings, and checks
    made outside it (a request-level check, a route's own) in the same shape."""

    status = 422
    code = "validation_error"

    def __init__(self, *problems: tuple[str, str]) -> None:
        summary = "; ".join(f"{field}: {problem}" for field, problem in problems)
        fields = [{"field": field, "message": problem} for field, problem in problems]
        super().__init__(summary or "invalid request", fields=fields)


def _field(loc: tuple[object, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def install(app: FastAPI) -> None:
    @app.exception_handler(KartaError)
    async def karta_error(_: Request, exc: KartaError) -> JSONResponse:
        retry_after = exc.retry_after if isinstance(exc, RetryLater | Relayed) else None
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        if exc.status == 401:
            headers = {"WWW-Authenticate": "Bearer"}
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        failed = ValidationFailed(*((_field(tuple(e["loc"])), e["msg"]) for e in exc.errors()))
        return JSONResponse(failed.body(), status_code=failed.status)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        code = HTTP_CODES.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else code
        return JSONResponse(
            {"error": code, "message": message},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )


def error_responses(*statuses: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI declarations of the error bodies a route can answer with."""
    return {s: {"model": ErrorBody, "description": HTTP_CODES[s]} for s in statuses}

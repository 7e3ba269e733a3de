"""What Karta's HTTP clients share: `KartaAPIError`, the error mapping and a JSON request helper."""

from __future__ import annotations

from typing import Any, Self

import httpx


class KartaAPIError(Exception):
    def __init__(self, status: int, code: str, message: str, body: Any) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.body = body


def raise_for(response: httpx.Response) -> None:
    if response.is_success:
        return
    response.read()
    try:
        body = response.json()
    except ValueError:
        body = {"error": "http_error", "message": response.text}
    raise KartaAPIError(
        response.status_code, body.get("error", "http_error"), body.get("message", ""), body
    )


class JSONClient:
    """A sync httpx client on one base URL whose answers are JSON (or empty)."""

    def __init__(self, base_url: str, headers: dict[str, str], timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _json(self, method: str, path: str, **kw: Any) -> Any:
        response = self._http.request(method, path, **kw)
        raise_for(response)
        return response.json() if response.content else None

"""`ControlClient`: the control plane's management API (orgs, members and invitations, keys,
provider keys and model settings, projects, releases, env vars, budgets, usage, audit).

client = ControlClient()      # url and credential from the environment or credentials.json
key = client.create_key("backend", ["write"], monthly_cost_limit_cents=5_000)
print(key["secret"])          # shown once

The base URL comes from the argument, `KARTA_CONTROL_URL` or `control_url` in
$KARTA_HOME/credentials.json. The credential is the argument, `KARTA_API_KEY`, the login token
`user_token` saved by `karta login`, or `api_key`, in that order. `org` (or `org` in
credentials.json) picks the organization for a user who belongs to several.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import IO, Any

from karta.client.base import JSONClient, raise_for
from karta.core.credentials_file import read_credentials
from karta.core.home import karta_home

DEFAULT_CONTROL_URL = "http://127.0.0.1:8001"
AUDIT_PAGE = 100
UPLOAD_CHUNK = 1 << 16
# An upload waits on the server's validation (it extracts and loads the app) before answering.
PUBLISH_TIMEOUT = 600.0


def _drop_none(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def _chunks(archive: bytes | IO[bytes]) -> Iterator[bytes]:
    if isinstance(archive, bytes | bytearray | memoryview):
        view = memoryview(archive)
        for start in range(0, len(view), UPLOAD_CHUNK):
            yield bytes(view[start : start + UPLOAD_CHUNK])
        return
    while chunk := archive.read(UPLOAD_CHUNK):
        yield chunk


def _remaining(archive: bytes | IO[bytes]) -> int | None:
    """The bytes left to send, when that can be known without reading them."""
    if isinstance(archive, bytes | bytearray | memoryview):
        return len(archive)
    try:
        here = archive.tell()
        end = archive.seek(0, os.SEEK_END)
        archive.seek(here)
    except (OSError, AttributeError, ValueError):
        return None
    return end - here


class ControlClient(JSONClient):
    def __init__(
        self,
        base_url: str | None = None,
        credential: str | None = None,
        org: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        stored = read_credentials(karta_home())
        base_url = (
            base_url
            or os.environ.get("KARTA_CONTROL_URL")
            or stored.get("control_url")
            or DEFAULT_CONTROL_URL
        )
        credential = (
            credential
            or os.environ.get("KARTA_API_KEY")
            or stored.get("user_token")
            or stored.get("api_key")
        )
        org = org or stored.get("org")
        headers = {}
        if credential:
            headers["Authorization"] = f"Bearer {credential}"
        if org:
            headers["Karta-Org"] = org
        super().__init__(base_url, headers, timeout)

    def _list(self, path: str) -> list[dict[str, Any]]:
        return list(self._json("GET", path)["data"])

    # Accounts and organizations
    def signup(self, email: str, password: str, org_name: str) -> dict[str, Any]:
        body = {"email": email, "password": password, "org_name": org_name}
        return dict(self._json("POST", "/v1/signup", json=body))

    def login(self, email: str, password: str) -> dict[str, Any]:
        body = {"email": email, "password": password}
        return dict(self._json("POST", "/v1/auth/login", json=body))

    def me(self) -> dict[str, Any]:
        return dict(self._json("GET", "/v1/me"))

    def list_orgs(self) -> list[dict[str, Any]]:
        return self._list("/v1/orgs")

    def create_org(self, name: str, slug: str | None = None) -> dict[str, Any]:
        return dict(self._json("POST", "/v1/orgs", json=_drop_none(name=name, slug=slug)))

    def org(self) -> dict[str, Any]:
        return dict(self._json("GET", "/v1/org"))

    def list_members(self) -> list[dict[str, Any]]:
        return self._list("/v1/members")

    def invite_member(self, email: str, role: str) -> dict[str, Any]:
        """A pending invitation: `email` becomes a member once they accept it."""
        return dict(self._json("POST", "/v1/members", json={"email": email, "role": role}))

    def list_invitations(self) -> list[dict[str, Any]]:
        """The organization's invitations nobody has answered (expired ones included)."""
        return self._list("/v1/members/invitations")

    def revoke_invitation(self, invitation_id: int) -> dict[str, Any]:
        return dict(self._json("DELETE", f"/v1/members/invitations/{invitation_id}"))

    def set_role(self, user_id: int, role: str) -> dict[str, Any]:
        return dict(self._json("PATCH", f"/v1/members/{user_id}", json={"role": role}))

    def remove_member(self, user_id: int) -> None:
        self._json("DELETE", f"/v1/members/{user_id}")

    # The caller's own invitations (a login token)
    def my_invitations(self) -> list[dict[str, Any]]:
        return self._list("/v1/invitations")

    def accept_invitation(self, invitation_id: int) -> dict[str, Any]:
        return dict(self._json("POST", f"/v1/invitations/{invitation_id}/accept"))

    def decline_invitation(self, invitation_id: int) -> dict[str, Any]:
        return dict(self._json("POST", f"/v1/invitations/{invitation_id}/decline"))

    # API keys
    def list_keys(self) -> list[dict[str, Any]]:
        return self._list("/v1/keys")

    def create_key(
        self,
        name: str,
        scopes: list[str],
        monthly_token_limit: int | None = None,
        monthly_cost_limit_cents: int | None = None,
    ) -> dict[str, Any]:
        """Answers `{api_key, secret}`; the secret is never shown again."""
        body = _drop_none(
            name=name,
            scopes=scopes,
            monthly_token_limit=monthly_token_limit,
            monthly_cost_limit_cents=monthly_cost_limit_cents,
        )
        return dict(self._json("POST", "/v1/keys", json=body))

    def get_key(self, key_id: int) -> dict[str, Any]:
        return dict(self._json("GET", f"/v1/keys/{key_id}"))

    def update_key(self, key_id: int, **limits: int | None) -> dict[str, Any]:
        """Set (an int) or clear (None) `monthly_token_limit` / `monthly_cost_limit_cents`;
        limits not named stay as they are."""
        return dict(self._json("PATCH", f"/v1/keys/{key_id}", json=limits))

    def revoke_key(self, key_id: int) -> dict[str, Any]:
        return dict(self._json("DELETE", f"/v1/keys/{key_id}"))

    # Provider keys (BYOK) and model settings: keys are write-only (listed by last four)
    def list_provider_keys(self, project: str | None = None) -> list[dict[str, Any]]:
        return list(
            self._json("GET", "/v1/provider_keys", params=_drop_none(project=project))["data"]
        )

    def set_provider_key(
        self,
        provider: str,
        label: str,
        credential: dict[str, str],
        project: str | None = None,
        validate: bool = True,
    ) -> dict[str, Any]:
        """Store the organization's (or `project`'s) key for `provider`, replacing the active
        one; checked with the provider first unless `validate` is False."""
        body = _drop_none(provider=provider, label=label, credential=credential, project=project)
        params = {"validate": str(validate).lower()}
        return dict(self._json("POST", "/v1/provider_keys", json=body, params=params))

    def get_provider_key(self, key_id: int) -> dict[str, Any]:
        return dict(self._json("GET", f"/v1/provider_keys/{key_id}"))

    def revoke_provider_key(self, key_id: int) -> dict[str, Any]:
        return dict(self._json("DELETE", f"/v1/provider_keys/{key_id}"))

    def model_settings(self, project: str | None = None) -> dict[str, Any]:
        return dict(self._json("GET", "/v1/model_settings", params=_drop_none(project=project)))

    def set_model_settings(
        self,
        provider: str | None = None,
        model: str | None = None,
        endpoint_url: str | None = None,
        project: str | None = None,
    ) -> dict[str, Any]:
        body = {"provider": provider, "model": model, "endpoint_url": endpoint_url}
        params = _drop_none(project=project)
        return dict(self._json("PUT", "/v1/model_settings", json=body, params=params))

    def clear_model_settings(self, project: str | None = None) -> None:
        self._json("DELETE", "/v1/model_settings", params=_drop_none(project=project))

    # Projects and end-user session tokens
    def list_projects(self) -> list[dict[str, Any]]:
        return self._list("/v1/projects")

    def create_project(self, slug: str, name: str | None = None) -> dict[str, Any]:
        return dict(self._json("POST", "/v1/projects", json=_drop_none(slug=slug, name=name)))

    def get_project(self, ref: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/v1/projects/{ref}"))

    def session_token(
        self, project: str, sub: str | None = None, ttl_seconds: int | None = None
    ) -> dict[str, Any]:
        body = _drop_none(sub=sub, ttl_seconds=ttl_seconds)
        return dict(self._json("POST", f"/v1/projects/{project}/session_tokens", json=body))

    # Releases
    def publish(
        self, project: str, archive: bytes | IO[bytes], activate: bool = True
    ) -> dict[str, Any]:
        """Upload a release archive (a gzip'd tar, e.g. from `karta.releases.archive.pack`),
        streamed in chunks from `archive` (bytes or a binary file, read from where it stands).

        Answers the release with `created`: True for a new version, False when the same content
        was published before (that earlier release, activated unless `activate` is False). A release
        that fails validation raises `KartaAPIError` 422 `release_invalid` whose `body["release"]`
        is the failed release with its `build_log`."""
        headers = {"Content-Type": "application/gzip"}
        size = _remaining(archive)
        if size is not None:
            headers["Content-Length"] = str(size)
        response = self._http.post(
            f"/v1/projects/{project}/releases",
            params={"activate": str(activate).lower()},
            content=_chunks(archive),
            headers=headers,
            timeout=max(PUBLISH_TIMEOUT, self._http.timeout.read or 0),
        )
        raise_for(response)
        return dict(response.json())

    def list_releases(self, project: str) -> list[dict[str, Any]]:
        return self._list(f"/v1/projects/{project}/releases")

    def get_release(self, project: str, version: str | int) -> dict[str, Any]:
        """`version` is `v3`, `"3"` or 3."""
        return dict(self._json("GET", f"/v1/projects/{project}/releases/{version}"))

    def activate(self, project: str, version: str | int) -> dict[str, Any]:
        return dict(self._json("POST", f"/v1/projects/{project}/releases/{version}/activate"))

    def rollback(self, project: str, to: str | int | None = None) -> dict[str, Any]:
        """Back to `to`, or to the newest ready release older than the active one."""
        body = {"to": to} if to is not None else None
        return dict(self._json("POST", f"/v1/projects/{project}/rollback", json=body))

    # Project env vars (values are write-only: the API shows a hint, never a value)
    def list_env(self, project: str) -> list[dict[str, Any]]:
        return self._list(f"/v1/projects/{project}/env")

    def set_env(self, project: str, name: str, value: str) -> dict[str, Any]:
        return dict(self._json("PUT", f"/v1/projects/{project}/env/{name}", json={"value": value}))

    def unset_env(self, project: str, name: str) -> None:
        self._json("DELETE", f"/v1/projects/{project}/env/{name}")

    # Money and audit
    def budget(self) -> dict[str, Any]:
        return dict(self._json("GET", "/v1/budget"))

    def set_budget(
        self, monthly_token_limit: int | None, monthly_cost_limit_cents: int | None
    ) -> dict[str, Any]:
        """Both caps are set at once; None clears one."""
        body = {
            "monthly_token_limit": monthly_token_limit,
            "monthly_cost_limit_cents": monthly_cost_limit_cents,
        }
        return dict(self._json("PUT", "/v1/budget", json=body))

    def usage(self, period: str | None = None) -> dict[str, Any]:
        return dict(self._json("GET", "/v1/usage", params=_drop_none(period=period)))

    def audit(self, after: int = 0, limit: int = AUDIT_PAGE) -> dict[str, Any]:
        """One page: `data` (rows with `seq > after`), the chain `head` and `next_after`."""
        return dict(self._json("GET", "/v1/audit", params={"after": after, "limit": limit}))

    def audit_pages(self, after: int = 0, limit: int = AUDIT_PAGE) -> Iterator[dict[str, Any]]:
        """Every page of rows after `after`, following `next_after` to the head."""
        while True:
            page = self.audit(after, limit)
            yield page
            if page.get("next_after") is None:
                return
            after = int(page["next_after"])

"""The control plane's management API: accounts, organizations, members and invitations, API
keys, provider keys (BYOK) and model settings, projects, session tokens, embed keys, releases and
env vars, budgets, usage and the audit log."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from functools import cached_property
from typing import IO, Any, TypeVar

from karta.client.base import Call, Page, drop_none, list_call, nothing
from karta.client.models import (
    ApiKey,
    AuditRow,
    Budget,
    Caller,
    CreatedEmbedKey,
    CreatedKey,
    CreatedProviderKey,
    EmbedKey,
    EnvVar,
    Invitation,
    LoggedIn,
    Member,
    ModelSettings,
    Organization,
    Project,
    ProviderKey,
    Release,
    SessionToken,
    SignedUp,
    UsageSummary,
)
from karta.client.resource import Resource, awaiting, blocking, segment

T = TypeVar("T")
M = TypeVar("M")
UPLOAD_CHUNK = 1 << 16
# An upload waits on the server's validation (it extracts and loads the app) before answering.
PUBLISH_TIMEOUT = 600.0


def listing(item: Callable[[Any], M]) -> Callable[[Any], list[M]]:
    """`parse` for a `{"data": [...]}` answer that is never paged."""
    return lambda body: [item(x) for x in body["data"]]


class ControlResource(Resource):
    def _call(self, method: str, path: str, parse: Callable[[Any], T], **kw: Any) -> Call[T]:
        return Call(method, path, parse, plane="control", headers=self._control_headers(), **kw)


class AccountCalls(ControlResource):
    def _signup(self, email: str, password: str, org_name: str) -> Call[SignedUp]:
        """An account and its organization; answers the first admin key's secret, once."""
        body = {"email": email, "password": password, "org_name": org_name}
        return self._call("POST", "/v1/signup", SignedUp.model_validate, json=body)

    def _login(self, email: str, password: str) -> Call[LoggedIn]:
        """A login token (use it as the control plane's credential)."""
        body = {"email": email, "password": password}
        return self._call("POST", "/v1/auth/login", LoggedIn.model_validate, json=body)

    def _me(self) -> Call[Caller]:
        return self._call("GET", "/v1/me", Caller.model_validate)


class OrgCalls(ControlResource):
    def _list(self) -> Call[list[Organization]]:
        """The caller's organizations and their role in each (a login token)."""
        return self._call("GET", "/v1/orgs", listing(Organization.model_validate))

    def _create(self, name: str, *, slug: str | None = None) -> Call[Organization]:
        body = drop_none(name=name, slug=slug)
        return self._call("POST", "/v1/orgs", Organization.model_validate, json=body)

    def _current(self) -> Call[Organization]:
        """The organization the credential acts in."""
        return self._call("GET", "/v1/org", Organization.model_validate)


class MemberInvitationCalls(ControlResource):
    def _list(self) -> Call[list[Invitation]]:
        """The organization's invitations nobody has answered (expired ones included)."""
        return self._call("GET", "/v1/members/invitations", listing(Invitation.model_validate))

    def _revoke(self, invitation_id: int) -> Call[Invitation]:
        path = f"/v1/members/invitations/{segment(invitation_id)}"
        return self._call("DELETE", path, Invitation.model_validate)


class MemberCalls(ControlResource):
    def _list(self) -> Call[list[Member]]:
        return self._call("GET", "/v1/members", listing(Member.model_validate))

    def _invite(self, email: str, role: str) -> Call[Invitation]:
        """A pending invitation: `email` becomes a member once they accept it."""
        body = {"email": email, "role": role}
        return self._call("POST", "/v1/members", Invitation.model_validate, json=body)

    def _update(self, user_id: int, *, role: str) -> Call[Member]:
        path = f"/v1/members/{segment(user_id)}"
        return self._call("PATCH", path, Member.model_validate, json={"role": role})

    def _remove(self, user_id: int) -> Call[None]:
        return self._call("DELETE", f"/v1/members/{segment(user_id)}", nothing)


class InvitationCalls(ControlResource):
    """The invitations addressed to the caller (a login token)."""

    def _list(self) -> Call[list[Invitation]]:
        return self._call("GET", "/v1/invitations", listing(Invitation.model_validate))

    def _accept(self, invitation_id: int) -> Call[Invitation]:
        path = f"/v1/invitations/{segment(invitation_id)}/accept"
        return self._call("POST", path, Invitation.model_validate)

    def _decline(self, invitation_id: int) -> Call[Invitation]:
        path = f"/v1/invitations/{segment(invitation_id)}/decline"
        return self._call("POST", path, Invitation.model_validate)


class KeyCalls(ControlResource):
    def _list(self) -> Call[list[ApiKey]]:
        return self._call("GET", "/v1/keys", listing(ApiKey.model_validate))

    def _create(
        self,
        name: str,
        *,
        scopes: list[str],
        monthly_token_limit: int | None = None,
        monthly_cost_limit_cents: int | None = None,
    ) -> Call[CreatedKey]:
        """A new key; its `secret` is in this answer and never again."""
        body = drop_none(
            name=name,
            scopes=scopes,
            monthly_token_limit=monthly_token_limit,
            monthly_cost_limit_cents=monthly_cost_limit_cents,
        )
        return self._call("POST", "/v1/keys", CreatedKey.model_validate, json=body)

    def _get(self, key_id: int) -> Call[ApiKey]:
        return self._call("GET", f"/v1/keys/{segment(key_id)}", ApiKey.model_validate)

    def _update(self, key_id: int, **limits: int | None) -> Call[ApiKey]:
        """Set (an int) or clear (None) `monthly_token_limit` / `monthly_cost_limit_cents`;
        limits not named stay as they are."""
        path = f"/v1/keys/{segment(key_id)}"
        return self._call("PATCH", path, ApiKey.model_validate, json=limits)

    def _revoke(self, key_id: int) -> Call[ApiKey]:
        """Data planes stop accepting the key at once."""
        return self._call("DELETE", f"/v1/keys/{segment(key_id)}", ApiKey.model_validate)


class ProviderKeyCalls(ControlResource):
    """The organization's own model-provider keys (BYOK), each the organization's or one
    project's; secrets go in and never come back (answers show the last four characters)."""

    def _list(self, *, project: str | None = None) -> Call[list[ProviderKey]]:
        """Every key, active and revoked (only `project`'s, when named)."""
        params = drop_none(project=project)
        return self._call(
            "GET", "/v1/provider_keys", listing(ProviderKey.model_validate), params=params
        )

    def _create(
        self,
        provider: str,
        *,
        label: str,
        credential: dict[str, str],
        project: str | None = None,
        validate: bool = True,
    ) -> Call[CreatedProviderKey]:
        """Store the organization's (or `project`'s) key for `provider`, replacing the active
        one; checked with the provider first unless `validate` is False. `credential`:
        `{api_key}` (anthropic, openai, openrouter); `{access_key_id, secret_access_key,
        session_token?, region}` (bedrock); `{service_account, project, region}` (vertex)."""
        body = drop_none(provider=provider, label=label, credential=credential, project=project)
        params = {"validate": str(validate).lower()}
        return self._call(
            "POST",
            "/v1/provider_keys",
            CreatedProviderKey.model_validate,
            json=body,
            params=params,
        )

    def _get(self, key_id: int) -> Call[ProviderKey]:
        path = f"/v1/provider_keys/{segment(key_id)}"
        return self._call("GET", path, ProviderKey.model_validate)

    def _revoke(self, key_id: int) -> Call[ProviderKey]:
        """Revoke and shred the key; model calls stop using it at once."""
        path = f"/v1/provider_keys/{segment(key_id)}"
        return self._call("DELETE", path, ProviderKey.model_validate)


class ModelSettingsCalls(ControlResource):
    """Which provider and model the organization's (or a project's) model calls use."""

    def _get(self, *, project: str | None = None) -> Call[ModelSettings]:
        """The organization's settings, or those `project` overrides them with (all None when it
        has none of its own)."""
        params = drop_none(project=project)
        return self._call("GET", "/v1/model_settings", ModelSettings.model_validate, params=params)

    def _set(
        self,
        *,
        provider: str | None = None,
        model: str | None = None,
        endpoint_url: str | None = None,
        project: str | None = None,
    ) -> Call[ModelSettings]:
        """Replace the settings whole (what is left out becomes None)."""
        body = {"provider": provider, "model": model, "endpoint_url": endpoint_url}
        params = drop_none(project=project)
        return self._call(
            "PUT", "/v1/model_settings", ModelSettings.model_validate, json=body, params=params
        )

    def _clear(self, *, project: str | None = None) -> Call[None]:
        """Remove the settings (a project then follows the organization's)."""
        params = drop_none(project=project)
        return self._call("DELETE", "/v1/model_settings", nothing, params=params)


class BudgetCalls(ControlResource):
    def _get(self) -> Call[Budget]:
        """The organization's monthly caps and this month's use against them."""
        return self._call("GET", "/v1/budget", Budget.model_validate)

    def _set(
        self, *, monthly_token_limit: int | None, monthly_cost_limit_cents: int | None
    ) -> Call[Budget]:
        """Both caps at once; None removes one. Turns over a cap get `BudgetExhaustedError`."""
        body = {
            "monthly_token_limit": monthly_token_limit,
            "monthly_cost_limit_cents": monthly_cost_limit_cents,
        }
        return self._call("PUT", "/v1/budget", Budget.model_validate, json=body)


class UsageCalls(ControlResource):
    def _get(self, *, period: str | None = None) -> Call[UsageSummary]:
        """A month's tokens and cost (`period` `YYYY-MM`, default this one): totals, per day,
        per key, per model, and the budget."""
        params = drop_none(period=period)
        return self._call("GET", "/v1/usage", UsageSummary.model_validate, params=params)


class AuditCalls(ControlResource):
    def _list(self, *, after: int = 0, limit: int | None = None) -> Call[Page[AuditRow]]:
        """The audit log's rows after seq `after`: a page (its `body["head"]` is the chain's
        head) that iterates every later page too."""
        params = drop_none(after=after, limit=limit)
        return list_call(
            "/v1/audit",
            AuditRow.model_validate,
            params,
            plane="control",
            headers=self._control_headers(),
            cursor="next_after",
        )


class ProjectBound(ControlResource):
    """A resource of one project's (`project` given at creation, else per call)."""

    def __init__(self, client: Any, project: str | None = None, org: str | None = None) -> None:
        super().__init__(client, org=org)
        self._project = project

    def _path(self, project: str | None, tail: str) -> str:
        ref = project or self._project
        if not ref:
            raise TypeError("name the project (or use client.projects(ref))")
        return f"/v1/projects/{segment(ref)}{tail}"


class SessionTokenCalls(ProjectBound):
    def _create(
        self, project: str | None = None, *, sub: str | None = None, ttl_seconds: int | None = None
    ) -> Call[SessionToken]:
        """A short-lived token for one project's routes, for an end user: with `sub`, sessions
        made with it belong to that user and only they see them."""
        body = drop_none(sub=sub, ttl_seconds=ttl_seconds)
        path = self._path(project, "/session_tokens")
        return self._call("POST", path, SessionToken.model_validate, json=body)


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


class ReleaseCalls(ProjectBound):
    def _list(self) -> Call[list[Release]]:
        """The project's releases, newest first."""
        return self._call("GET", self._path(None, "/releases"), listing(Release.model_validate))

    def _get(self, version: str | int) -> Call[Release]:
        """`version` is `v3`, `"3"` or 3."""
        path = self._path(None, f"/releases/{segment(version)}")
        return self._call("GET", path, Release.model_validate)

    def _publish(self, archive: bytes | IO[bytes], *, activate: bool = True) -> Call[Release]:
        """Upload a release archive (a gzip'd tar, e.g. from `karta.releases.archive.pack`),
        streamed from `archive` (bytes, or a binary file read from where it stands). The answer's
        `created` is False when the same content was published before (that release is
        answered). One that fails validation raises `UnprocessableEntityError` `release_invalid`
        whose `body["release"]` is the failed release with its `build_log`."""
        headers = {**self._control_headers(), "Content-Type": "application/gzip"}
        size = _remaining(archive)
        if size is not None:
            headers["Content-Length"] = str(size)
        return Call(
            "POST",
            self._path(None, "/releases"),
            Release.model_validate,
            plane="control",
            params={"activate": str(activate).lower()},
            content=_chunks(archive),
            headers=headers,
            timeout=PUBLISH_TIMEOUT,
        )

    def _activate(self, version: str | int) -> Call[Release]:
        path = self._path(None, f"/releases/{segment(version)}/activate")
        return self._call("POST", path, Release.model_validate)

    def _rollback(self, *, to: str | int | None = None) -> Call[Release]:
        """Back to `to`, or to the newest ready release older than the active one."""
        body = {"to": to} if to is not None else None
        return self._call("POST", self._path(None, "/rollback"), Release.model_validate, json=body)


class EnvCalls(ProjectBound):
    """The project's env vars: values are write-only (answers show a hint, never a value)."""

    def _list(self) -> Call[list[EnvVar]]:
        return self._call("GET", self._path(None, "/env"), listing(EnvVar.model_validate))

    def _set(self, name: str, value: str) -> Call[EnvVar]:
        path = self._path(None, f"/env/{segment(name)}")
        return self._call("PUT", path, EnvVar.model_validate, json={"value": value})

    def _unset(self, name: str) -> Call[None]:
        return self._call("DELETE", self._path(None, f"/env/{segment(name)}"), nothing)


class EmbedKeyCalls(ProjectBound):
    """The project's embed keys: `pk_live_…` keys a web page uses to start end-user sessions."""

    def _key(self, key_id: int, tail: str = "") -> str:
        return self._path(None, f"/embed_keys/{segment(key_id)}{tail}")

    def _list(self) -> Call[list[EmbedKey]]:
        return self._call("GET", self._path(None, "/embed_keys"), listing(EmbedKey.model_validate))

    def _create(self, name: str, **settings: Any) -> Call[CreatedEmbedKey]:
        """A new key; `settings` are the key's fields (allowed_origins, theme, hosted_page,
        allow_anonymous, anonymous_cost_limit_cents, anonymous_period). The answer carries the
        identity secret, once."""
        body = drop_none(name=name, **settings)
        path = self._path(None, "/embed_keys")
        return self._call("POST", path, CreatedEmbedKey.model_validate, json=body)

    def _get(self, key_id: int) -> Call[EmbedKey]:
        return self._call("GET", self._key(key_id), EmbedKey.model_validate)

    def _update(self, key_id: int, **settings: Any) -> Call[EmbedKey]:
        """Change what is named; what is left out (or None) stays."""
        body = drop_none(**settings)
        return self._call("PATCH", self._key(key_id), EmbedKey.model_validate, json=body)

    def _rotate(self, key_id: int) -> Call[CreatedEmbedKey]:
        """A new key and identity secret; the old ones stop working at once."""
        return self._call("POST", self._key(key_id, "/rotate"), CreatedEmbedKey.model_validate)

    def _revoke(self, key_id: int) -> Call[EmbedKey]:
        return self._call("DELETE", self._key(key_id), EmbedKey.model_validate)


class ProjectCalls(ControlResource):
    def _list(self) -> Call[list[Project]]:
        return self._call("GET", "/v1/projects", listing(Project.model_validate))

    def _create(self, slug: str, *, name: str | None = None) -> Call[Project]:
        body = drop_none(slug=slug, name=name)
        return self._call("POST", "/v1/projects", Project.model_validate, json=body)

    def _get(self, ref: str) -> Call[Project]:
        """A project by slug or id."""
        return self._call("GET", f"/v1/projects/{segment(ref)}", Project.model_validate)


# --- the twins ---------------------------------------------------------------------------------


class Account(AccountCalls):
    signup = blocking(AccountCalls._signup)
    login = blocking(AccountCalls._login)
    me = blocking(AccountCalls._me)


class AsyncAccount(AccountCalls):
    signup = awaiting(AccountCalls._signup)
    login = awaiting(AccountCalls._login)
    me = awaiting(AccountCalls._me)


class Orgs(OrgCalls):
    list = blocking(OrgCalls._list)
    create = blocking(OrgCalls._create)
    current = blocking(OrgCalls._current)


class AsyncOrgs(OrgCalls):
    list = awaiting(OrgCalls._list)
    create = awaiting(OrgCalls._create)
    current = awaiting(OrgCalls._current)


class MemberInvitations(MemberInvitationCalls):
    list = blocking(MemberInvitationCalls._list)
    revoke = blocking(MemberInvitationCalls._revoke)


class AsyncMemberInvitations(MemberInvitationCalls):
    list = awaiting(MemberInvitationCalls._list)
    revoke = awaiting(MemberInvitationCalls._revoke)


class Members(MemberCalls):
    list = blocking(MemberCalls._list)
    invite = blocking(MemberCalls._invite)
    update = blocking(MemberCalls._update)
    remove = blocking(MemberCalls._remove)

    @cached_property
    def invitations(self) -> MemberInvitations:
        return MemberInvitations(self._client, org=self._org)


class AsyncMembers(MemberCalls):
    list = awaiting(MemberCalls._list)
    invite = awaiting(MemberCalls._invite)
    update = awaiting(MemberCalls._update)
    remove = awaiting(MemberCalls._remove)

    @cached_property
    def invitations(self) -> AsyncMemberInvitations:
        return AsyncMemberInvitations(self._client, org=self._org)


class Invitations(InvitationCalls):
    list = blocking(InvitationCalls._list)
    accept = blocking(InvitationCalls._accept)
    decline = blocking(InvitationCalls._decline)


class AsyncInvitations(InvitationCalls):
    list = awaiting(InvitationCalls._list)
    accept = awaiting(InvitationCalls._accept)
    decline = awaiting(InvitationCalls._decline)


class Keys(KeyCalls):
    list = blocking(KeyCalls._list)
    create = blocking(KeyCalls._create)
    get = blocking(KeyCalls._get)
    update = blocking(KeyCalls._update)
    revoke = blocking(KeyCalls._revoke)


class AsyncKeys(KeyCalls):
    list = awaiting(KeyCalls._list)
    create = awaiting(KeyCalls._create)
    get = awaiting(KeyCalls._get)
    update = awaiting(KeyCalls._update)
    revoke = awaiting(KeyCalls._revoke)


class ProviderKeys(ProviderKeyCalls):
    list = blocking(ProviderKeyCalls._list)
    create = blocking(ProviderKeyCalls._create)
    get = blocking(ProviderKeyCalls._get)
    revoke = blocking(ProviderKeyCalls._revoke)


class AsyncProviderKeys(ProviderKeyCalls):
    list = awaiting(ProviderKeyCalls._list)
    create = awaiting(ProviderKeyCalls._create)
    get = awaiting(ProviderKeyCalls._get)
    revoke = awaiting(ProviderKeyCalls._revoke)


class ModelSettingsResource(ModelSettingsCalls):
    get = blocking(ModelSettingsCalls._get)
    set = blocking(ModelSettingsCalls._set)
    clear = blocking(ModelSettingsCalls._clear)


class AsyncModelSettingsResource(ModelSettingsCalls):
    get = awaiting(ModelSettingsCalls._get)
    set = awaiting(ModelSettingsCalls._set)
    clear = awaiting(ModelSettingsCalls._clear)


class Budgets(BudgetCalls):
    get = blocking(BudgetCalls._get)
    set = blocking(BudgetCalls._set)


class AsyncBudgets(BudgetCalls):
    get = awaiting(BudgetCalls._get)
    set = awaiting(BudgetCalls._set)


class Usage(UsageCalls):
    get = blocking(UsageCalls._get)


class AsyncUsage(UsageCalls):
    get = awaiting(UsageCalls._get)


class Audit(AuditCalls):
    list = blocking(AuditCalls._list)


class AsyncAudit(AuditCalls):
    list = awaiting(AuditCalls._list)


class SessionTokens(SessionTokenCalls):
    create = blocking(SessionTokenCalls._create)


class AsyncSessionTokens(SessionTokenCalls):
    create = awaiting(SessionTokenCalls._create)


class Releases(ReleaseCalls):
    list = blocking(ReleaseCalls._list)
    get = blocking(ReleaseCalls._get)
    publish = blocking(ReleaseCalls._publish)
    activate = blocking(ReleaseCalls._activate)
    rollback = blocking(ReleaseCalls._rollback)


class AsyncReleases(ReleaseCalls):
    list = awaiting(ReleaseCalls._list)
    get = awaiting(ReleaseCalls._get)
    publish = awaiting(ReleaseCalls._publish)
    activate = awaiting(ReleaseCalls._activate)
    rollback = awaiting(ReleaseCalls._rollback)


class EmbedKeys(EmbedKeyCalls):
    list = blocking(EmbedKeyCalls._list)
    create = blocking(EmbedKeyCalls._create)
    get = blocking(EmbedKeyCalls._get)
    update = blocking(EmbedKeyCalls._update)
    rotate = blocking(EmbedKeyCalls._rotate)
    revoke = blocking(EmbedKeyCalls._revoke)


class AsyncEmbedKeys(EmbedKeyCalls):
    list = awaiting(EmbedKeyCalls._list)
    create = awaiting(EmbedKeyCalls._create)
    get = awaiting(EmbedKeyCalls._get)
    update = awaiting(EmbedKeyCalls._update)
    rotate = awaiting(EmbedKeyCalls._rotate)
    revoke = awaiting(EmbedKeyCalls._revoke)


class Env(EnvCalls):
    list = blocking(EnvCalls._list)
    set = blocking(EnvCalls._set)
    unset = blocking(EnvCalls._unset)


class AsyncEnv(EnvCalls):
    list = awaiting(EnvCalls._list)
    set = awaiting(EnvCalls._set)
    unset = awaiting(EnvCalls._unset)

"""Projects: `client.projects.list/create/get` on the control plane, and `client.projects(ref)`,
one project's route family — its sessions and app on the data plane (`/v1/projects/{ref}/…`),
its session tokens, embed keys, releases and env vars on the control plane.

`ref` is the project's slug or id, optionally after its organization's slug (`"acme/web"`),
which picks the organization for a user who belongs to several.
"""

from __future__ import annotations

from functools import cached_property

from karta.client.base import BaseClient
from karta.client.resource import awaiting, blocking, segment
from karta.client.resources.management import (
    AsyncEmbedKeys,
    AsyncEnv,
    AsyncReleases,
    AsyncSessionTokens,
    EmbedKeys,
    Env,
    ProjectCalls,
    Releases,
    SessionTokens,
)
from karta.client.resources.sessions import App, AsyncApp, AsyncSessions, Sessions


def split_ref(ref: str) -> tuple[str | None, str]:
    """`"acme/web"` → (`"acme"`, `"web"`); `"web"` → (None, `"web"`)."""
    org, _, project = ref.rpartition("/")
    if not project:
        raise ValueError(f"not a project ref: {ref!r}")
    return org or None, project


class _Scope:
    def __init__(self, client: BaseClient, ref: str) -> None:
        self._client = client
        self.org, self.ref = split_ref(ref)
        self._root = f"/v1/projects/{segment(self.ref)}"


class ProjectScope(_Scope):
    @cached_property
    def sessions(self) -> Sessions:
        return Sessions(self._client, self._root)

    @cached_property
    def app(self) -> App:
        return App(self._client, self._root)

    @cached_property
    def session_tokens(self) -> SessionTokens:
        return SessionTokens(self._client, self.ref, self.org)

    @cached_property
    def releases(self) -> Releases:
        return Releases(self._client, self.ref, self.org)

    @cached_property
    def env(self) -> Env:
        return Env(self._client, self.ref, self.org)

    @cached_property
    def embed_keys(self) -> EmbedKeys:
        return EmbedKeys(self._client, self.ref, self.org)


class AsyncProjectScope(_Scope):
    @cached_property
    def sessions(self) -> AsyncSessions:
        return AsyncSessions(self._client, self._root)

    @cached_property
    def app(self) -> AsyncApp:
        return AsyncApp(self._client, self._root)

    @cached_property
    def session_tokens(self) -> AsyncSessionTokens:
        return AsyncSessionTokens(self._client, self.ref, self.org)

    @cached_property
    def releases(self) -> AsyncReleases:
        return AsyncReleases(self._client, self.ref, self.org)

    @cached_property
    def env(self) -> AsyncEnv:
        return AsyncEnv(self._client, self.ref, self.org)

    @cached_property
    def embed_keys(self) -> AsyncEmbedKeys:
        return AsyncEmbedKeys(self._client, self.ref, self.org)


class Projects(ProjectCalls):
    list = blocking(ProjectCalls._list)
    create = blocking(ProjectCalls._create)
    get = blocking(ProjectCalls._get)

    def __call__(self, ref: str) -> ProjectScope:
        return ProjectScope(self._client, ref)


class AsyncProjects(ProjectCalls):
    list = awaiting(ProjectCalls._list)
    create = awaiting(ProjectCalls._create)
    get = awaiting(ProjectCalls._get)

    def __call__(self, ref: str) -> AsyncProjectScope:
        return AsyncProjectScope(self._client, ref)

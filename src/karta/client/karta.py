"""`Karta` and `AsyncKarta`: the session API (data plane) and the management API (control plane)
of one Karta deployment, as resources that mirror the URL paths.

    client = Karta()                                      # see karta.client.config
    session = client.sessions.create(metadata={"customer": "c-42"})
    with client.sessions.messages.stream(session.id, "Which roast is light?") as stream:
        for text in stream.text_stream:
            print(text, end="")
"""

from __future__ import annotations

from functools import cached_property

import httpx

from karta.client.base import DEFAULT_TIMEOUT, AsyncAPIClient, SyncAPIClient
from karta.client.config import ClientConfig
from karta.client.resources import management as m
from karta.client.resources.projects import AsyncProjects, Projects
from karta.client.resources.sessions import App, AsyncApp, AsyncSessions, Sessions

DEFAULT_MAX_RETRIES = 2


class Karta(SyncAPIClient):
    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        control_url: str | None = None,
        org: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        http_client: httpx.Client | None = None,
    ) -> None:
        """`api_key` (an API key, or a session token for a project's routes), `base_url` (the
        data plane), `control_url` (the control plane) and `org` default as
        `karta.client.config` says; `max_retries` bounds retries of 429/503 answers and of
        failed connections."""
        config = ClientConfig.resolve(
            api_key=api_key, base_url=base_url, control_url=control_url, org=org
        )
        super().__init__(config, timeout=timeout, max_retries=max_retries, http_client=http_client)

    sessions = cached_property(lambda self: Sessions(self))
    app = cached_property(lambda self: App(self))
    projects = cached_property(lambda self: Projects(self))
    session_tokens = cached_property(lambda self: m.SessionTokens(self))
    keys = cached_property(lambda self: m.Keys(self))
    provider_keys = cached_property(lambda self: m.ProviderKeys(self))
    model_settings = cached_property(lambda self: m.ModelSettingsResource(self))
    budget = cached_property(lambda self: m.Budgets(self))
    usage = cached_property(lambda self: m.Usage(self))
    audit = cached_property(lambda self: m.Audit(self))
    account = cached_property(lambda self: m.Account(self))
    orgs = cached_property(lambda self: m.Orgs(self))
    members = cached_property(lambda self: m.Members(self))
    invitations = cached_property(lambda self: m.Invitations(self))


class AsyncKarta(AsyncAPIClient):
    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        control_url: str | None = None,
        org: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        """As `Karta`, with coroutines for answers and async iterators for streams and pages."""
        config = ClientConfig.resolve(
            api_key=api_key, base_url=base_url, control_url=control_url, org=org
        )
        super().__init__(config, timeout=timeout, max_retries=max_retries, http_client=http_client)

    sessions = cached_property(lambda self: AsyncSessions(self))
    app = cached_property(lambda self: AsyncApp(self))
    projects = cached_property(lambda self: AsyncProjects(self))
    session_tokens = cached_property(lambda self: m.AsyncSessionTokens(self))
    keys = cached_property(lambda self: m.AsyncKeys(self))
    provider_keys = cached_property(lambda self: m.AsyncProviderKeys(self))
    model_settings = cached_property(lambda self: m.AsyncModelSettingsResource(self))
    budget = cached_property(lambda self: m.AsyncBudgets(self))
    usage = cached_property(lambda self: m.AsyncUsage(self))
    audit = cached_property(lambda self: m.AsyncAudit(self))
    account = cached_property(lambda self: m.AsyncAccount(self))
    orgs = cached_property(lambda self: m.AsyncOrgs(self))
    members = cached_property(lambda self: m.AsyncMembers(self))
    invitations = cached_property(lambda self: m.AsyncInvitations(self))

"""Consumer adapters: the official OpenAI and Anthropic SDKs talk to a Karta project.

Each adapter is a pure projection of Karta's one event stream onto a provider's wire format
(`openai_chat`, `openai_responses`, `anthropic_messages`, `managed_agents`), served by routers
on the project route family (`openai_routes`, `anthropic_routes`, `managed_routes`) with the
family's own caller resolution, budget gate, tenancy and release pinning. See docs/adapters.md.
"""

from __future__ import annotations

from fastapi import APIRouter

from karta.dataplane.auth import Resolver


def routers(resolve: Resolver, *, errors: tuple[int, ...]) -> list[APIRouter]:
    """Every adapter's router, to mount under `/v1/projects/{ref}`."""
    from karta.dataplane.adapters import anthropic_routes, managed_routes, openai_routes

    return [
        openai_routes.router(resolve, errors=errors),
        anthropic_routes.router(resolve, errors=errors),
        managed_routes.router(resolve, errors=errors, base="/managed-agents"),
        managed_routes.router(resolve, errors=errors, base="/anthropic/v1"),
    ]

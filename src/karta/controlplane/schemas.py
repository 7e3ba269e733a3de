"""Request bodies of the control plane's management API (the internal API's are the planes'
contract, `karta.core.internal_api`). Money and token counts are strict integers: a float or a
numeric string is a 422, never silently rounded."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from karta.controlplane.permissions import ROLES
from karta.core import embed
from karta.core.internal_api import Count
from karta.core.providers import Provider
from karta.core.session_tokens import DEFAULT_TTL, MAX_TTL

Int64 = Annotated[int, Field(strict=True, ge=-(2**63), le=2**63 - 1)]
Role = Literal["owner", "admin", "developer", "billing", "viewer"]
Scope = Literal["read", "write", "admin"]
Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]
assert set(ROLES) == set(Role.__args__)  # type: ignore[attr-defined]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _email(value: str) -> str:
    value = value.strip().lower()
    local, _, domain = value.partition("@")
    if not local or "." not in domain or " " in value or len(value) > 320:
        raise ValueError("not an email address")
    return value


class Signup(Body):
    email: str
    password: str = Field(min_length=8, max_length=1024)
    org_name: str = Field(min_length=1, max_length=200)

    _check_email = field_validator("email")(_email)


class Login(Body):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)


class CreateOrg(Body):
    name: str = Field(min_length=1, max_length=200)
    slug: Slug | None = None


class InviteMember(Body):
    email: str
    role: Role

    _check_email = field_validator("email")(_email)


class UpdateMember(Body):
    role: Role


class Limits(Body):
    monthly_token_limit: Count | None = None
    monthly_cost_limit_cents: Count | None = None


class CreateKey(Limits):
    name: str = Field(min_length=1, max_length=200)
    scopes: list[Scope] = Field(min_length=1)


class CreateProject(Body):
    slug: Slug
    name: str | None = Field(default=None, max_length=200)


class MintSessionToken(Body):
    sub: str | None = Field(default=None, min_length=1, max_length=200)
    ttl_seconds: int = Field(default=DEFAULT_TTL, strict=True, ge=1, le=MAX_TTL)


class Rollback(Body):
    to: Annotated[str, Field(max_length=16)] | Int64 | None = Field(
        default=None, description="a version, e.g. 'v3' or 3"
    )


class SetEnvVar(Body):
    value: str = Field(max_length=32_768)


def _origins(value: list[str]) -> list[str]:
    canonical = [embed.normalize_origin(o) for o in value]
    return list(dict.fromkeys(canonical))  # one of each, in the order given


class EmbedKeySettings(Body):
    """What an embed key admits and how its widget looks; on update, fields left out stay."""

    allowed_origins: list[str] = Field(
        default_factory=list,
        max_length=embed.MAX_ORIGINS,
        description="exact origins (scheme://host[:port]) whose pages may use the key",
    )
    theme: dict[str, str] = Field(
        default_factory=dict, description="widget CSS custom properties, e.g. {'accent': '#0f766e'}"
    )
    enabled: bool = True
    hosted_page: bool = Field(
        default=False, description="also serve the project's hosted chat page with this key"
    )
    allow_anonymous: bool = Field(
        default=True, description="false: only end users verified by an identity token"
    )
    anonymous_cost_limit_cents: Count | None = Field(
        default=None, description="what anonymous end users may spend per period; null: no cap"
    )
    anonymous_period: Literal["day", "month"] = "month"

    _check_origins = field_validator("allowed_origins")(_origins)
    _check_theme = field_validator("theme", mode="before")(embed.check_theme)


class CreateEmbedKey(EmbedKeySettings):
    name: str = Field(min_length=1, max_length=200)


class UpdateEmbedKey(EmbedKeySettings):
    name: str = Field(default="", min_length=1, max_length=200)


class CreateProviderKey(Body):
    provider: Provider
    label: str = Field(min_length=1, max_length=200)
    project: str | None = Field(
        default=None, max_length=64, description="a project's slug or id; omit for the org's key"
    )
    credential: dict[str, str] = Field(
        max_length=8,
        description="anthropic, openai, openrouter: {api_key}; bedrock: {access_key_id, "
        "secret_access_key, session_token?, region}; vertex: {service_account (the key file's "
        "JSON text), project, region}",
    )


ModelName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@/+-]{0,127}$")]


class SetModelSettings(Body):
    provider: Provider | None = None
    model: ModelName | None = None
    endpoint_url: str | None = Field(default=None, min_length=1, max_length=2048)

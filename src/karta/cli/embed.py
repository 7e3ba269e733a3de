"""`karta embed-keys …`: a project's publishable keys for the chat widget (origins, theme,
hosted page, anonymous users and their spend cap; rotate, revoke); and `karta open`, which
opens a project's hosted chat page in the browser (giving the project a hosted-page key first
if it has none)."""

from __future__ import annotations

import webbrowser
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from karta.cli import manage_render as show
from karta.cli.control import Connection, connected, plain, stderr, stdout
from karta.core.credentials_file import read_credentials
from karta.core.home import karta_home

if TYPE_CHECKING:
    from karta.client import Karta

embed_app = typer.Typer(help="Publishable embed keys for the chat widget.", no_args_is_help=True)
DEFAULT_DATA_PLANE = "http://127.0.0.1:8000"

Project = Annotated[str, typer.Argument(metavar="PROJECT", help="The project's slug or id.")]
KeyId = Annotated[int, typer.Argument(metavar="ID", help="The embed key's id.")]
Origins = Annotated[
    list[str] | None,
    typer.Option("--origin", help="An allowed origin, scheme://host[:port] (repeatable)."),
]
Theme = Annotated[
    list[str] | None,
    typer.Option("--theme", help="A widget theme value, NAME=VALUE, e.g. accent=#0f766e."),
]
Period = Annotated[str | None, typer.Option(help="The cap's period: day or month.")]
CapCents = Annotated[
    int | None, typer.Option(help="What anonymous users may spend per period, in cents.")
]


def _theme(pairs: list[str] | None) -> dict[str, str] | None:
    if pairs is None:
        return None
    theme = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            stderr().print(f"[red]--theme takes NAME=VALUE, not {escape(pair)!r}[/]")
            raise typer.Exit(2)
        theme[name.strip()] = value.strip()
    return theme


def _created(answer: dict[str, Any]) -> None:
    key = answer["embed_key"]
    for line in show.embed_key_summary(key):
        stdout().print(line, markup=False)
    stderr().print(
        "The identity secret signs your users (HMAC-SHA256 of the user id, on your backend); "
        "it is shown once:"
    )
    stdout().print(answer["identity_secret"], markup=False)


@embed_app.command("list")
@connected()
def embed_list(connection: Connection, project: Project) -> None:
    """List the project's embed keys."""
    with connection.client() as client:
        keys = plain(client.projects(project).embed_keys.list())
    stdout().print(show.embed_keys_table(keys))


@embed_app.command("create")
@connected()
def embed_create(
    connection: Connection,
    project: Project,
    name: Annotated[str, typer.Argument(help="What the key is for, e.g. the site.")],
    origin: Origins = None,
    theme: Theme = None,
    hosted_page: Annotated[
        bool, typer.Option("--hosted-page", help="Also serve the project's hosted chat page.")
    ] = False,
    verified_only: Annotated[
        bool, typer.Option("--verified-only", help="Refuse anonymous users.")
    ] = False,
    anonymous_cap_cents: CapCents = None,
    period: Period = None,
) -> None:
    """Create an embed key; its identity secret is printed once."""
    settings = dict(
        allowed_origins=origin,
        theme=_theme(theme),
        hosted_page=hosted_page,
        allow_anonymous=not verified_only,
        anonymous_cost_limit_cents=anonymous_cap_cents,
        anonymous_period=period,
    )
    with connection.client() as client:
        answer = client.projects(project).embed_keys.create(name, **settings)
    _created(answer.to_dict())


@embed_app.command("show")
@connected()
def embed_show(connection: Connection, project: Project, key_id: KeyId) -> None:
    """Show one embed key."""
    with connection.client() as client:
        key = client.projects(project).embed_keys.get(key_id).to_dict()
    for line in show.embed_key_summary(key):
        stdout().print(line, markup=False)


@embed_app.command("update")
@connected()
def embed_update(
    connection: Connection,
    project: Project,
    key_id: KeyId,
    origin: Origins = None,
    theme: Theme = None,
    enabled: Annotated[
        bool | None, typer.Option("--enable/--disable", help="Turn it on or off.")
    ] = None,
    hosted_page: Annotated[
        bool | None, typer.Option("--hosted-page/--no-hosted-page", help="Serve the hosted page.")
    ] = None,
    anonymous: Annotated[
        bool | None, typer.Option("--anonymous/--verified-only", help="Admit anonymous users.")
    ] = None,
    anonymous_cap_cents: CapCents = None,
    period: Period = None,
    name: Annotated[str | None, typer.Option(help="A new name.")] = None,
) -> None:
    """Change an embed key; what is not named stays (--origin replaces the whole list)."""
    settings = dict(
        name=name,
        allowed_origins=origin,
        theme=_theme(theme),
        enabled=enabled,
        hosted_page=hosted_page,
        allow_anonymous=anonymous,
        anonymous_cost_limit_cents=anonymous_cap_cents,
        anonymous_period=period,
    )
    with connection.client() as client:
        key = client.projects(project).embed_keys.update(key_id, **settings).to_dict()
    for line in show.embed_key_summary(key):
        stdout().print(line, markup=False)


@embed_app.command("rotate")
@connected()
def embed_rotate(connection: Connection, project: Project, key_id: KeyId) -> None:
    """Replace the key and its identity secret; the old ones stop working at once."""
    with connection.client() as client:
        answer = client.projects(project).embed_keys.rotate(key_id)
    _created(answer.to_dict())


@embed_app.command("revoke")
@connected()
def embed_revoke(connection: Connection, project: Project, key_id: KeyId) -> None:
    """Revoke an embed key for good."""
    with connection.client() as client:
        key = client.projects(project).embed_keys.revoke(key_id).to_dict()
    stdout().print(f"Revoked embed key {key['id']} [bold]{escape(key['name'])}[/].")


def _hosted_project(client: Karta, project: str | None) -> str:
    if project is not None:
        return client.projects.get(project).slug
    projects = client.projects.list()
    if len(projects) != 1:
        names = ", ".join(p.slug for p in projects) or "none"
        stderr().print(f"[red]name the project to open (projects: {escape(names)})[/]")
        raise typer.Exit(2)
    return projects[0].slug


@connected()
def open_page(
    connection: Connection,
    project: Annotated[
        str | None, typer.Argument(help="The project (default: the only one).")
    ] = None,
    url: Annotated[
        str | None, typer.Option(help="The data plane's URL (default: credentials.json).")
    ] = None,
    browser: Annotated[bool, typer.Option(help="Open it in the browser.")] = True,
) -> None:
    """Open a project's hosted chat page, giving it a hosted-page embed key if it has none."""
    base = (url or read_credentials(karta_home()).get("url") or DEFAULT_DATA_PLANE).rstrip("/")
    with connection.client() as client:
        slug = _hosted_project(client, project)
        org = client.orgs.current().slug
        keys = client.projects(slug).embed_keys
        if not any(k.hosted_page and k.enabled and not k.revoked_at for k in keys.list()):
            keys.create("hosted page", hosted_page=True)
            stderr().print(f"Gave {escape(slug)} an embed key for its hosted page.")
    page = f"{base}/{org}/{slug}"
    stdout().print(page, markup=False)
    if browser:
        webbrowser.open(page)


def register(app: typer.Typer) -> None:
    app.add_typer(embed_app, name="embed-keys")
    app.command("open")(open_page)

"""Who you are and who belongs: signup, login, your organizations, and the members of one and
the invitations that add them."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from karta.cli import manage_render as show
from karta.cli.control import Connection, ControlUrl, Org, connected, plain, stderr, stdout


def _save(**fields: str | None) -> str:
    """Merge into $KARTA_HOME/credentials.json (mode 0600); None removes a field."""
    from karta.core.credentials_file import read_credentials, write_credentials
    from karta.core.home import karta_home

    home = karta_home()
    data = {**read_credentials(home), **fields}
    return str(write_credentials(home, {k: v for k, v in data.items() if v is not None}))


def signup(
    email: Annotated[str, typer.Option(prompt=True, help="Your email.")],
    password: Annotated[
        str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True, help="Password.")
    ],
    org_name: Annotated[str, typer.Option(prompt="Organization name", help="Your organization.")],
    control_url: ControlUrl = None,
) -> None:
    """Create an account and an organization; saves its first admin API key."""
    with Connection(control_url).client() as client:
        answer = client.account.signup(email, password, org_name)
    # The new key replaces any other identity's login token and organization choice.
    path = _save(api_key=answer.secret, control_url=client.control_url, user_token=None, org=None)
    stderr().print(
        f"Signed up as {escape(email)}; organization [bold]{escape(answer.organization.slug)}[/]."
    )
    stderr().print(f"Admin API key (shown once, saved to {path}):")
    stdout().print(answer.secret, markup=False)


def login(
    email: Annotated[str, typer.Option(prompt=True, help="Your email.")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, help="Password.")],
    control_url: ControlUrl = None,
    org: Org = None,
) -> None:
    """Log in; saves a login token (30 days) to credentials.json."""
    with Connection(control_url).client() as client:
        answer = client.account.login(email, password)
    chosen = {"org": org} if org else {}
    path = _save(user_token=answer.token, control_url=client.control_url, **chosen)
    stderr().print(
        f"Logged in as {escape(email)} until {answer.expires_at[:10]}; token saved to {path}."
    )


orgs_app = typer.Typer(help="Your organizations.")


@orgs_app.callback(invoke_without_command=True)
@connected(org=False)
def orgs(connection: Connection, ctx: typer.Context) -> None:
    """List your organizations and your role in each (needs a login token)."""
    if ctx.invoked_subcommand is not None:
        return
    with connection.client() as client:
        answer = plain(client.orgs.list())
    stdout().print(show.orgs_table(answer))


@orgs_app.command("create")
@connected(org=False)
def orgs_create(
    connection: Connection,
    name: Annotated[str, typer.Argument(help="The organization's name.")],
    slug: Annotated[str | None, typer.Option(help="Its slug (default: from the name).")] = None,
) -> None:
    """Create an organization you own."""
    with connection.client() as client:
        org = client.orgs.create(name, slug=slug)
    stdout().print(f"Created organization [bold]{escape(org.slug)}[/] — use it with --org.")


members_app = typer.Typer(
    help="Members of the organization, and invitations to join it.", no_args_is_help=True
)


@members_app.command("list")
@connected()
def members_list(connection: Connection) -> None:
    """List members and their roles."""
    with connection.client() as client:
        stdout().print(show.members_table(plain(client.members.list())))


@members_app.command("invite")
@connected()
def members_invite(
    connection: Connection,
    email: Annotated[str, typer.Argument(metavar="EMAIL", help="Who to invite.")],
    role: Annotated[
        str, typer.Option(help="owner, admin, developer, billing or viewer.")
    ] = "viewer",
) -> None:
    """Invite an email to a role; they become a member when they accept it."""
    with connection.client() as client:
        invitation = client.members.invite(email, role)
    slug = invitation.organization.slug
    stdout().print(
        f"Invited {escape(invitation.email)} to {escape(slug)} as {invitation.role} "
        f"(invitation {invitation.id}, expires {invitation.expires_at[:10]})."
    )
    stderr().print(
        f"Once logged in with that email, they run: karta invitations accept {invitation.id}"
    )


@members_app.command("invitations")
@connected()
def members_invitations(connection: Connection) -> None:
    """List the invitations nobody has answered yet."""
    with connection.client() as client:
        stdout().print(show.invitations_table(plain(client.members.invitations.list())))


@members_app.command("revoke")
@connected()
def members_revoke(
    connection: Connection,
    invitation_id: Annotated[
        int, typer.Argument(metavar="ID", help="The invitation's id (karta members invitations).")
    ],
) -> None:
    """Withdraw a pending invitation."""
    with connection.client() as client:
        revoked = client.members.invitations.revoke(invitation_id)
    stdout().print(f"Revoked invitation {revoked.id} ({escape(revoked.email)}).")


invitations_app = typer.Typer(
    help="Invitations addressed to you (needs a login token).", no_args_is_help=True
)
InvitationId = Annotated[
    int, typer.Argument(metavar="ID", help="The invitation's id (karta invitations list).")
]


@invitations_app.command("list")
@connected(org=False)
def invitations_list(connection: Connection) -> None:
    """List the pending invitations addressed to your email."""
    with connection.client() as client:
        stdout().print(show.my_invitations_table(plain(client.invitations.list())))


@invitations_app.command("accept")
@connected(org=False)
def invitations_accept(connection: Connection, invitation_id: InvitationId) -> None:
    """Join the organization with the invitation's role."""
    with connection.client() as client:
        accepted = client.invitations.accept(invitation_id)
    slug = escape(accepted.organization.slug)
    stdout().print(f"Joined [bold]{slug}[/] as {accepted.role}; act in it with --org {slug}.")


@invitations_app.command("decline")
@connected(org=False)
def invitations_decline(connection: Connection, invitation_id: InvitationId) -> None:
    """Turn an invitation down."""
    with connection.client() as client:
        declined = client.invitations.decline(invitation_id)
    stdout().print(f"Declined the invitation to {escape(declined.organization.slug)}.")


def register(app: typer.Typer) -> None:
    """Add the account commands to the `karta` app."""
    app.command()(signup)
    app.command()(login)
    app.add_typer(orgs_app, name="orgs")
    app.add_typer(members_app, name="members")
    app.add_typer(invitations_app, name="invitations")
